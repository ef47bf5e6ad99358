"""GFPGANv1Clean against the official architecture's fixtures, the v1.4 state_dict layout, sizes 64..1024, and
the clear errors of `load_generator` for files that are not usable generator checkpoints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from model.checkpoint import CheckpointError, load_generator, save_generator
from model.gfpgan_arch import V14_CONFIG, GFPGANv1Clean

FIXTURE_TOLERANCE = 1e-4


def _fixture(shared_dir: Path, size: int) -> dict:
    path = shared_dir / "fixtures" / f"gfpgan_clean_{size}.pt"
    if not path.is_file():
        pytest.skip(f"fixture {path} is missing")
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_matches_fixture(net: GFPGANv1Clean, fixture: dict) -> None:
    with torch.no_grad():
        output, out_rgbs = net(fixture["input"], return_rgb=True, randomize_noise=False)
    assert (output - fixture["output"]).abs().max().item() < FIXTURE_TOLERANCE
    assert len(out_rgbs) == len(fixture["out_rgbs"])
    for got, expected in zip(out_rgbs, fixture["out_rgbs"], strict=True):
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < FIXTURE_TOLERANCE


@pytest.mark.parametrize("size", [64, 128])
def test_reproduces_official_fixture(shared_dir: Path, size: int) -> None:
    fixture = _fixture(shared_dir, size)
    net = GFPGANv1Clean(**fixture["config"]).eval()
    net.load_state_dict(fixture["params_ema"])
    _assert_matches_fixture(net, fixture)


@pytest.mark.parametrize("size", [64, 128])
def test_load_generator_reads_released_layout(shared_dir: Path, tmp_path: Path, size: int) -> None:
    fixture = _fixture(shared_dir, size)
    path = tmp_path / "released.pth"
    torch.save({"params_ema": fixture["params_ema"]}, path)
    net = load_generator(path)
    assert not net.training
    _assert_matches_fixture(net, fixture)


def test_v14_state_dict_layout(shared_dir: Path) -> None:
    expected = json.loads((shared_dir / "fixtures" / "gfpganv1.4_state_dict_shapes.json").read_text())
    state = GFPGANv1Clean(**V14_CONFIG).state_dict()
    assert len(expected) == 285
    assert {k: list(v.shape) for k, v in state.items()} == {k: list(v) for k, v in expected.items()}
    params = sum(v.numel() for k, v in state.items() if ".noises." not in k)
    assert params == 86_444_252


@pytest.mark.parametrize("size", [64, 128, 256, 512, 1024])
def test_sizes_construct_and_run(size: int) -> None:
    net = GFPGANv1Clean(
        out_size=size, num_style_feat=32, channel_multiplier=1, num_mlp=1, narrow=0.25, sft_half=True
    ).eval()
    with torch.no_grad():
        image, out_rgbs = net(torch.zeros(1, 3, size, size), randomize_noise=False)
    assert image.shape == (1, 3, size, size)
    assert torch.isfinite(image).all()
    assert [r.shape[-1] for r in out_rgbs] == [2**i for i in range(3, size.bit_length())]


@pytest.mark.parametrize("size", [32, 96, 2048])
def test_bad_sizes_rejected(size: int) -> None:
    with pytest.raises(ValueError, match="out_size"):
        GFPGANv1Clean(out_size=size)


# --- checkpoint files that cannot be used -------------------------------------------------------------------


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"corrupt\.pth"):
        load_generator(path)


def test_truncated_file(tmp_path: Path, tiny_model_path: Path) -> None:
    data = tiny_model_path.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth"):
        load_generator(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere\.pth"):
        load_generator(tmp_path / "nowhere.pth")


def test_wrong_architecture_names_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"params_ema": {"layer1.conv.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(4)}}, path)
    with pytest.raises(CheckpointError, match=r"resnet\.pth") as err:
        load_generator(path)
    assert "missing" in str(err.value)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path, tiny_model_path: Path) -> None:
    state = torch.load(tiny_model_path, weights_only=True)
    params = state["params_ema"]
    params.pop("final_conv.weight")
    params["extra_head.weight"] = torch.zeros(1)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    message = str(err.value)
    assert "edited.pth" in message
    assert "final_conv.weight" in message
    assert "extra_head.weight" in message


def test_wrong_shapes_are_named(tmp_path: Path, tiny_model_path: Path) -> None:
    state = torch.load(tiny_model_path, weights_only=True)
    state["params_ema"]["toRGB.0.bias"] = torch.zeros(5)
    path = tmp_path / "reshaped.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"reshaped\.pth.*toRGB\.0\.bias"):
        load_generator(path)


class _NotATensor:
    """A pickled object weights_only loading must refuse (a checkpoint is untrusted input)."""


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain-pickle file is meant to be odd
def test_non_tensor_pickle(tmp_path: Path) -> None:
    path = tmp_path / "object.pth"
    torch.save({"params_ema": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"object\.pth"):
        load_generator(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"params_ema": {"a": "text"}}))
    with pytest.raises(CheckpointError, match=r"plain\.pkl"):
        load_generator(plain)


def test_saved_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = GFPGANv1Clean(out_size=64, num_style_feat=32, num_mlp=1, narrow=0.125, different_w=True).eval()
    loaded = load_generator(save_generator(net, tmp_path / "ours.pth"))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = net(x, randomize_noise=False)[0]
        got = loaded(x, randomize_noise=False)[0]
    assert torch.equal(got, expected)


def test_public_imports() -> None:
    from model import GFPGANv1Clean as exported_net
    from model import Restorer
    from model import load_generator as exported_loader

    assert exported_net is GFPGANv1Clean
    assert exported_loader is load_generator
    assert callable(Restorer.enhance)
