"""Face detection behind a small interface: any backend returns `DetectedFace`s (box, the 5 FFHQ-template
landmarks, score), so another detector (e.g. facexlib's RetinaFace when a user has its weights) can be
added without touching alignment, paste-back or the Restorer.

The shipped backend is dlib (`dlib-bin`, models from `face-recognition-models`, nothing downloaded):
the HOG detector by default, the CNN MMOD detector on request, then dlib's 5-point shape predictor whose
points are mapped to the FFHQ template points by `model.face.alignment.ffhq_points_from_dlib5`.

Up-sampling. dlib's HOG window is 80 px, so faces below ~80/2^k px are missed at k up-samplings; the cost
grows with 4^k. Measured on the 2-core machine: the 1927 Solvay photo (1328x568, 29 faces of 38-55 px)
gives 0 faces at k=0, 28 at k=1 (0.3 s), 29 at k=2 (1.2 s); a 2.5 MP photo takes 0.9 s at k=1 and
4.5 s / 500 MB at k=2. On the small demo photos (< 0.3 MP) k=2 finds no extra face but adds false
positives in JPEG noise. `choose_upsample` therefore uses k=2 for photos of at least 0.3 MP whose
up-sampled size stays within `pixel_budget` (16 MP), k=1 otherwise within budget, and k=0 for large photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

import cv2
import dlib
import numpy as np

from model.dlib_models import MMOD_DETECTOR, SHAPE_PREDICTOR_5, model_file
from model.face.alignment import ffhq_points_from_dlib5

DEFAULT_PIXEL_BUDGET = 16_000_000
SMALL_PHOTO_PIXELS = 300_000
MAX_UPSAMPLE = 2


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # left, top, right, bottom in photo pixels
    landmarks: np.ndarray  # 5 x 2: left eye, right eye, nose tip, left / right mouth corner (FFHQ points)
    score: float  # detector confidence (backend-specific scale; higher is more certain)

    @property
    def center(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2.0, (top + bottom) / 2.0


@dataclass(frozen=True)
class AlignedFace(DetectedFace):
    affine: np.ndarray  # 2 x 3 similarity from photo pixels to the aligned face crop


class FaceDetector(Protocol):
    def detect(self, img_bgr: np.ndarray) -> list[DetectedFace]:
        """All faces in a uint8 BGR photo, most confident first."""
        ...


def choose_upsample(height: int, width: int, pixel_budget: int = DEFAULT_PIXEL_BUDGET) -> int:
    """How many times dlib should double the photo before scanning (see the module docstring)."""
    pixels = height * width
    top = MAX_UPSAMPLE if pixels >= SMALL_PHOTO_PIXELS else 1
    for upsample in range(top, 0, -1):
        if pixels * 4**upsample <= pixel_budget:
            return upsample
    return 0


@cache
def _shape_predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR_5)))


@cache
def _hog_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@cache
def _cnn_detector() -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(str(model_file(MMOD_DETECTOR)))


class DlibDetector:
    """dlib HOG (default) or CNN MMOD face detector plus the 5-point shape predictor."""

    def __init__(
        self,
        kind: Literal["hog", "cnn"] = "hog",
        *,
        upsample: int | None = None,
        min_score: float = 0.0,
        pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    ):
        if kind not in ("hog", "cnn"):
            raise ValueError(f"unknown dlib detector {kind!r} (hog or cnn)")
        self.kind = kind
        self.upsample = upsample
        self.min_score = min_score
        self.pixel_budget = pixel_budget

    def detect(self, img_bgr: np.ndarray) -> list[DetectedFace]:
        rgb = np.ascontiguousarray(cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB))
        upsample = self.upsample
        if upsample is None:
            upsample = choose_upsample(rgb.shape[0], rgb.shape[1], self.pixel_budget)
        boxes_scores = self._boxes(rgb, upsample)
        faces = []
        predictor = _shape_predictor()
        for rect, score in boxes_scores:
            if score < self.min_score:
                continue
            shape = predictor(rgb, rect)
            dlib5 = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            faces.append(DetectedFace(box=box, landmarks=ffhq_points_from_dlib5(dlib5), score=float(score)))
        faces.sort(key=lambda face: (-face.score, face.box))
        return faces

    def _boxes(self, rgb: np.ndarray, upsample: int) -> list[tuple[dlib.rectangle, float]]:
        if self.kind == "cnn":
            return [(d.rect, d.confidence) for d in _cnn_detector()(rgb, upsample)]
        rects, scores, _ = _hog_detector().run(rgb, upsample, 0.0)
        return list(zip(rects, scores, strict=True))
