"""The `wgfpgan train` verb. Imports nothing heavy at module level; the trainer is model/train.py.

Single process: `wgfpgan train --config configs/default.yaml [--resume CKPT|latest]`.
Data parallel: `torchrun --nproc_per_node N -m model.train --config ...` (same arguments).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a generator (L1 pretraining, or GAN fine-tuning with logistic / wgan / wgan-gp)",
        description="Train GFPGANv1Clean from a YAML config; see configs/ and docs/MODEL_CARD.md.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see configs/)")
    parser.add_argument("--resume", help="training checkpoint to resume from ('latest' = newest of this run)")
    parser.add_argument("--max-steps", type=int, help="stop after this step (default: total_steps)")
    parser.add_argument("--device", help="override the config's device (cpu, cuda, cuda:1)")
    parser.add_argument("--out-dir", help="override the config's out_dir")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: cores / local ranks)")


def _run(args: argparse.Namespace) -> int:
    from model.train import run

    return run(args)
