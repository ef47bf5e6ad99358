"""Generator checkpoints: loading released GFPGAN `.pth` files and the project's own, saving ours.

A checkpoint is untrusted input: it is read with `torch.load(weights_only=True)` and every failure becomes a
`CheckpointError` naming the file and what is wrong (missing/unexpected keys, wrong shapes), never a bare
traceback from deep inside torch.

Formats accepted by `load_generator`:
- released GFPGAN files: state_dict under `params_ema`, else `params`, else a bare state_dict. They store no
  configuration, so it is inferred from tensor shapes (`infer_config`).
- the project's own files written by `save_generator`: `{"format": FORMAT, "config": {...}, "params_ema": ...}`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from model.gfpgan_arch import GFPGANv1Clean

FORMAT = "wgfpgan-generator/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL_PATH = WEIGHTS_DIR / "wgfpgan-default.pth"
_SHOWN_KEYS = 5


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with a message that names the file and the reason."""


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle/EOF errors all mean the same to the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {reason}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    return obj


def _state_dict_of(obj: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    for key in ("params_ema", "generator_ema", "params"):
        if key in obj:
            state = obj[key]
            break
    else:
        state = obj
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} has no generator state_dict (looked for 'params_ema', 'generator_ema', 'params', bare)"
        )
    return state


def _stored_config(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The architecture a file records: a project checkpoint's `config`, or a training checkpoint's
    (`wgfpgan train`) `config.generator`; None for released GFPGAN files (inferred from shapes instead)."""
    if obj.get("format") == FORMAT and isinstance(obj.get("config"), dict):
        return dict(obj["config"])
    if "generator_ema" in obj and isinstance(obj.get("config"), dict):
        generator = obj["config"].get("generator")
        return dict(generator) if isinstance(generator, dict) else None
    return None


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.fullmatch(k))})


def infer_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor kwargs of GFPGANv1Clean recovered from state_dict shapes.

    `input_is_latent` leaves no trace in the weights; released v1.3/v1.4 use True, which is assumed.
    """
    try:
        log_size = _count(state, r"conv_body_up\.(\d+)\.conv1\.weight") + 2
        num_style_feat = state["stylegan_decoder.style_mlp.1.weight"].shape[1]
        num_mlp = _count(state, r"stylegan_decoder\.style_mlp\.(\d+)\.weight")
        narrow = state["stylegan_decoder.constant_input.weight"].shape[1] / 512
        level_64 = 2 * (6 - 3)  # style_convs index of the 64x64 upsampling conv
        ch64 = state[f"stylegan_decoder.style_convs.{level_64}.modulated_conv.weight"].shape[1]
        channel_multiplier = round(ch64 / (256 * narrow))
        unet_ch8 = state["conv_body_up.0.conv2.weight"].shape[0]
        sft_half = state["condition_scale.0.2.weight"].shape[0] == unet_ch8
        different_w = state["final_linear.weight"].shape[0] != num_style_feat
    except KeyError as exc:
        raise CheckpointError(f"not a GFPGANv1Clean state_dict: key {exc} is missing") from exc
    return {
        "out_size": 2**log_size,
        "num_style_feat": int(num_style_feat),
        "channel_multiplier": int(channel_multiplier),
        "num_mlp": int(num_mlp),
        "input_is_latent": True,
        "different_w": bool(different_w),
        "narrow": float(narrow),
        "sft_half": bool(sft_half),
    }


def _load_into(net: GFPGANv1Clean, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = [f"{path} does not fit GFPGANv1Clean(out_size={net.out_size})"]
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", wrong),
        ):
            if keys:
                more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
                parts.append(f"{label}: {', '.join(keys[:_SHOWN_KEYS])}{more}")
        raise CheckpointError("; ".join(parts))
    net.load_state_dict({k: v.float() for k, v in state.items()})


def load_generator(path: str | Path | None = None, device: str | torch.device = "cpu") -> GFPGANv1Clean:
    """Load a GFPGANv1Clean from a released GFPGAN file, a project checkpoint or a `wgfpgan train` checkpoint
    (its EMA generator), in eval mode.

    `path=None` means the project's shipped default model.
    """
    path = Path(path) if path is not None else default_model_path()
    obj = _read(path)
    state = _state_dict_of(obj, path)
    config = _stored_config(obj)
    try:
        config = config if config is not None else infer_config(state)
    except CheckpointError as exc:  # infer_config does not know the file name
        raise CheckpointError(f"{path}: {exc}") from exc
    try:
        net = GFPGANv1Clean(**config, fix_decoder=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable architecture config {config}: {exc}") from exc
    _load_into(net, state, path)
    return net.eval().to(device)


def default_model_path() -> Path:
    if not DEFAULT_MODEL_PATH.is_file():
        raise CheckpointError(
            f"the shipped default model {DEFAULT_MODEL_PATH} is missing; pass a model path "
            "(--model / WGFPGAN_MODEL) or reinstall the package"
        )
    return DEFAULT_MODEL_PATH


def generator_config(net: GFPGANv1Clean) -> dict[str, Any]:
    """The constructor kwargs `net` was built with (what `save_generator` stores)."""
    dec = net.stylegan_decoder
    return {
        "out_size": net.out_size,
        "num_style_feat": net.num_style_feat,
        "channel_multiplier": round(dec.channels[64] / (256 * dec.channels[4] / 512)),
        "num_mlp": sum(isinstance(m, torch.nn.Linear) for m in dec.style_mlp),
        "input_is_latent": net.input_is_latent,
        "different_w": net.different_w,
        "narrow": dec.channels[4] / 512,
        "sft_half": dec.sft_half,
    }


def save_generator(
    net: GFPGANv1Clean, path: str | Path, *, half: bool = False, meta: dict[str, Any] | None = None
) -> Path:
    """Write `net` as a project checkpoint (atomically). `half=True` stores fp16 tensors (shipped weights)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in net.state_dict().items()
    }
    payload = {"format": FORMAT, "config": generator_config(net), "params_ema": state, "meta": meta or {}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def checkpoint_id(path: str | Path) -> str:
    """Stable model version: file name plus the first 12 hex digits of its SHA-256."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}@{digest.hexdigest()[:12]}"
