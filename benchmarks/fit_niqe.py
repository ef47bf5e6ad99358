"""Fit the face-domain NIQE pristine model on aligned HQ faces and save it to model/data/niqe_faces.npz.

    python benchmarks/fit_niqe.py [--faces ../shared/data/faces/train-256] [--out model/data/niqe_faces.npz]

Uses every image of the folder (4,500 faces here, about a minute on one core); see model/niqe.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.niqe import DEFAULT_MODEL_PATH, fit_pristine_model  # noqa: E402


def read_images(paths: list[Path]):
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {path}")
        yield img


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "train-256")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    args = parser.parse_args()
    paths = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    paths = paths[: args.limit] if args.limit else paths
    if not paths:
        raise SystemExit(f"no images in {args.faces}")
    start = time.perf_counter()
    model = fit_pristine_model(read_images(paths))
    model.save(args.out)
    print(
        f"fitted NIQE on {model.n_images} images ({model.n_patches} sharp patches) "
        f"in {time.perf_counter() - start:.0f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
