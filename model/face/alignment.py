"""Face alignment: the FFHQ 5-point template, dlib's 5 points mapped onto it, and the similarity
transform that cuts an aligned face crop out of a photo.

The generator is trained on faces aligned like FFHQ (eye centres, nose tip and mouth corners at fixed
positions; `FFHQ_TEMPLATE_512`). dlib's 5-point shape predictor returns different points (the two corners
of each eye and the base of the nose), so they cannot be aligned on the template directly. The mapping is
fitted from data by `scripts/fit_dlib5_template.py`: it runs dlib on the already aligned training faces
(../shared/data/faces/train-256, upsampled to 512) and stores the mean position of each of dlib's points
in `dlib5_template.json`. For a new face we fit the least-squares similarity (Umeyama) that carries that
dlib template onto the face's dlib points; the same similarity applied to `FFHQ_TEMPLATE_512` predicts
the face's eye centres, nose tip and mouth corners (`ffhq_points_from_dlib5`). Those 5 points are what
every detector backend reports, so alignment (`alignment_matrix`: partial affine with LMEDS, as facexlib
does) is the same whichever backend found the face.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# Left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner (image left/right),
# in the 512x512 FFHQ frame used by GFPGAN / facexlib.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
DLIB5_TEMPLATE_FILE = Path(__file__).with_name("dlib5_template.json")


def template_points(face_size: int) -> np.ndarray:
    """The FFHQ 5-point template scaled to a `face_size` x `face_size` crop."""
    return FFHQ_TEMPLATE_512 * (face_size / 512.0)


@cache
def dlib5_template_512() -> np.ndarray:
    """Mean dlib 5-point landmarks on aligned faces (512 frame), fitted by scripts/fit_dlib5_template.py."""
    data = json.loads(DLIB5_TEMPLATE_FILE.read_text())
    template = np.asarray(data["dlib5_template_512"], dtype=np.float64)
    if template.shape != (5, 2):
        raise RuntimeError(
            f"{DLIB5_TEMPLATE_FILE} holds a template of shape {template.shape}, expected (5, 2)"
        )
    return template


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst
    (Umeyama 1991, no reflection). Returns a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_c.var(0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to N x 2 points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def ffhq_points_from_dlib5(dlib5: np.ndarray) -> np.ndarray:
    """Predict the 5 FFHQ-template points (eye centres, nose tip, mouth corners) of a face from dlib's
    5 points (eye corners, nose base) through the fitted template."""
    to_face = similarity_lstsq(dlib5_template_512(), dlib5)
    return apply_affine(to_face, FFHQ_TEMPLATE_512)


def alignment_matrix(landmarks: np.ndarray, face_size: int) -> np.ndarray:
    """2x3 similarity taking photo coordinates to the aligned `face_size` crop (LMEDS, like facexlib)."""
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, dtype=np.float64), template_points(face_size), method=cv2.LMEDS
    )
    if matrix is None:  # degenerate landmarks (all points equal): fall back to least squares
        matrix = similarity_lstsq(landmarks, template_points(face_size))
    return matrix


def warp_face(image: np.ndarray, matrix: np.ndarray, face_size: int) -> np.ndarray:
    """Cut the aligned face crop out of `image`. Parts outside the photo are mirrored in (as FFHQ's own
    alignment pads), not filled with facexlib's flat gray: a flat fill would be interpolated into the
    photo's edge pixels at paste-back and draw a line along the border."""
    return cv2.warpAffine(
        image, matrix, (face_size, face_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
