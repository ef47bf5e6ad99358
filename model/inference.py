"""FaceEngine: the one place the generator forward runs at inference, and the ONNX export.

Modes (all deterministic: the stored noise buffers are used, never fresh noise):
- "eager": the plain fp32 NCHW `GFPGANv1Clean.forward` — the reference every other mode is measured against.
- "channels_last": fp32, channels_last tensors, `torch.inference_mode`, and the folded-weight decoder
  (`FoldedGenerator`): per face the style modulation, demodulation and gain are folded into the conv weights.
- "bf16": as "channels_last" in bfloat16 (weights stored in bf16: no autocast casts per call). Only where the
  CPU has native bf16 (AMX-BF16 / AVX512-BF16), else it falls back to "channels_last"; on CUDA if supported.
- "fp16": as "bf16" in float16; CUDA only (falls back to the CPU choice elsewhere).
- "onnx": ONNX Runtime (CUDA EP when available, else CPU) on an exported graph; a model path ending in .onnx
  always runs this way.
- "auto": CUDA -> "fp16"; CPU -> "bf16" when the CPU has native bf16, else "channels_last". That order comes
  from benchmarks/bench_model.py (fastest mode with >= 35 dB PSNR against "eager"); measuring at every load
  would cost a full fp32 forward per worker start.
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model.checkpoint import checkpoint_id, default_model_path, generator_config, load_generator
from model.gfpgan_arch import GFPGANv1Clean
from model.stylegan2_arch import ModulatedConv2d, StyleConv, ToRGB

log = logging.getLogger(__name__)

MODES = ("auto", "eager", "channels_last", "bf16", "fp16", "onnx")
ONNX_META_CONFIG = "wgfpgan.config"
ONNX_META_VERSION = "wgfpgan.model_version"
ONNX_META_FACE_SIZE = "wgfpgan.face_size"
DEFAULT_OPSET = 17
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


# ---------------------------------------------------------------------------------------------------------
# Mode resolution


def native_bf16(device: torch.device) -> bool:
    """True when `device` runs bf16 convolutions natively (not emulated, which is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def channels_last_supported(device: torch.device) -> bool:
    """channels_last only pays with oneDNN on CPU (or cuDNN on CUDA)."""
    return device.type == "cuda" or torch.backends.mkldnn.is_available()


def resolve_mode(mode: str, device: torch.device, onnx_model: bool = False) -> str:
    """The mode that will actually run: "auto" resolved, unsupported modes replaced (with a warning)."""
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; choose one of {', '.join(MODES)}")
    if onnx_model:
        if mode not in ("auto", "onnx"):
            raise ValueError(f"an .onnx model runs only in mode 'onnx', not {mode!r}")
        return "onnx"
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "bf16"
    wanted = mode
    if mode == "fp16" and device.type != "cuda":
        mode = "bf16"
    if mode == "bf16" and not native_bf16(device):
        mode = "channels_last"
    if mode == "channels_last" and not channels_last_supported(device):
        mode = "eager"
    if mode != wanted and wanted != "auto":
        log.warning("inference mode %r is not supported on %s; using %r", wanted, device, mode)
    return mode


# ---------------------------------------------------------------------------------------------------------
# Folded-weight generator (modes channels_last / bf16 / fp16)


class FoldedConv:
    """A ModulatedConv2d prepared for per-face weight folding: its weight in the compute dtype and layout, and
    the (out, in) sums of squared weights that give the demodulation without another pass over the weight."""

    def __init__(
        self, conv: ModulatedConv2d, gain: float, dtype: torch.dtype, memory_format: torch.memory_format
    ) -> None:
        weight = conv.weight.detach()[0]  # (out, in, k, k), fp32
        self.conv = conv
        self.gain = gain
        self.dtype = dtype
        self.weight = weight.to(dtype).contiguous(memory_format=memory_format)
        self.weight_sq = weight.pow(2).sum(dim=(2, 3))

    def weight_for(self, style: torch.Tensor) -> torch.Tensor:
        """The weight for one face (style: F-vector): scaled by the modulation per input channel, then
        demodulated and multiplied by the gain per output channel. conv2d with it equals the modulated conv."""
        mod = self.conv.modulation(style)  # (in,)
        out_scale = torch.full_like(self.weight_sq[:, 0], self.gain)
        if self.conv.demodulate:
            out_scale = out_scale * torch.rsqrt(self.weight_sq @ mod.pow(2) + self.conv.eps)
        scale = out_scale[:, None] * mod[None, :]
        return self.weight * scale.to(self.dtype)[:, :, None, None]


def check_thread_policy() -> None:
    """Warn when torch will run several OpenMP threads that spin while idle. On a CPU shared with other
    processes (another worker, training) that makes each forward 10-40x slower (benchmarks/bench_model.py).
    OMP_WAIT_POLICY is read when torch loads, so it must be set in the environment before that."""
    if torch.get_num_threads() > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        log.warning(
            "torch runs %d threads with spinning OpenMP waits; on a shared CPU set OMP_WAIT_POLICY=PASSIVE "
            "before starting (or use 1 thread per worker process)",
            torch.get_num_threads(),
        )


def tune_cpu() -> None:
    """Process-wide CPU settings for inference (idempotent), each worth 5-20% of a bf16 forward here:
    - glibc keeps large freed blocks in its heap rather than returning them to the OS: a forward allocates and
      frees ~150 activations of up to 64 MB, and fresh mmap'd pages cost a page fault each;
    - denormal floats are flushed to zero (x86 handles them in slow microcode; they appear in the leaky ReLUs).
    """
    torch.set_flush_denormal(True)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        log.debug("mallopt unavailable (not glibc); allocator left as it is")


class FoldedGenerator(nn.Module):
    """Inference-only forward of a `GFPGANv1Clean` (takes ownership of it and converts it).

    The U-Net half (`GFPGANv1Clean.encode`) runs batched in `dtype` / `memory_format` with shared weights. The
    StyleGAN2 decoder runs per face: each modulated conv's weight is folded with that face's style, the
    demodulation and the StyleConv's sqrt(2) gain, so conv2d runs with a plain bias and each activation is
    touched twice (noise add, leaky ReLU) instead of five times. The noise term (strength x stored noise) is
    precomputed; the RGB skip path is accumulated in fp32.
    """

    def __init__(self, net: GFPGANv1Clean, dtype: torch.dtype, memory_format: torch.memory_format) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.dtype = dtype
        self.memory_format = memory_format
        for name, module in net.named_children():
            if name != "stylegan_decoder":
                module.to(dtype=dtype, memory_format=memory_format)
        dec = net.stylegan_decoder
        convs = [dec.style_conv1, *dec.style_convs]
        self.noise_terms = [
            (conv.weight * noise).to(dtype) for conv, noise in zip(convs, dec.stored_noise(), strict=True)
        ]
        self.constant = dec.constant_input.weight.to(dtype).contiguous(memory_format=memory_format)
        self.folded = {conv: FoldedConv(conv.modulated_conv, 2**0.5, dtype, memory_format) for conv in convs} | {
            rgb: FoldedConv(rgb.modulated_conv, 1.0, dtype, memory_format) for rgb in [dec.to_rgb1, *dec.to_rgbs]
        }

    def _convert(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.dtype).contiguous(memory_format=self.memory_format)

    def _style_conv(self, conv: StyleConv, x: torch.Tensor, style: torch.Tensor, layer: int) -> torch.Tensor:
        mod = conv.modulated_conv
        if mod.sample_mode == "upsample":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif mod.sample_mode == "downsample":
            x = F.avg_pool2d(x, 2)
        weight = self.folded[conv].weight_for(style)
        out = F.conv2d(x, weight, conv.bias.view(-1).to(self.dtype), padding=mod.padding)
        out.add_(self.noise_terms[layer])
        return F.leaky_relu_(out, 0.2)

    def _to_rgb(self, to_rgb: ToRGB, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        weight = self.folded[to_rgb].weight_for(style)
        # 3 channels: NCHW fp32 (channels_last kernels vectorise over channels, slow for 3)
        out = F.conv2d(x, weight).float().contiguous() + to_rgb.bias
        if skip is not None:
            if to_rgb.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out

    def _sft(self, out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> None:
        target = out[:, out.size(1) // 2 :] if self.net.stylegan_decoder.sft_half else out
        torch.addcmul(shift, target, scale, out=target)  # in place, one pass

    def decode(self, latent: torch.Tensor, conditions: list[torch.Tensor]) -> torch.Tensor:
        """One face: latent is num_latent x F (fp32), conditions each 1 x C x H x W. Returns 1x3xSxS fp32."""
        dec = self.net.stylegan_decoder
        out = self._style_conv(dec.style_conv1, self.constant, latent[0], 0)
        skip = self._to_rgb(dec.to_rgb1, out, latent[1], None)
        pairs = zip(dec.style_convs[::2], dec.style_convs[1::2], dec.to_rgbs, strict=True)
        for level, (conv1, conv2, to_rgb) in enumerate(pairs):
            i = 2 * level + 1
            out = self._style_conv(conv1, out, latent[i], i)
            if i < len(conditions):
                self._sft(out, conditions[i - 1], conditions[i])
            out = self._style_conv(conv2, out, latent[i + 1], i + 1)
            skip = self._to_rgb(to_rgb, out, latent[i + 2], skip)
        return skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x 3 x S x S RGB in [-1, 1] (any float dtype). Returns the restored faces, fp32, unclamped."""
        net, dec = self.net, self.net.stylegan_decoder
        style_code, conditions, _ = net.encode(self._convert(x), return_rgb=False)
        style_code = style_code.float()
        if not net.input_is_latent:
            style_code = dec.style_mlp(style_code)
        if style_code.ndim == 2:
            style_code = style_code.unsqueeze(1).expand(-1, dec.num_latent, -1)
        faces = [self.decode(style_code[b], [c[b : b + 1] for c in conditions]) for b in range(style_code.shape[0])]
        return torch.cat(faces)


# ---------------------------------------------------------------------------------------------------------
# ONNX export


class ImageOnly(nn.Module):
    """The exported graph: RGB [-1, 1] in, restored RGB out (stored noise, no intermediate RGBs)."""

    def __init__(self, net: GFPGANv1Clean) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, return_rgb=False, randomize_noise=False)[0]


def onnx_bytes(net: GFPGANv1Clean, model_version: str, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> bytes:
    """Serialised ONNX model of `net` (fp32) with its config, face size and version in the metadata."""
    import onnx

    size = net.out_size
    dummy = torch.zeros(1, 3, size, size)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter: robust on this graph and quick. Its deprecation notice and the tracer's
        # note on the SFT channel split (a constant per model) are expected.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            ImageOnly(net.eval()).cpu(),
            (dummy,),
            buffer,
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    meta = {
        ONNX_META_CONFIG: json.dumps(generator_config(net), sort_keys=True),
        ONNX_META_VERSION: model_version,
        ONNX_META_FACE_SIZE: str(size),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def export_onnx(
    model_path: str | Path | None,
    out_path: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> float:
    """Export a generator checkpoint to `out_path` (written atomically), then check ONNX Runtime against
    torch on a random face. Returns the max abs difference of the two outputs (in [-1, 1] units)."""
    path = Path(model_path) if model_path is not None else default_model_path()
    net = load_generator(path, "cpu")
    data = onnx_bytes(net, checkpoint_id(path), opset=opset, dynamic_batch=dynamic_batch)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out_path)

    probe = torch.rand(1, 3, net.out_size, net.out_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = ImageOnly(net)(probe).numpy()
    got = onnx_session(data, torch.device("cpu")).run(None, {"input": probe.numpy()})[0]
    return float(np.abs(got - expected).max())


def onnx_session(model: bytes | str | Path, device: torch.device) -> Any:
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()  # one thread policy for every mode
    # Idle threads sleep instead of spinning: on a CPU shared with other work, spinning threads steal the
    # cores the busy ones need (as OMP_WAIT_POLICY=PASSIVE for torch: see benchmarks/bench_model.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=providers)


# ---------------------------------------------------------------------------------------------------------
# FaceEngine

Forward = Callable[[torch.Tensor], torch.Tensor]


class FaceEngine:
    """Restores aligned faces: N x S x S x 3 uint8 BGR in, the same out. Build it with `FaceEngine.load`."""

    def __init__(
        self,
        forward: Forward,
        *,
        face_size: int,
        model_version: str,
        mode: str,
        batch_size: int,
        max_batch: int | None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self._forward = forward
        self.face_size = face_size
        self.model_version = model_version
        self.mode = mode
        self.batch_size = min(batch_size, max_batch) if max_batch else batch_size

    @classmethod
    def load(
        cls, model_path: str | Path | None, device: str = "cpu", mode: str = "auto", batch_size: int = 8
    ) -> FaceEngine:
        """Load a generator checkpoint (or an exported .onnx) and prepare it for `mode` on `device`."""
        path = Path(model_path) if model_path is not None else default_model_path()
        if path.suffix.lower() == ".onnx":
            resolve_mode(mode, torch.device(device), onnx_model=True)  # rejects torch-only modes
            return cls._from_onnx_file(path, torch.device(device), batch_size)
        net = load_generator(path, "cpu")
        return cls.from_generator(net, checkpoint_id(path), device=device, mode=mode, batch_size=batch_size)

    @classmethod
    def from_generator(
        cls,
        net: GFPGANv1Clean,
        model_version: str,
        device: str = "cpu",
        mode: str = "auto",
        batch_size: int = 8,
    ) -> FaceEngine:
        """Wrap an in-memory generator (e.g. during training or evaluation). The engine takes ownership of
        `net`: the fast modes convert it in place, so pass a copy if you keep using it."""
        dev = torch.device(device)
        resolved = resolve_mode(mode, dev)
        if resolved == "onnx":
            forward = _onnx_forward(onnx_session(onnx_bytes(net, model_version), dev))
        else:
            forward = _torch_forward(net, resolved, dev)
        return cls(
            forward,
            face_size=net.out_size,
            model_version=model_version,
            mode=resolved,
            batch_size=batch_size,
            max_batch=None,
        )

    @classmethod
    def _from_onnx_file(cls, path: Path, device: torch.device, batch_size: int) -> FaceEngine:
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        try:
            session = onnx_session(path, device)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{path} is not a loadable ONNX model: {exc}") from exc
        meta = session.get_modelmeta().custom_metadata_map
        if ONNX_META_FACE_SIZE not in meta:
            raise ValueError(f"{path} has no wgfpgan metadata; export it with `wgfpgan export-onnx`")
        batch_dim = session.get_inputs()[0].shape[0]
        return cls(
            _onnx_forward(session),
            face_size=int(meta[ONNX_META_FACE_SIZE]),
            model_version=meta.get(ONNX_META_VERSION, path.name),
            mode="onnx",
            batch_size=batch_size,
            max_batch=batch_dim if isinstance(batch_dim, int) else None,
        )

    def restore_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S RGB float in [-1, 1] -> restored, fp32 on the CPU, clamped to [-1, 1]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.face_size, self.face_size):
            raise ValueError(f"expected B x 3 x {self.face_size} x {self.face_size}, got {tuple(x.shape)}")
        chunks = [self._forward(x[i : i + self.batch_size].float()) for i in range(0, len(x), self.batch_size)]
        return torch.cat(chunks).clamp_(-1, 1) if chunks else x.new_empty(x.shape, dtype=torch.float32)

    def restore(self, faces: np.ndarray) -> np.ndarray:
        """N x S x S x 3 uint8 BGR aligned faces -> restored faces, same shape and type."""
        size = self.face_size
        if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
            raise ValueError(f"expected N x {size} x {size} x 3 uint8 BGR faces, got {faces.dtype} {faces.shape}")
        rgb = torch.from_numpy(np.ascontiguousarray(faces[..., ::-1])).permute(0, 3, 1, 2)
        x = (rgb.float() / 255.0 - 0.5) / 0.5  # as basicsr img2tensor + normalize
        y = self.restore_tensor(x)
        out = ((y + 1) / 2 * 255.0).round_().to(torch.uint8)  # as basicsr tensor2img
        return np.ascontiguousarray(out.permute(0, 2, 3, 1).numpy()[..., ::-1])


def _torch_forward(net: GFPGANv1Clean, mode: str, device: torch.device) -> Forward:
    net = net.to(device)
    if device.type == "cpu":
        tune_cpu()
        check_thread_policy()
    if mode == "eager":

        def eager(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net(x.to(device), return_rgb=False, randomize_noise=False)[0].float().cpu()

        return eager
    dtype = {"channels_last": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    folded = FoldedGenerator(net, dtype, torch.channels_last)

    def fast(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return folded(x.to(device)).cpu()

    return fast


def _onnx_forward(session: Any) -> Forward:
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.cpu().numpy()})[0])

    return run
