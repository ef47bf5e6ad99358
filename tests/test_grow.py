"""Growing a generator to twice its size keeps its function exactly until training changes it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG
from torch.nn import functional as F

from model.checkpoint import generator_config
from model.gfpgan_arch import GFPGANv1Clean
from model.grow import grow_generator
from model.train import TrainConfig, Trainer


def _trained_looking(config: dict, seed: int = 0) -> GFPGANv1Clean:
    """Random weights everywhere (including biases and noise strengths that start at zero), so the test cannot
    pass because a layer happened to be zero."""
    torch.manual_seed(seed)
    net = GFPGANv1Clean(**config, fix_decoder=False)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net.eval()


def test_grown_generator_is_upsample_of_the_small_one_on_the_downsampled_input() -> None:
    torch.set_num_threads(1)
    small = _trained_looking({**TINY_CONFIG, "channel_multiplier": 2})
    big = grow_generator(small).eval()
    assert big.out_size == 2 * small.out_size
    assert {k: v for k, v in generator_config(big).items() if k != "out_size"} == {
        k: v for k, v in generator_config(small).items() if k != "out_size"
    }
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        grown, grown_rgbs = big(x, return_rgb=True, randomize_noise=False)
        ref, ref_rgbs = small(F.avg_pool2d(x, 2), return_rgb=True, randomize_noise=False)
    expected = F.interpolate(ref, scale_factor=2, mode="bilinear", align_corners=False)
    assert grown.shape == (2, 3, 128, 128)
    torch.testing.assert_close(grown, expected, atol=1e-5, rtol=1e-4)
    for a, b in zip(grown_rgbs, ref_rgbs, strict=False):  # the shared U-Net levels give the same images
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(grown, F.interpolate(x, scale_factor=1.0))  # it is a real network output


def test_growing_needs_six_channels_at_the_new_top_level() -> None:
    small = _trained_looking({**TINY_CONFIG, "channel_multiplier": 1, "narrow": 0.0625})
    with pytest.raises(ValueError, match="needs 6"):
        grow_generator(small)


def test_trainer_grow_from_starts_from_the_grown_small_model(tmp_path: Path) -> None:
    from model.checkpoint import save_generator

    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "0.png"), np.full((64, 64, 3), 128, np.uint8))
    small = _trained_looking({**TINY_CONFIG, "channel_multiplier": 2})
    path = save_generator(small, tmp_path / "small.pth")
    generator = {**TINY_CONFIG, "out_size": 128, "channel_multiplier": 2}
    trainer = Trainer(TrainConfig(name="g", train_dir=str(faces), generator=generator, grow_from=str(path)))
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        expected = F.interpolate(small(F.avg_pool2d(x, 2), randomize_noise=False)[0], scale_factor=2, mode="bilinear")
        for net in (trainer.generator, trainer.generator_ema):
            torch.testing.assert_close(net.eval()(x, randomize_noise=False)[0], expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="not both"):
        both = {"grow_from": str(path), "init_from": str(path)}
        Trainer(TrainConfig(name="g", train_dir=str(faces), generator=generator, **both))
