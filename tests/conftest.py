"""Shared pytest fixtures: the ../shared data folder and a tiny random-weight generator checkpoint.

Engineers append their fixtures below; keep each one small and documented.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $WGFPGAN_SHARED); tests that need its data skip when it is absent."""
    path = Path(os.environ.get("WGFPGAN_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        pytest.skip(f"shared data folder not found at {path} (set WGFPGAN_SHARED)")
    return path


TINY_CONFIG = {
    "out_size": 64,
    "num_style_feat": 64,
    "channel_multiplier": 1,
    "num_mlp": 2,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 0.125,
    "sft_half": True,
}


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-px GFPGANv1Clean with seeded random weights, saved as a project checkpoint."""
    import torch

    from model.checkpoint import save_generator
    from model.gfpgan_arch import GFPGANv1Clean

    torch.manual_seed(0)
    net = GFPGANv1Clean(**TINY_CONFIG)
    return save_generator(net, tmp_path_factory.mktemp("tiny-model") / "tiny.pth")
