"""The `wgfpgan eval` verb: full-reference evaluation on aligned HQ faces (`--hq`) or before/after sheets
for real photos (`--real`). Imports nothing heavy at module level; the work is in model/evaluate.py.

Register it from model/cli.py with `eval_cli.register(subparsers)`; `python -m model.eval_cli ...` runs
the verb on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PRESET_CHOICES = ("mild", "medium", "severe")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure restoration quality (PSNR, SSIM, identity, landmarks, sharpness, NIQE)",
        description=(
            "--hq DIR: degrade aligned HQ faces with fixed-seed presets, restore them with each model and "
            "the baselines (bicubic, unsharp mask), and write results.md/results.csv/summary.json and "
            "contact sheets. --real DIR: restore real photos and write before/after sheets, face NIQE and "
            "detection counts."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--hq", type=Path, metavar="DIR", help="folder of aligned high-quality faces")
    source.add_argument("--real", type=Path, metavar="DIR", help="folder of real low-quality photos")
    parser.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="checkpoint to evaluate (repeatable; default: the shipped default model)",
    )
    parser.add_argument(
        "--preset",
        action="append",
        choices=PRESET_CHOICES,
        help="degradation preset (repeatable; default: all three)",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
    parser.add_argument("--size", type=int, help="evaluation face size (default: the first model's face size)")
    parser.add_argument("--seed", type=int, default=0, help="degradation seed of the first face (default 0)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: WGFPGAN_DEVICE or cpu)")
    parser.add_argument("--out", type=Path, default=Path("eval-report"), metavar="REPORT_DIR")
    parser.add_argument(
        "--workers", type=int, help="processes scoring faces while the model restores (0 = inline; default: CPU cores)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless the first model passes issue #4's acceptance on the medium preset",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the GT embedding cache")
    parser.set_defaults(handler=run_eval)


def _progress(message: str) -> None:
    print(f"\r{message}", end="", file=sys.stderr, flush=True)


def run_eval(args: argparse.Namespace) -> int:
    from model import evaluate
    from model.checkpoint import CheckpointError
    from wgfpgan.config import Settings

    device = args.device or Settings.from_env().device
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.real is not None:
            model = args.model[0] if args.model else None
            scores = evaluate.evaluate_real(
                args.real, args.out, model, device=device, limit=args.limit, progress=_progress
            )
            print(file=sys.stderr)
            print(f"{len(scores)} photos; report and sheets in {args.out}")
            return 0
        report = evaluate.evaluate_hq(
            args.hq,
            args.model or [None],
            args.preset or list(PRESET_CHOICES),
            limit=args.limit,
            size=args.size,
            seed=args.seed,
            device=device,
            cache_dir=None if args.no_cache else evaluate.default_cache_dir(),
            workers=args.workers,
            progress=_progress,
        )
    except (FileNotFoundError, ValueError, CheckpointError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    paths = report.write(args.out)
    print(report.markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    if args.check:
        if "medium" not in report.presets:
            print("error: --check needs the medium preset", file=sys.stderr)
            return 2
        return 0 if report.acceptance()["passed"] else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wgfpgan")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *(argv if argv is not None else sys.argv[1:])])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
