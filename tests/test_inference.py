"""FaceEngine: every mode stays within 35 dB PSNR of the eager fp32 reference, runs deterministically, falls
back cleanly where a mode is unsupported; ONNX export round trip through `wgfpgan export-onnx`."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import model.inference as inference
from model.checkpoint import checkpoint_id, load_generator
from model.gfpgan_arch import V14_CONFIG, GFPGANv1Clean
from model.inference import FaceEngine
from model.inference_cli import main as inference_cli_main

PSNR_FLOOR = 35.0
TORCH_MODES = ("channels_last", "bf16", "auto")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def random_faces(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return random_faces(3, 64)


@pytest.fixture(scope="module")
def reference(tiny_model_path: Path, faces: np.ndarray) -> np.ndarray:
    return FaceEngine.load(tiny_model_path, mode="eager").restore(faces)


def test_eager_matches_generator_forward(tiny_model_path: Path, faces: np.ndarray, reference: np.ndarray) -> None:
    """The uint8 BGR wrapper is the basicsr img2tensor / tensor2img convention around net.forward."""
    net = load_generator(tiny_model_path)
    x = torch.from_numpy(faces[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    with torch.no_grad():
        y = net(x, return_rgb=False, randomize_noise=False)[0].clamp(-1, 1)
    expected = ((y + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()[..., ::-1]
    assert np.abs(reference.astype(int) - expected.astype(int)).max() <= 1
    assert reference.shape == faces.shape and reference.dtype == np.uint8


@pytest.mark.parametrize("mode", [*TORCH_MODES, "onnx"])
def test_mode_close_to_eager_and_deterministic(
    tiny_model_path: Path, faces: np.ndarray, reference: np.ndarray, mode: str
) -> None:
    engine = FaceEngine.load(tiny_model_path, mode=mode, batch_size=2)
    assert engine.face_size == 64
    assert engine.model_version == checkpoint_id(tiny_model_path)
    first = engine.restore(faces)
    assert psnr(first, reference) >= PSNR_FLOOR
    assert np.array_equal(engine.restore(faces), first)


def test_batching_does_not_change_results(tiny_model_path: Path, faces: np.ndarray) -> None:
    one = FaceEngine.load(tiny_model_path, mode="auto", batch_size=1).restore(faces)
    many = FaceEngine.load(tiny_model_path, mode="auto", batch_size=8).restore(faces)
    assert psnr(one, many) >= 50
    assert np.array_equal(FaceEngine.load(tiny_model_path, mode="auto", batch_size=1).restore(faces[:1]), one[:1])


def test_auto_picks_bf16_on_this_kind_of_cpu() -> None:
    resolved = inference.resolve_mode("auto", torch.device("cpu"))
    assert resolved == ("bf16" if inference.native_bf16(torch.device("cpu")) else "channels_last")


def test_unsupported_modes_fall_back(
    monkeypatch: pytest.MonkeyPatch, tiny_model_path: Path, faces: np.ndarray, reference: np.ndarray
) -> None:
    monkeypatch.setattr(inference, "native_bf16", lambda device: False)
    engine = FaceEngine.load(tiny_model_path, mode="bf16")
    assert engine.mode == "channels_last"
    assert FaceEngine.load(tiny_model_path, mode="fp16").mode == "channels_last"  # fp16 needs CUDA
    assert psnr(engine.restore(faces), reference) >= PSNR_FLOOR

    monkeypatch.setattr(inference, "channels_last_supported", lambda device: False)
    engine = FaceEngine.load(tiny_model_path, mode="auto")
    assert engine.mode == "eager"
    assert np.array_equal(engine.restore(faces), reference)


def test_bad_requests(tiny_model_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown inference mode"):
        FaceEngine.load(tiny_model_path, mode="turbo")
    engine = FaceEngine.load(tiny_model_path, mode="eager")
    with pytest.raises(ValueError, match="64 x 64 x 3 uint8"):
        engine.restore(random_faces(1, 32))
    with pytest.raises(ValueError, match="uint8"):
        engine.restore(random_faces(1, 64).astype(np.float32))
    assert engine.restore(random_faces(0, 64)).shape == (0, 64, 64, 3)
    with pytest.raises(ValueError, match="batch_size"):
        FaceEngine.load(tiny_model_path, batch_size=0)


def test_restore_tensor(tiny_model_path: Path) -> None:
    engine = FaceEngine.load(tiny_model_path, mode="auto")
    out = engine.restore_tensor(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("dynamic", [False, True])
def test_export_onnx_round_trip(
    tmp_path: Path, tiny_model_path: Path, faces: np.ndarray, reference: np.ndarray, dynamic: bool
) -> None:
    out = tmp_path / "tiny.onnx"
    argv = ["export-onnx", str(tiny_model_path), str(out)] + (["--dynamic-batch"] if dynamic else [])
    assert inference_cli_main(argv) == 0
    engine = FaceEngine.load(out)
    assert (engine.mode, engine.face_size) == ("onnx", 64)
    assert engine.model_version == checkpoint_id(tiny_model_path)
    assert engine.batch_size == (8 if dynamic else 1)
    restored = engine.restore(faces)
    assert np.abs(restored.astype(int) - reference.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="only in mode 'onnx'"):
        FaceEngine.load(out, mode="bf16")


def test_export_onnx_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"garbage")
    assert inference_cli_main(["export-onnx", str(broken), str(tmp_path / "x.onnx")]) == 1
    assert "broken.pth" in capsys.readouterr().err
    assert inference_cli_main(["export-onnx", str(broken), str(tmp_path / "x.bin")]) == 2
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter announces its deprecation
def test_onnx_file_without_metadata_is_refused(tmp_path: Path) -> None:
    net = GFPGANv1Clean(out_size=64, num_style_feat=32, num_mlp=1, narrow=0.125).eval()
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(inference.ImageOnly(net), (torch.zeros(1, 3, 64, 64),), path, dynamo=False)
    with pytest.raises(ValueError, match="no wgfpgan metadata"):
        FaceEngine.load(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match=r"garbage\.onnx"):
        FaceEngine.load(garbage)


@pytest.mark.slow
def test_v14_modes_close_to_eager() -> None:
    """One 512 face through each mode of a v1.4-sized random-weight generator."""
    torch.manual_seed(0)
    net = GFPGANv1Clean(**V14_CONFIG).eval()
    face = random_faces(1, 512)
    reference = FaceEngine.from_generator(copy.deepcopy(net), "v14-random", mode="eager").restore(face)
    for mode in ("channels_last", "bf16", "onnx"):
        engine = FaceEngine.from_generator(copy.deepcopy(net), "v14-random", mode=mode)
        assert psnr(engine.restore(face), reference) >= PSNR_FLOOR, mode
