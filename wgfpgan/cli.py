"""The `wgfpgan` entry point: builds the argument parser and dispatches to each layer's CLI module.

Each layer owns its verbs in a `cli.py` exposing `register(subparsers)`; those modules import nothing
heavy at import time (no torch, no celery), so `wgfpgan status` starts in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from wgfpgan import __version__

# OpenMP's default busy-waiting idle threads make several torch processes on a shared CPU 10-40x slower
# (measured in benchmarks/bench_model.py); set before any layer can import torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Layers whose `cli.register(subparsers)` adds verbs, in the order they appear in --help.
CLI_MODULES = ("model.cli", "scheduler.cli", "worker.cli", "web.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgfpgan",
        description="Restore blurry, low-quality faces in photo archives (GFPGAN + WGAN critic).",
    )
    parser.add_argument("--version", action="version", version=f"wgfpgan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # that layer is not installed / not written
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
