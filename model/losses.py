"""Training losses: pixel L1, pyramid L1 on the U-Net's toRGB outputs, critic feature matching, and the three
adversarial losses compared in docs/ABLATION.md.

Adversarial losses share one small interface (`AdversarialLoss`) so the trainer does not branch on the type:
- `logistic` — GFPGAN's non-saturating softplus loss with lazy R1 regularisation (Adam).
- `wgan`     — the original Wasserstein GAN (Arjovsky et al. 2017): the critic's raw score, no sigmoid and no log;
               critic weights clipped to [-c, c] after every critic step (c applies to the critic's
               equalised-LR weights, so it bounds each layer relative to its fan-in); RMSProp; n_critic steps
               per G step.
- `wgan-gp`  — WGAN with gradient penalty (Gulrajani et al. 2017): lambda * (||grad D(x_hat)|| - 1)^2 on random
               interpolates of real and fake, Adam(0, 0.9), no clipping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def pixel_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target)


def pyramid_l1(out_rgbs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between each intermediate toRGB output and the target area-downsampled to its size."""
    losses = [F.l1_loss(rgb, F.adaptive_avg_pool2d(target, rgb.shape[-2:])) for rgb in out_rgbs]
    return torch.stack(losses).mean()


def feature_matching_l1(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Critic feature matching: a perceptual-loss stand-in, since no VGG weights can be had offline."""
    losses = [F.l1_loss(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True)]
    return torch.stack(losses).mean()


def identity_loss(
    embedder: nn.Module,
    output: torch.Tensor,
    target: torch.Tensor,
    landmarks: torch.Tensor,
    on_luma: bool = False,
) -> torch.Tensor:
    """Mean Euclidean distance between dlib face embeddings of output and target, both cut to dlib's 150-px
    chip with the target's 5 landmarks (GFPGAN uses ArcFace here; dlib's network is what exists offline).
    Images are RGB in [-1, 1]; the embedder is frozen, gradients flow to `output` only.

    `on_luma`: embed the luma of both images (as gray RGB). On colour, the embedding's gradient painted
    blue/green patterns into the eyes of the 256-px default (docs/MODEL_CARD.md); on luma it cannot touch colour."""
    if on_luma:
        output, target = to_gray_rgb(output), to_gray_rgb(target)
    with torch.no_grad():
        reference = embedder.embed(target, landmarks, value_range=(-1, 1))
    difference = embedder.embed(output, landmarks, value_range=(-1, 1)) - reference
    return (difference.pow(2).sum(dim=1) + 1e-12).sqrt().mean()  # eps: finite gradient at distance 0


def to_gray_rgb(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W RGB -> the BT.601 luma repeated on three channels."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)


def wasserstein_critic_loss(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """-(E[D(real)] - E[D(fake)]): the critic maximises the Wasserstein estimate; raw scores, no sigmoid, no log."""
    real_mean, fake_mean = critic(real).mean(), critic(fake).mean()
    wasserstein = real_mean - fake_mean
    stats = {"d_real": real_mean.item(), "d_fake": fake_mean.item(), "w_dist": wasserstein.item()}
    return -wasserstein, stats


@dataclass
class AdversarialLoss:
    """Base: the generator and critic objectives plus the critic's optimiser and post-step hook."""

    n_critic: int = 1
    lr: float = 2e-4

    name = "base"

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        raise NotImplementedError

    def after_critic_step(self, critic: nn.Module) -> None:
        """Hook run after each critic optimiser step (weight clipping for WGAN)."""


@dataclass
class LogisticLoss(AdversarialLoss):
    r1_weight: float = 10.0
    r1_every: int = 16
    lr: float = 2e-4

    name = "logistic"

    def critic_loss(self, critic, real, fake, step):
        real_scores = critic(real)
        fake_scores = critic(fake)
        loss = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        stats = {"d_real": real_scores.mean().item(), "d_fake": fake_scores.mean().item()}
        if self.r1_weight > 0 and step % self.r1_every == 0:
            real = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            loss = loss + self.r1_weight / 2 * r1 * self.r1_every  # lazy regularisation, as StyleGAN2
            stats["r1"] = r1.item()
        return loss, stats

    def generator_loss(self, fake_scores):
        return F.softplus(-fake_scores).mean()

    def make_optimizer(self, params):
        return torch.optim.Adam(params, lr=self.lr, betas=(0.0, 0.99))


@dataclass
class WGANLoss(AdversarialLoss):
    clip: float = 1.0  # on equalised-LR weights (N(0,1) scaled by 1/sqrt(fan_in)); see model/discriminator.py
    n_critic: int = 5
    lr: float = 5e-5

    name = "wgan"

    def critic_loss(self, critic, real, fake, step):
        return wasserstein_critic_loss(critic, real, fake)

    def generator_loss(self, fake_scores):
        return -fake_scores.mean()

    def make_optimizer(self, params):
        return torch.optim.RMSprop(params, lr=self.lr)

    @torch.no_grad()
    def after_critic_step(self, critic):
        for p in critic.parameters():
            p.clamp_(-self.clip, self.clip)


@dataclass
class WGANGPLoss(AdversarialLoss):
    gp_weight: float = 10.0
    n_critic: int = 5
    lr: float = 1e-4

    name = "wgan-gp"

    def critic_loss(self, critic, real, fake, step):
        loss, stats = wasserstein_critic_loss(critic, real, fake)
        alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
        mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
        return loss + self.gp_weight * gp, {**stats, "gp": gp.item()}

    def generator_loss(self, fake_scores):
        return -fake_scores.mean()

    def make_optimizer(self, params):
        return torch.optim.Adam(params, lr=self.lr, betas=(0.0, 0.9))


ADVERSARIAL_LOSSES: dict[str, type[AdversarialLoss]] = {
    "logistic": LogisticLoss,
    "wgan": WGANLoss,
    "wgan-gp": WGANGPLoss,
}


def make_adversarial_loss(kind: str, **overrides: float) -> AdversarialLoss:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose from {', '.join(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[kind](**{k: v for k, v in overrides.items() if v is not None})
