"""How much identity the medium preset leaves at each face size: dlib identity distance, sharpness and PSNR of
simple non-learned variants of the ground truth, to set issue #4's targets against what the input still holds.

    python benchmarks/identity_headroom.py [--limit 50] [--sizes 128 256]

Variants of each val-512 face resized to SIZE: the medium preset (what the model sees), Gaussian blurs of the GT
(sigma in pixels of a 128-px face, scaled with SIZE), and `down4_clean` (4x area-downsampled and bicubic back up,
with no blur, noise or JPEG: the detail a perfect deblur/denoise of the medium input could at most bring back).
Prints a table and writes benchmarks/results/identity_headroom.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.data import list_images  # noqa: E402
from model.degradations import apply_preset  # noqa: E402
from model.identity import FaceIdentity, identity_distance  # noqa: E402
from model.metrics import psnr, sharpness_ratio  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "identity_headroom.json"


def variants(gt: np.ndarray, size: int, seed: int) -> dict[str, np.ndarray]:
    out = {"medium preset": apply_preset(gt, "medium", seed=seed)}
    for sigma in (1.0, 2.0, 3.0):
        out[f"GT blurred, sigma {sigma:g} px@128"] = cv2.GaussianBlur(gt, (0, 0), sigma * size / 128)
    small = cv2.resize(gt, (size // 4, size // 4), interpolation=cv2.INTER_AREA)
    out["down4_clean"] = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return out


def measure(val_dir: Path, size: int, limit: int, identity: FaceIdentity) -> dict[str, dict[str, float]]:
    scores: dict[str, list[tuple[float, float, float]]] = {}
    for index, path in enumerate(list_images(val_dir)[:limit]):
        gt = cv2.resize(cv2.imread(str(path)), (size, size), interpolation=cv2.INTER_AREA)
        gt_face = identity.analyze(gt)
        for name, img in variants(gt, size, seed=index).items():
            face = identity.analyze(img, box=gt_face.box)
            row = (identity_distance(face.embedding, gt_face.embedding), sharpness_ratio(img, gt), psnr(img, gt))
            scores.setdefault(name, []).append(row)
    return {
        name: dict(zip(("identity", "sharpness", "psnr"), map(float, np.mean(rows, axis=0)), strict=True))
        for name, rows in scores.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val-dir", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "val-512")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    if not args.val_dir.is_dir():
        print(f"no faces at {args.val_dir} (the shared data folder is absent)", file=sys.stderr)
        return 2
    identity = FaceIdentity()
    results = {str(size): measure(args.val_dir, size, args.limit, identity) for size in args.sizes}
    print(f"{args.limit} val-512 faces | ID dist to GT (lower = more identity) | sharpness x GT | PSNR dB")
    print(f"{'size':>5} {'variant':<30} {'ID dist':>8} {'sharp':>6} {'PSNR':>6}")
    for size, table in results.items():
        for name, m in table.items():
            print(f"{size:>5} {name:<30} {m['identity']:>8.3f} {m['sharpness']:>6.3f} {m['psnr']:>6.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"faces": args.limit, "results": results}, indent=2))
    print(f"saved {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
