"""Training pipeline: degradation statistics, losses, each adversarial type, exact resume, DDP with 2 ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY_CONFIG

from model.checkpoint import load_generator
from model.data import DegradedFaces, ResumableSampler
from model.degradations import DegradationConfig, add_gaussian_noise, apply_preset, degrade, gaussian_kernel
from model.discriminator import StyleGAN2Discriminator
from model.losses import WGANGPLoss, WGANLoss, make_adversarial_loss
from model.train import TrainConfig, Trainer

# ----- degradations --------------------------------------------------------------------------------------


def test_gaussian_kernel_is_normalised_and_isotropic_when_asked() -> None:
    k = gaussian_kernel(41, 2.0, 2.0, 0.0)
    assert k.shape == (41, 41)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    _, xs = np.mgrid[-20:21, -20:21]
    variance_x = float((k * xs**2).sum())
    assert variance_x == pytest.approx(4.0, rel=0.02)  # sigma^2 recovered from the kernel's second moment


def test_anisotropic_kernel_has_the_requested_principal_variances() -> None:
    k = gaussian_kernel(41, 4.0, 1.0, 0.0)
    ys, xs = np.mgrid[-20:21, -20:21]
    assert float((k * xs**2).sum()) == pytest.approx(16.0, rel=0.05)
    assert float((k * ys**2).sum()) == pytest.approx(1.0, rel=0.05)


def _smooth_image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((8, 8, 3)).astype(np.float32)
    import cv2

    return cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def test_degrade_is_seeded_and_stays_in_range() -> None:
    img = _smooth_image()
    cfg = DegradationConfig()
    a, _ = degrade(img, cfg, np.random.default_rng(7))
    b, _ = degrade(img, cfg, np.random.default_rng(7))
    c, _ = degrade(img, cfg, np.random.default_rng(8))
    assert a.shape == img.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(np.round(a * 255), a * 255)  # quantised to 8-bit levels like a saved file


def test_degradation_statistics_follow_the_configured_ranges() -> None:
    """Over many draws: noise-only degradations add noise of the drawn sigma; blur removes high frequencies;
    gray appears at its probability."""
    flat = np.full((64, 64, 3), 0.5, np.float32)
    noise_only = DegradationConfig(
        blur_sigma=(0.1, 0.1),
        downsample_range=(1.0, 1.0),
        noise_range=(10, 10),
        jpeg_range=(100, 100),
        color_jitter_prob=0.0,
        gray_prob=0.0,
    )
    direct = add_gaussian_noise(flat, 10.0, np.random.default_rng(0))
    assert direct.std() * 255 == pytest.approx(10.0, rel=0.03)
    stds = [degrade(flat, noise_only, np.random.default_rng(s))[0].std() * 255 for s in range(10)]
    # JPEG (even q100) subsamples chroma 4:2:0, which averages the colour part of the noise away
    assert 5.0 < float(np.mean(stds)) < 10.5
    quiet = DegradationConfig(**{**noise_only.__dict__, "noise_range": (0, 0)})
    assert degrade(flat, quiet, np.random.default_rng(0))[0].std() * 255 < 0.5

    always_gray = DegradationConfig(gray_prob=1.0)
    lq, made_gray = degrade(_smooth_image(), always_gray, np.random.default_rng(0))
    assert made_gray and np.allclose(lq[..., 0], lq[..., 1]) and np.allclose(lq[..., 1], lq[..., 2])
    never = DegradationConfig(gray_prob=0.0)
    assert not any(degrade(_smooth_image(), never, np.random.default_rng(s))[1] for s in range(20))

    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 64, 3)) > 0.5).astype(np.float32)
    heavy_blur = DegradationConfig(
        blur_sigma=(6, 6),
        downsample_range=(1, 1),
        noise_range=(0, 0),
        jpeg_range=(100, 100),
        color_jitter_prob=0.0,
        gray_prob=0.0,
    )
    blurred, _ = degrade(sharp, heavy_blur, np.random.default_rng(1))
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.1 * np.abs(np.diff(sharp, axis=1)).mean()


def test_presets_are_deterministic_and_ordered_by_severity() -> None:
    img = (_smooth_image(3, 128) * 255).astype(np.uint8)
    errors = {}
    for preset in ("mild", "medium", "severe"):
        out = apply_preset(img, preset, seed=5)
        np.testing.assert_array_equal(out, apply_preset(img, preset, seed=5))
        errors[preset] = np.abs(out.astype(float) - img).mean()
    assert errors["mild"] < errors["medium"] < errors["severe"]
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset(img, "extreme", seed=0)


# ----- data ---------------------------------------------------------------------------------------------


def test_sampler_resumes_the_same_stream_and_shards_ranks() -> None:
    full = ResumableSampler(10, seed=3)
    stream = [x for _, x in zip(range(25), iter(full), strict=False)]
    assert sorted(x % 10 for x in stream[:10]) == list(range(10))  # one permutation per epoch
    resumed = [x for _, x in zip(range(5), iter(ResumableSampler(10, seed=3, start=20)), strict=False)]
    assert resumed == stream[20:25]
    r0 = [x for _, x in zip(range(5), iter(ResumableSampler(10, 3, rank=0, world=2)), strict=False)]
    r1 = [x for _, x in zip(range(5), iter(ResumableSampler(10, 3, rank=1, world=2)), strict=False)]
    assert r0 == stream[0:10:2] and r1 == stream[1:10:2]


# ----- losses and critic -------------------------------------------------------------------------------


def test_critic_returns_raw_unbounded_scores() -> None:
    torch.manual_seed(0)
    critic = StyleGAN2Discriminator(64, channel_multiplier=1, narrow=0.125)
    scores = critic(torch.randn(4, 3, 64, 64) * 50)
    assert scores.shape == (4,)
    assert not torch.all((scores > 0) & (scores < 1))  # not squashed by a sigmoid


def test_wgan_clips_every_critic_weight_and_uses_rmsprop() -> None:
    critic = StyleGAN2Discriminator(64, channel_multiplier=1, narrow=0.125)
    loss = WGANLoss(clip=0.25)  # exactly representable in float32
    assert isinstance(loss.make_optimizer(critic.parameters()), torch.optim.RMSprop)
    loss.after_critic_step(critic)
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.25


def test_wgan_losses_are_linear_in_the_scores() -> None:
    scores = torch.tensor([1.0, -3.0])
    assert WGANLoss().generator_loss(scores).item() == pytest.approx(1.0)
    assert make_adversarial_loss("logistic").generator_loss(torch.zeros(2)).item() == pytest.approx(np.log(2))


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    class UnitSlope(torch.nn.Module):  # f(x) = <w, x> with ||w|| = 1 everywhere: the ideal 1-Lipschitz critic
        def __init__(self) -> None:
            super().__init__()
            w = torch.randn(3 * 8 * 8)
            self.w = torch.nn.Parameter(w / w.norm())

        def forward(self, x):
            return x.flatten(1) @ self.w

    critic = UnitSlope()
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    _, stats = WGANGPLoss().critic_loss(critic, real, fake, step=0)
    assert stats["gp"] == pytest.approx(0.0, abs=1e-10)
    expected_w = (critic(real).mean() - critic(fake).mean()).item()
    assert stats["w_dist"] == pytest.approx(expected_w, abs=1e-6)


# ----- the trainer -------------------------------------------------------------------------------------


@pytest.fixture
def tiny_faces(tmp_path: Path) -> Path:
    """Eight generated 'faces' so the trainer tests do not need ../shared."""
    import cv2

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"{i:03d}.png"), (_smooth_image(i, 64) * 255).astype(np.uint8))
    return folder


def _config(tmp_path: Path, faces: Path, **overrides) -> TrainConfig:
    base = {
        "name": "t",
        "train_dir": str(faces),
        "val_dir": str(faces),
        "out_dir": str(tmp_path / "runs"),
        "generator": dict(TINY_CONFIG),
        "batch_size": 2,
        "num_workers": 0,
        "total_steps": 4,
        "log_every": 1,
        "val_every": 2,
        "val_count": 2,
        "ckpt_every": 2,
        "critic": {"mbstd_group": 2},
    }
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("kind", ["logistic", "wgan", "wgan-gp"])
def test_each_adversarial_type_trains_a_few_steps(tmp_path: Path, tiny_faces: Path, kind: str) -> None:
    torch.set_num_threads(1)
    cfg = _config(tmp_path, tiny_faces, adversarial=kind, adv_options={"n_critic": 2}, total_steps=3)
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.critic.parameters()]
    trainer.fit()
    assert trainer.step == 3 and trainer.critic_steps == 6
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters(), strict=True))
    rows = trainer.history
    assert all(np.isfinite(r["g_loss"]) and np.isfinite(r["d_loss"]) for r in rows)
    if kind == "wgan":
        assert max(p.abs().max().item() for p in trainer.critic.parameters()) <= trainer.adv.clip
    exported = load_generator(cfg.run_dir / "final_ema_fp16.pth")
    assert exported.out_size == 64
    assert (cfg.run_dir / "log.csv").is_file() and (cfg.run_dir / "curves.png").is_file()
    assert list((cfg.run_dir / "val").glob("*.png"))


def test_resume_reproduces_the_same_loss_curve(tmp_path: Path, tiny_faces: Path) -> None:
    torch.set_num_threads(1)
    cfg = _config(tmp_path, tiny_faces, adversarial="wgan-gp", adv_options={"n_critic": 1}, total_steps=4, adv_start=1)
    straight = Trainer(cfg)
    straight.fit()
    curve = [(r["step"], r["g_loss"]) for r in straight.history]

    cfg2 = _config(
        tmp_path / "second", tiny_faces, adversarial="wgan-gp", adv_options={"n_critic": 1}, total_steps=4, adv_start=1
    )
    first_half = Trainer(cfg2)
    first_half.fit(max_steps=2)
    ckpt = cfg2.run_dir / "checkpoints" / "step_0000002.pt"
    resumed = Trainer(cfg2)
    resumed.load_checkpoint(ckpt)
    resumed.fit()
    resumed_curve = [(r["step"], r["g_loss"]) for r in resumed.history]
    assert resumed_curve == curve  # identical floats, not merely close


def test_identity_loss_trains_with_gt_landmarks_and_moves_the_generator(tmp_path: Path, tiny_faces: Path) -> None:
    pytest.importorskip("dlib", reason="the identity loss needs dlib's shape predictor")
    torch.set_num_threads(1)
    cfg = _config(tmp_path, tiny_faces, identity_weight=1.0, pixel_weight=0.0, pyramid_weight=0.0, total_steps=2)
    trainer = Trainer(cfg)
    assert trainer.identity_net is not None and not any(p.requires_grad for p in trainer.identity_net.parameters())
    batch = trainer.next_batch()
    assert batch["landmarks"].shape == (cfg.batch_size, 5, 2)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    trainer.fit()
    assert all(np.isfinite(r["id"]) and r["id"] > 0 for r in trainer.history if "id" in r)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters(), strict=True))
    assert "identity_net" not in str(list(trainer.state()))  # the frozen dlib net is not checkpointed


def test_identity_loss_on_luma_cannot_push_colour() -> None:
    """On luma, the gradient reaching each pixel is the luma weights times one scalar: no colour direction."""
    pytest.importorskip("dlib", reason="the identity loss needs dlib's model files")
    from model.dlib_resnet import load_dlib_face_resnet
    from model.losses import identity_loss

    torch.set_num_threads(1)
    net = load_dlib_face_resnet()
    gen = torch.Generator().manual_seed(0)
    output = (torch.rand(1, 3, 128, 128, generator=gen) * 2 - 1).requires_grad_(True)
    target = torch.rand(1, 3, 128, 128, generator=gen) * 2 - 1
    landmarks = torch.tensor([[[85.0, 61], [73, 63], [42, 62], [54, 62], [66, 88]]])
    identity_loss(net, output, target, landmarks, on_luma=True).backward()
    grad = output.grad[0]
    assert grad.abs().sum() > 0
    per_channel = grad / torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    torch.testing.assert_close(per_channel[0], per_channel[1], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(per_channel[0], per_channel[2], atol=1e-6, rtol=1e-4)
    output.grad = None
    identity_loss(net, output, target, landmarks).backward()  # on colour the channels differ
    assert not torch.allclose(output.grad[0, 0] / 0.299, output.grad[0, 2] / 0.114, atol=1e-6)


def test_training_checkpoint_loads_as_its_ema_generator(tmp_path: Path, tiny_faces: Path) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(_config(tmp_path, tiny_faces, total_steps=2))
    trainer.fit()
    loaded = load_generator(trainer.cfg.run_dir / "checkpoints" / "step_0000002.pt")
    for key, value in trainer.generator_ema.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "train_dir": ".", "learning_rate": 1}))
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_yaml(path)


def test_shipped_configs_parse() -> None:
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert {
        "default.yaml",
        "l1_pretrain.yaml",
        "v1.4_full.yaml",
        "ablation_logistic.yaml",
        "ablation_wgan.yaml",
        "ablation_wgan_gp.yaml",
    } <= {c.name for c in configs}
    for path in configs:
        cfg = TrainConfig.from_yaml(path)
        assert cfg.generator["out_size"] in (64, 128, 256, 512, 1024)


@pytest.mark.slow
def test_two_process_torchrun_gives_equal_gradients_on_both_ranks(tmp_path: Path, tiny_faces: Path) -> None:
    cfg = _config(tmp_path, tiny_faces, adversarial="wgan-gp", adv_options={"n_critic": 1}, val_dir=None)
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump({**cfg.__dict__}))
    out = tmp_path / "fingerprint"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "ddp_grad_check.py"),
        str(config_path),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for key in ("generator_grad", "critic_grad", "weights"):
        np.testing.assert_allclose(ranks[0][key], ranks[1][key], rtol=1e-6, atol=1e-9)
    assert ranks[0]["generator_grad"][1] > 0  # gradients really exist


def test_dataset_pairs_are_deterministic_per_sample_id(tiny_faces: Path) -> None:
    ds = DegradedFaces(tiny_faces, 64, DegradationConfig(), seed=1)
    a, b = ds[13], ds[13]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert a["lq"].shape == (3, 64, 64) and a["gt"].min() >= -1 and a["gt"].max() <= 1


def test_learning_rate_steps_down_at_each_milestone(tmp_path: Path, tiny_faces: Path) -> None:
    trainer = Trainer(_config(tmp_path, tiny_faces, lr_g=1e-3, lr_milestones=[2, 4], lr_gamma=0.5))
    rates = []
    for step in range(6):
        trainer.step = step
        rates.append(trainer.generator_lr())
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
