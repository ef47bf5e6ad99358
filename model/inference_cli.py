"""The `wgfpgan export-onnx` verb: write a generator checkpoint as an ONNX model that `FaceEngine` (and so
`Restorer` / `wgfpgan restore --model X.onnx`) can load. Imports nothing heavy at module level; the work is
`model.inference.export_onnx`.

Register it from model/cli.py with `inference_cli.register(subparsers)`; `python -m model.inference_cli ...`
runs the verb on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The export is checked against torch on one random face; fp32 graphs agree to ~1e-6, so this is generous.
MAX_EXPORT_ERROR = 1e-3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a generator checkpoint to ONNX (for ONNX Runtime inference)",
        description=(
            "Export MODEL (a .pth checkpoint) to OUT.onnx: input 'input' and output 'output' are "
            "Bx3xSxS RGB in [-1, 1]; the checkpoint's config, face size and model version are stored in the "
            "ONNX metadata. The export is checked against PyTorch on a random face."
        ),
    )
    parser.add_argument("model", type=Path, help="generator checkpoint (.pth)")
    parser.add_argument("out", type=Path, help="output file (.onnx)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    parser.add_argument("--dynamic-batch", action="store_true", help="variable batch dimension (default: batch of 1)")
    parser.set_defaults(handler=export_onnx_command)


def export_onnx_command(args: argparse.Namespace) -> int:
    from model.inference import export_onnx

    if args.out.suffix.lower() != ".onnx":
        print(f"error: output file {args.out} must end in .onnx", file=sys.stderr)
        return 2
    try:
        error = export_onnx(args.model, args.out, opset=args.opset, dynamic_batch=args.dynamic_batch)
    except (RuntimeError, ValueError, OSError) as exc:  # CheckpointError, unsupported opset, unwritable OUT
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if error > MAX_EXPORT_ERROR:
        print(f"error: {args.out} differs from PyTorch by {error:.2e} (max {MAX_EXPORT_ERROR})", file=sys.stderr)
        args.out.unlink(missing_ok=True)
        return 1
    print(f"wrote {args.out} (ONNX Runtime vs PyTorch max abs difference {error:.2e})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.inference_cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
