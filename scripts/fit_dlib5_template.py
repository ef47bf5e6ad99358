"""Fit the template that maps dlib's 5-point landmarks onto the FFHQ-style face alignment.

dlib's `shape_predictor_5_face_landmarks` returns eye *corners* (outer and inner of each eye) and the
nose base, while GFPGAN aligns faces on eye *centres*, nose tip and mouth corners. The aligned training
faces in ../shared/data/faces/train-256 are already in the target alignment, so the mean position of
dlib's 5 points on them (upsampled to 512) *is* the template for dlib's points: aligning a new face's
dlib points onto it reproduces the alignment the generator was trained on.

The script also measures the 68-point eye centres / nose tip / mouth corners on the same faces so the
committed file records how far this data's alignment is from the FFHQ 5-point template.

    python scripts/fit_dlib5_template.py [--shared ../shared] [--limit 1500]

writes model/face/dlib5_template.json (committed).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import dlib
import numpy as np

from model.dlib_models import SHAPE_PREDICTOR_5, SHAPE_PREDICTOR_68, model_file
from model.face.alignment import FFHQ_TEMPLATE_512

OUT = Path(__file__).resolve().parents[1] / "model" / "face" / "dlib5_template.json"


def semantic_points_68(shape: dlib.full_object_detection) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from the 68-point model (the FFHQ definition)."""
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.environ.get("WGFPGAN_SHARED", "../shared"))
    parser.add_argument("--limit", type=int, default=1500)
    args = parser.parse_args()

    folder = Path(args.shared) / "data" / "faces" / "train-256"
    files = sorted(folder.glob("*.jpg"))[: args.limit]
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR_5)))
    sp68 = dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR_68)))

    dlib5, semantic = [], []
    for path in files:
        bgr = cv2.imread(str(path))
        rgb = cv2.cvtColor(cv2.resize(bgr, (512, 512), interpolation=cv2.INTER_LANCZOS4), cv2.COLOR_BGR2RGB)
        boxes = detector(rgb, 0)
        if len(boxes) != 1:  # skip ambiguous faces: the template must come from clean detections
            continue
        s5 = sp5(rgb, boxes[0])
        dlib5.append([(p.x, p.y) for p in s5.parts()])
        semantic.append(semantic_points_68(sp68(rgb, boxes[0])))

    dlib5_arr = np.asarray(dlib5, dtype=np.float64)
    semantic_arr = np.asarray(semantic)
    template = dlib5_arr.mean(0)
    spread = np.linalg.norm(dlib5_arr - template, axis=2).mean(0)
    semantic_mean = semantic_arr.mean(0)
    offset = np.linalg.norm(semantic_mean - FFHQ_TEMPLATE_512, axis=1)
    result = {
        "description": "mean dlib 5-point landmarks on aligned training faces, 512x512 frame",
        "source": f"{folder.name}: {len(dlib5_arr)} of {len(files)} faces with exactly one detection",
        "dlib5_template_512": np.round(template, 4).tolist(),
        "dlib5_mean_abs_spread_px": np.round(spread, 3).tolist(),
        "semantic68_mean_512": np.round(semantic_mean, 4).tolist(),
        "semantic68_minus_ffhq_px": np.round(offset, 3).tolist(),
    }
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}\n"
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
