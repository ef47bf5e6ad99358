"""The trainer: one readable file, plain PyTorch. `wgfpgan train --config configs/NAME.yaml [--resume CKPT]`.

What one step does (after `adv_start`, with an adversarial loss selected):
  1. n_critic critic steps, each on a fresh batch: fakes from the generator (no grad), critic loss from
     model/losses.py, optimiser step, then the loss's hook (weight clipping for `wgan`).
  2. one generator step: pixel L1 + pyramid L1 on the U-Net's toRGB outputs + adversarial + critic feature
     matching + (with `identity_weight`) the identity loss, the distance between dlib's face embeddings of output
     and GT (model/dlib_resnet.py, the role ArcFace plays in GFPGAN); then the EMA generator is updated.
Before `adv_start` only the generator's L1 losses train (the "L1 pretraining" every ablation run starts from).

Multi-process data parallel: launch with `torchrun --nproc_per_node N -m model.train --config ...` (gloo on CPU,
nccl on GPU). Gradients are averaged across ranks with one flattened all-reduce per network after each backward
(equivalent to DistributedDataParallel, but also correct for the R1 / gradient-penalty double backward, which DDP's
hooks do not cover); every rank sees its own shard of the same deterministic sample stream.

Resume is exact: the sample stream is keyed by position (model/data.py), and the checkpoint stores the step, the
stream position, the optimisers and the torch RNG state, so a resumed run reproduces the same loss curve.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader

from model.checkpoint import load_generator, save_generator
from model.data import DegradedFaces, ResumableSampler, bgr_to_tensor, list_images, tensor_to_bgr_uint8
from model.degradations import DegradationConfig, apply_preset
from model.discriminator import StyleGAN2Discriminator
from model.gfpgan_arch import GFPGANv1Clean
from model.losses import (
    AdversarialLoss,
    feature_matching_l1,
    identity_loss,
    make_adversarial_loss,
    pixel_l1,
    pyramid_l1,
)


@dataclass
class TrainConfig:
    name: str
    train_dir: str
    val_dir: str | None = None
    out_dir: str = "runs"
    generator: dict[str, Any] = field(default_factory=lambda: {"out_size": 128})
    critic: dict[str, Any] = field(default_factory=dict)  # StyleGAN2Discriminator kwargs besides out_size
    degradation: dict[str, Any] = field(default_factory=dict)  # DegradationConfig overrides
    batch_size: int = 8
    num_workers: int = 1
    total_steps: int = 1000
    max_minutes: float | None = None  # wall-clock cap; the run checkpoints and stops cleanly when reached
    lr_g: float = 2e-3
    betas_g: tuple[float, float] = (0.0, 0.99)  # GFPGAN's; (0.9, 0.99) suits L1-only pretraining
    lr_milestones: list[int] = field(default_factory=list)  # multiply lr_g by lr_gamma at each (as GFPGAN)
    lr_gamma: float = 0.5
    ema_decay: float = 0.995
    seed: int = 0
    pixel_weight: float = 1.0
    pyramid_weight: float = 1.0
    adversarial: str | None = None  # None, "logistic", "wgan" or "wgan-gp"
    adv_weight: float = 0.05
    fm_weight: float = 0.5
    identity_weight: float = 0.0  # dlib face-embedding distance of output vs GT (0 = off)
    identity_on_luma: bool = False  # embed luma only (no colour gradient; see model/losses.identity_loss)
    adv_start: int = 0
    adv_options: dict[str, Any] = field(default_factory=dict)  # n_critic, lr, clip, gp_weight, r1_weight...
    init_from: str | None = None  # generator checkpoint to start from (e.g. the L1-pretrained model)
    grow_from: str | None = None  # checkpoint of half the out_size, grown to this size (model/grow.py)
    device: str = "cpu"
    amp: str = "auto"  # "auto": bf16 autocast on CUDA, off on CPU (measured slower there); "off"; "bf16"; "fp16"
    log_every: int = 10
    val_every: int = 200
    val_count: int = 16
    ckpt_every: int = 200

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def average_gradients(module: nn.Module, world: int) -> None:
    """All-reduce the gradients of `module` across ranks in one flat buffer and divide by the world size."""
    if world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def gradient_fingerprint(module: nn.Module) -> torch.Tensor:
    """Sum and L2 norm of all gradients: compared across ranks by the DDP test."""
    grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
    flat = torch.cat(grads) if grads else torch.zeros(1)
    return torch.stack([flat.sum(), flat.norm()]).double()


class Trainer:
    def __init__(self, cfg: TrainConfig, dist_info: Dist | None = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or Dist()
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.generator = GFPGANv1Clean(**{**cfg.generator, "fix_decoder": False}).to(self.device)
        if cfg.init_from and cfg.grow_from:
            raise ValueError("set init_from or grow_from, not both")
        if cfg.init_from:
            init = load_generator(cfg.init_from, self.device)
            self.generator.load_state_dict(init.state_dict())
        if cfg.grow_from:
            from model.grow import grow_generator

            grown = grow_generator(load_generator(cfg.grow_from, self.device))
            self.generator.load_state_dict(grown.state_dict())
        self.generator_ema = GFPGANv1Clean(**{**cfg.generator, "fix_decoder": False}).to(self.device).eval()
        self.generator_ema.load_state_dict(self.generator.state_dict())
        self.generator_ema.requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas_g))

        self.adv: AdversarialLoss | None = None
        self.critic: StyleGAN2Discriminator | None = None
        if cfg.adversarial:
            self.adv = make_adversarial_loss(cfg.adversarial, **cfg.adv_options)
            critic_kwargs = {
                "channel_multiplier": cfg.generator.get("channel_multiplier", 1),
                "narrow": cfg.generator.get("narrow", 1.0),
                **cfg.critic,
            }
            if self.adv.name == "wgan-gp":
                critic_kwargs.setdefault("mbstd_group", 0)
            self.critic = StyleGAN2Discriminator(cfg.generator["out_size"], **critic_kwargs).to(self.device)
            self.opt_d = self.adv.make_optimizer(self.critic.parameters())
        self._broadcast_parameters()

        self.identity_net: nn.Module | None = None
        if cfg.identity_weight > 0:
            from model.dlib_resnet import load_dlib_face_resnet

            self.identity_net = load_dlib_face_resnet(device=self.device)
        self.dataset = DegradedFaces(
            cfg.train_dir,
            cfg.generator["out_size"],
            DegradationConfig(**cfg.degradation),
            seed=cfg.seed,
            landmarks=self.identity_net is not None,
        )
        self.step = 0
        self.batches_consumed = 0
        self.critic_steps = 0
        self.elapsed = 0.0
        self.history: list[dict[str, float]] = []
        self._batches: Iterator[dict[str, torch.Tensor]] | None = None

    # ----- setup helpers -------------------------------------------------------------------------------
    def _broadcast_parameters(self) -> None:
        if self.dist.world == 1:
            return
        for module in (self.generator, self.generator_ema, self.critic):
            if module is not None:
                for t in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(t.data, src=0)

    def _autocast(self):
        mode = self.cfg.amp
        if mode == "auto":
            mode = "bf16" if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
        if mode == "off":
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)

    def _make_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        cfg = self.cfg
        sampler = ResumableSampler(
            len(self.dataset),
            cfg.seed,
            start=self.batches_consumed * cfg.batch_size * self.dist.world,
            rank=self.dist.rank,
            world=self.dist.world,
        )
        loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.num_workers,
            persistent_workers=cfg.num_workers > 0,
            pin_memory=self.device.type == "cuda",
            # its own generator: creating the iterator must not draw from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        return iter(loader)

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next batch on the device: `lq`, `gt` and, with the identity loss, the GT's `landmarks`."""
        if self._batches is None:
            self._batches = self._make_batches()
        batch = next(self._batches)
        self.batches_consumed += 1
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----- one step --------------------------------------------------------------------------------------
    def adversarial_active(self) -> bool:
        return self.adv is not None and self.step >= self.cfg.adv_start

    def critic_step(self) -> dict[str, float]:
        assert self.adv is not None and self.critic is not None
        batch = self.next_batch()
        lq, gt = batch["lq"], batch["gt"]
        with torch.no_grad(), self._autocast():
            fake, _ = self.generator(lq, return_rgb=False)
        self.critic.requires_grad_(True)
        loss, stats = self.adv.critic_loss(self.critic, gt, fake.float(), self.critic_steps)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.critic, self.dist.world)
        self.opt_d.step()
        self.adv.after_critic_step(self.critic)
        self.critic_steps += 1
        return {"d_loss": loss.item(), **stats}

    def generator_lr(self) -> float:
        """Step schedule, a pure function of the step (so resuming needs no scheduler state)."""
        passed = sum(self.step >= m for m in self.cfg.lr_milestones)
        return self.cfg.lr_g * self.cfg.lr_gamma**passed

    def generator_step(self) -> dict[str, float]:
        cfg = self.cfg
        for group in self.opt_g.param_groups:
            group["lr"] = self.generator_lr()
        batch = self.next_batch()
        lq, gt = batch["lq"], batch["gt"]
        with self._autocast():
            fake, out_rgbs = self.generator(lq, return_rgb=True)
        fake = fake.float()
        l_pix = pixel_l1(fake, gt)
        l_pyr = pyramid_l1([r.float() for r in out_rgbs], gt)
        loss = cfg.pixel_weight * l_pix + cfg.pyramid_weight * l_pyr
        stats = {"l1": l_pix.item(), "pyramid": l_pyr.item()}
        if self.adversarial_active():
            assert self.adv is not None and self.critic is not None
            self.critic.requires_grad_(False)
            fake_scores, fake_feats = self.critic(fake, return_features=True)
            with torch.no_grad():
                _, real_feats = self.critic(gt, return_features=True)
            l_adv = self.adv.generator_loss(fake_scores)
            l_fm = feature_matching_l1(fake_feats, real_feats)
            loss = loss + cfg.adv_weight * l_adv + cfg.fm_weight * l_fm
            stats |= {"g_adv": l_adv.item(), "fm": l_fm.item()}
        if self.identity_net is not None:
            l_id = identity_loss(self.identity_net, fake, gt, batch["landmarks"], on_luma=cfg.identity_on_luma)
            loss = loss + cfg.identity_weight * l_id
            stats["id"] = l_id.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.generator, self.dist.world)
        self.opt_g.step()
        update_ema(self.generator_ema, self.generator, cfg.ema_decay)
        stats["g_loss"] = loss.item()
        return stats

    def train_step(self) -> dict[str, float]:
        stats: dict[str, float] = {}
        if self.adversarial_active():
            assert self.adv is not None
            for _ in range(self.adv.n_critic):
                stats = self.critic_step()
        stats |= self.generator_step()
        self.step += 1
        return stats

    # ----- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "config": dataclasses.asdict(self.cfg),
            "step": self.step,
            "batches_consumed": self.batches_consumed,
            "critic_steps": self.critic_steps,
            "elapsed": self.elapsed,
            "generator": self.generator.state_dict(),
            "generator_ema": self.generator_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }
        if self.critic is not None:
            state |= {"critic": self.critic.state_dict(), "opt_d": self.opt_d.state_dict()}
        return state

    def save_checkpoint(self, path: Path | None = None) -> Path:
        path = path or self.cfg.run_dir / "checkpoints" / f"step_{self.step:07d}.pt"
        if self.dist.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            torch.save(self.state(), tmp)
            tmp.replace(path)
            (path.parent / "latest.txt").write_text(path.name + "\n")
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        # Training checkpoints hold optimiser state and the history list: files this trainer wrote itself.
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.generator.load_state_dict(state["generator"])
        self.generator_ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.critic is not None:
            if "critic" not in state:
                raise ValueError(f"{path} has no critic state but this config trains one")
            self.critic.load_state_dict(state["critic"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.step = state["step"]
        self.batches_consumed = state["batches_consumed"]
        self.critic_steps = state["critic_steps"]
        self.elapsed = state["elapsed"]
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self._batches = None

    def export(self, half: bool) -> Path:
        """Write the EMA generator as a project checkpoint: fp32 (to start other runs from) or fp16 (to ship)."""
        path = self.cfg.run_dir / ("final_ema_fp16.pth" if half else "final_ema.pth")
        meta = {
            "name": self.cfg.name,
            "step": self.step,
            "train_minutes": round(self.elapsed / 60, 1),
            "adversarial": self.cfg.adversarial or "none",
        }
        return save_generator(self.generator_ema, path, half=half, meta=meta)

    # ----- validation and logs ----------------------------------------------------------------------------
    def validation_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        import cv2

        size = self.cfg.generator["out_size"]
        files = list_images(self.cfg.val_dir)[: self.cfg.val_count]
        gts, lqs = [], []
        for i, f in enumerate(files):
            gt = cv2.resize(cv2.imread(str(f)), (size, size), interpolation=cv2.INTER_AREA)
            lq = apply_preset(gt, "medium", seed=i)
            gts.append(bgr_to_tensor(gt.astype(np.float32) / 255))
            lqs.append(bgr_to_tensor(lq.astype(np.float32) / 255))
        return torch.stack(lqs), torch.stack(gts)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Issue #4's three numbers on the first `val_count` val faces (medium preset), so a run can be watched
        against the acceptance: PSNR of output and input, dlib identity distance to the GT of both, and the
        output's gradient energy relative to the GT's."""
        from model.identity import FaceIdentity, identity_distance
        from model.metrics import psnr, sharpness_ratio

        if not self.cfg.val_dir or not self.dist.is_main:
            return {}
        if not hasattr(self, "_val"):
            self._val = self.validation_set()
            self._val_identity = FaceIdentity()
            self._val_inputs = [self._input_scores(a, c) for a, c in zip(*self._val, strict=True)]
        lq, gt = self._val
        out, _ = self.generator_ema(lq.to(self.device), return_rgb=False, randomize_noise=False)
        rows, scores = [], []
        for a, b, c, (gt_face, lq_psnr, lq_id) in zip(lq, out.cpu(), gt, self._val_inputs, strict=True):
            lq_img, out_img, gt_img = tensor_to_bgr_uint8(a), tensor_to_bgr_uint8(b), tensor_to_bgr_uint8(c)
            out_face = self._val_identity.analyze(out_img, box=gt_face.box)
            out_id = identity_distance(out_face.embedding, gt_face.embedding)
            scores.append((psnr(out_img, gt_img), lq_psnr, out_id, lq_id, sharpness_ratio(out_img, gt_img)))
            rows.append(np.concatenate([lq_img, out_img, gt_img], axis=1))
        self._save_sheet(rows[:8])
        means = np.mean(np.array(scores), axis=0)
        names = ("val_psnr", "val_psnr_lq", "val_id", "val_id_lq", "val_sharp")
        return {name: float(v) for name, v in zip(names, means, strict=True)}

    def _input_scores(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[Any, float, float]:
        """What never changes between validations: the GT's face analysis, and the input's PSNR and identity."""
        from model.identity import identity_distance
        from model.metrics import psnr

        lq_img, gt_img = tensor_to_bgr_uint8(lq), tensor_to_bgr_uint8(gt)
        gt_face = self._val_identity.analyze(gt_img)
        lq_face = self._val_identity.analyze(lq_img, box=gt_face.box)
        return gt_face, psnr(lq_img, gt_img), identity_distance(lq_face.embedding, gt_face.embedding)

    def _save_sheet(self, rows: list[np.ndarray]) -> None:
        import cv2

        path = self.cfg.run_dir / "val" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.concatenate(rows, axis=0))

    def log(self, stats: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        row = {"step": self.step, "elapsed_s": round(self.elapsed, 1), **stats}
        self.history.append(row)
        path = self.cfg.run_dir / "log.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted({k for r in self.history for k in r}, key=lambda k: (k not in ("step", "elapsed_s"), k))
        with path.open("w", newline="") as fh:  # rewritten whole: columns can appear when the GAN starts
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)

    def plot(self) -> None:
        if not self.dist.is_main or not self.history:
            return
        plot_history(self.history, self.cfg.run_dir / "curves.png", title=self.cfg.name)

    # ----- the loop ---------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> None:
        cfg = self.cfg
        end = min(cfg.total_steps, max_steps) if max_steps is not None else cfg.total_steps
        start_time, start_elapsed, start_step = time.time(), self.elapsed, self.step
        running: dict[str, list[float]] = {}
        while self.step < end:
            stats = self.train_step()
            self.elapsed = start_elapsed + time.time() - start_time
            for k, v in stats.items():
                running.setdefault(k, []).append(v)
            if self.step % cfg.log_every == 0 or self.step == end:
                averaged = {k: float(np.mean(v)) for k, v in running.items()}
                running.clear()
                if self.step % cfg.val_every == 0 or self.step == end:
                    averaged |= self.validate()
                    self.log(averaged)
                    self.plot()
                else:
                    self.log(averaged)
                self._print_progress(averaged, end, start_step, time.time() - start_time)
            if self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
            if cfg.max_minutes is not None and self.elapsed >= cfg.max_minutes * 60:
                self._print(f"wall-clock budget of {cfg.max_minutes} min reached at step {self.step}")
                break
        self.save_checkpoint()
        if self.dist.is_main:
            self._print(f"exported EMA weights to {self.export(half=False)} and {self.export(half=True)}")

    def _print_progress(self, stats: dict[str, float], end: int, start_step: int, seconds: float) -> None:
        done = self.step - start_step
        per_step = seconds / max(done, 1)
        eta = per_step * (end - self.step)
        shown = " ".join(f"{k} {v:.4g}" for k, v in stats.items())
        self._print(f"step {self.step}/{end} | {shown} | {per_step:.2f} s/it | ETA {_hms(eta)}")

    def _print(self, text: str) -> None:
        if self.dist.is_main:
            print(f"[{self.cfg.name}] {text}", flush=True)


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def plot_history(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """One panel per logged quantity against step, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in history for k in r} - {"step", "elapsed_s"})
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(r["step"], r[key]) for r in history if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from model.train_cli import add_arguments

    parser = argparse.ArgumentParser(prog="wgfpgan train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig.from_yaml(args.config)
    if args.device:
        cfg.device = args.device
    if args.out_dir:
        cfg.out_dir = args.out_dir
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_ranks))
    trainer = Trainer(cfg, setup_distributed(cfg.device))
    resume = args.resume
    if resume == "latest":
        latest = cfg.run_dir / "checkpoints" / "latest.txt"
        resume = str(latest.parent / latest.read_text().strip()) if latest.is_file() else None
    if resume:
        trainer.load_checkpoint(resume)
        trainer._print(f"resumed from {resume} at step {trainer.step}")
    trainer.fit(args.max_steps)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
