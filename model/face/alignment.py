"""Face alignment: the FFHQ 5-point template, dlib's 5 points mapped onto it, and the similarity
transform that cuts an aligned face crop out of a photo.

The generator is trained on faces aligned like FFHQ (eye centres, nose tip and mouth corners at fixed
positions; `FFHQ_TEMPLATE_512`). dlib's 5-point shape predictor returns different points (the two corners
of each eye and the base of the nose), so they cannot be aligned on the template directly. The mapping is
fitted from data by `scripts/fit_dlib5_template.py`: it runs dlib on the already aligned training faces
(../shared/data/faces/train-256, upsampled to 512) and stores the mean position of each of dlib's points
in `dlib5_template.json`, with each point's spread. For a new face we fit the least-squares similarity
(Umeyama, each point weighted by its inverse variance on the training faces) that carries that dlib
template onto the face's dlib points; the same similarity applied to `FFHQ_TEMPLATE_512` predicts
the face's eye centres, nose tip and mouth corners (`ffhq_points_from_dlib5`). Those 5 points are what
every detector backend reports, so alignment (`alignment_matrix`: partial affine with LMEDS, as facexlib
does) is the same whichever backend found the face.

Measured (the json records it): on the training faces the 68-point eye centres / nose tip / mouth
corners sit 5-7 px (512 scale) below `FFHQ_TEMPLATE_512`, i.e. this data's alignment is FFHQ's within a
few pixels; on val-512 faces the re-detected eye centres of our crops are within 10 px of the template.
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
def _dlib5_fit() -> tuple[np.ndarray, np.ndarray]:
    data = json.loads(DLIB5_TEMPLATE_FILE.read_text())
    template = np.asarray(data["dlib5_template_512"], dtype=np.float64)
    spread = np.asarray(data["dlib5_mean_abs_spread_px"], dtype=np.float64)
    if template.shape != (5, 2) or spread.shape != (5,):
        raise RuntimeError(f"{DLIB5_TEMPLATE_FILE}: expected a 5 x 2 template and 5 spreads")
    return template, 1.0 / spread**2


def dlib5_template_512() -> np.ndarray:
    """Mean dlib 5-point landmarks on aligned faces (512 frame), fitted by scripts/fit_dlib5_template.py."""
    return _dlib5_fit()[0]


def dlib5_weights() -> np.ndarray:
    """Inverse variance of each dlib point around its template position: the nose base (spread ~14 px)
    counts far less than the eye corners (~4-5 px)."""
    return _dlib5_fit()[1]


def similarity_lstsq(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares similarity (rotation, uniform scale, translation) mapping src points onto
    dst (Umeyama 1991, no reflection). Returns a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    src_mean, dst_mean = w @ src, w @ dst
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = (w[:, None] * dst_c).T @ src_c
    u, singular, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / (w @ (src_c**2).sum(1))
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to N x 2 points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def ffhq_points_from_dlib5(dlib5: np.ndarray) -> np.ndarray:
    """Predict the 5 FFHQ-template points (eye centres, nose tip, mouth corners) of a face from dlib's
    5 points (eye corners, nose base) through the fitted template."""
    to_face = similarity_lstsq(dlib5_template_512(), dlib5, dlib5_weights())
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
