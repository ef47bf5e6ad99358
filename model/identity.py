"""Face identity with dlib: face box, 5-point landmarks and the 128-d face embedding, plus the identity
distance between two embeddings. Uses only the model files shipped by `face-recognition-models`
(located by model/dlib_models.py); nothing is downloaded.

How a face is found:
1. If the caller passes a `box`, it is used as is (the evaluation passes the ground truth's box to every
   restored variant of that face, so landmark error measures landmark drift, not detector jitter).
2. Otherwise dlib's HOG frontal detector runs and the largest face wins.
3. If it finds nothing (typical for heavily degraded inputs), a `fallback` box given as fractions of the
   image side is used. For aligned faces (CelebA-HQ / FFHQ style crops, like the model's inputs) the default
   `ALIGNED_FACE_BOX` is the median HOG box measured on 100 faces of train-256, i.e. the chip is computed
   from the whole aligned image at the position where the face always is.
The 5 landmarks come from `shape_predictor_5_face_landmarks` inside that box, and the embedding from
`dlib_face_recognition_resnet_model_v1` on the 150x150 chip dlib aligns from those landmarks.

Identity distance is the Euclidean distance between embeddings (dlib's own convention: same person
typically < 0.6); identical images give exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model.dlib_models import FACE_RECOGNITION_RESNET, SHAPE_PREDICTOR_5, model_file

# (left, top, right, bottom) as fractions of width/height: median dlib HOG detection on aligned faces.
ALIGNED_FACE_BOX = (0.242, 0.305, 0.758, 0.891)

Box = tuple[int, int, int, int]
FractionBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceAnalysis:
    box: Box  # left, top, right, bottom in pixels
    detected: bool  # False when the box came from the caller or the fallback
    landmarks: np.ndarray  # (5, 2) float64, x/y pixels
    embedding: np.ndarray  # (128,) float64


def identity_distance(embedding: np.ndarray, ref_embedding: np.ndarray) -> float:
    """Euclidean distance between two face embeddings (0 = same face)."""
    a, b = np.asarray(embedding, dtype=np.float64), np.asarray(ref_embedding, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in shape: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b))


def scale_box(fractions: FractionBox, width: int, height: int) -> Box:
    left, top, right, bottom = fractions
    return (round(left * width), round(top * height), round(right * width) - 1, round(bottom * height) - 1)


def _to_rgb(img_bgr: np.ndarray) -> np.ndarray:
    img = np.asarray(img_bgr)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 BGR image, got shape {img.shape}")
    return np.ascontiguousarray(img[:, :, ::-1])


def _shape_points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


# The HOG detector misses faces under ~80 px; images whose shorter side is below this are upsampled once.
SMALL_IMAGE_SIDE = 200


class FaceIdentity:
    """Lazily loaded dlib detector, 5-point shape predictor and face-recognition ResNet.

    `upsample`: how many times the detector doubles the image; None = 1 for images whose shorter side is
    under SMALL_IMAGE_SIDE (e.g. 128-px aligned faces), else 0."""

    def __init__(self, upsample: int | None = None) -> None:
        self.upsample = upsample

    @cached_property
    def _detector(self):
        import dlib

        return dlib.get_frontal_face_detector()

    @cached_property
    def _shape_predictor(self):
        import dlib

        return dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR_5)))

    @cached_property
    def _recognizer(self):
        import dlib

        return dlib.face_recognition_model_v1(str(model_file(FACE_RECOGNITION_RESNET)))

    def landmarks(self, img_bgr: np.ndarray, box: Box) -> np.ndarray:
        """dlib's 5 landmarks (5x2 float64, x/y pixels) inside a known face box; no detection, no embedding
        (the training identity loss calls this per sample with the aligned-face box)."""
        import dlib

        return _shape_points(self._shape_predictor(_to_rgb(img_bgr), dlib.rectangle(*box)))

    def detect(self, img_bgr: np.ndarray) -> list[Box]:
        """All frontal faces found, largest first."""
        rgb = _to_rgb(img_bgr)
        upsample = self.upsample
        if upsample is None:
            upsample = 1 if min(rgb.shape[:2]) < SMALL_IMAGE_SIDE else 0
        rects = self._detector(rgb, upsample)
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)

    def analyze(
        self,
        img_bgr: np.ndarray,
        *,
        box: Box | None = None,
        fallback: FractionBox | None = ALIGNED_FACE_BOX,
    ) -> FaceAnalysis | None:
        """Box, landmarks and embedding of the main face; None if no box was given, none was detected
        and `fallback` is None."""
        import dlib

        rgb = _to_rgb(img_bgr)
        detected = False
        if box is None:
            found = self.detect(img_bgr)
            if found:
                box, detected = found[0], True
            elif fallback is not None:
                box = scale_box(fallback, rgb.shape[1], rgb.shape[0])
            else:
                return None
        shape = self._shape_predictor(rgb, dlib.rectangle(*box))
        landmarks = _shape_points(shape)
        embedding = np.array(self._recognizer.compute_face_descriptor(rgb, shape), dtype=np.float64)
        return FaceAnalysis(box=tuple(box), detected=detected, landmarks=landmarks, embedding=embedding)
