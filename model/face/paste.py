"""Paste-back: the background upscaled by a pluggable upsampler (Lanczos by default), then every restored
face warped back with the inverse alignment transform and blended through a soft, feathered mask.

The mask follows GFPGAN's FaceRestoreHelper, with a wider feather: the warped face square is eroded by
2*upscale px (so the interpolated rim of the warped crop never shows), eroded again by 1/10 of its side
and blurred with a Gaussian (sigma = 1/30 of the side), so the blend ramps smoothly from background to
face over the outer fifth of the square, where the aligned crop holds background, not the face. (GFPGAN
ramps over 1/10; with a restored face whose tone differs from the photo that left a visible box.) Faces that
overlap the photo border are simply cut by it (erosion does not eat in from the border, OpenCV treats
outside pixels as "inside" for erosion).

Each face is handled in its own region of interest instead of full-size warps, so a photo with thirty
faces or a very large scan costs only the faces' area. The background keeps the photo's dtype (uint8 or
uint16); faces are blended in float32 at 8-bit scale and written back at the photo's depth.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

# The blend ramps from 0 at the warped square's edge to 1 at 2/FEATHER_FRACTION of its side inside.
FEATHER_FRACTION = 10


class BackgroundUpsampler(Protocol):
    def upsample(self, image: np.ndarray, scale: int) -> np.ndarray:
        """Upscale an H x W x C uint8/uint16 image by `scale` (same dtype, (H*scale) x (W*scale))."""
        ...


class LanczosUpsampler:
    """Plain Lanczos-4 resize (OpenCV), the default background upsampler."""

    def upsample(self, image: np.ndarray, scale: int) -> np.ndarray:
        if scale == 1:
            return image.copy()
        height, width = image.shape[:2]
        return cv2.resize(image, (width * scale, height * scale), interpolation=cv2.INTER_LANCZOS4)


class EnhancerUpsampler:
    """Adapts a GFPGANer-style background upsampler (e.g. Real-ESRGAN's RealESRGANer, whose
    `enhance(img, outscale=s)` returns `(image, mode)`) to `BackgroundUpsampler`."""

    def __init__(self, enhancer: object):
        self.enhancer = enhancer

    def upsample(self, image: np.ndarray, scale: int) -> np.ndarray:
        output = self.enhancer.enhance(image, outscale=scale)[0]
        height, width = image.shape[:2]
        if output.shape[:2] != (height * scale, width * scale):  # e.g. a fixed x4 model
            output = cv2.resize(output, (width * scale, height * scale), interpolation=cv2.INTER_LANCZOS4)
        return output.astype(image.dtype, copy=False)


def as_background_upsampler(upsampler: object | None) -> BackgroundUpsampler:
    """None -> Lanczos; an object with `upsample` as is; one with GFPGANer's `enhance` adapted."""
    if upsampler is None:
        return LanczosUpsampler()
    if hasattr(upsampler, "upsample"):
        return upsampler  # type: ignore[return-value]
    if hasattr(upsampler, "enhance"):
        return EnhancerUpsampler(upsampler)
    raise TypeError(f"{type(upsampler).__name__} is not a background upsampler (needs upsample or enhance)")


def inverse_affine(matrix: np.ndarray, upscale: int) -> np.ndarray:
    """2x3 transform from the aligned crop to the photo upscaled by `upscale` (pixel-centre aligned,
    matching cv2.resize)."""
    inverse = cv2.invertAffineTransform(matrix) * upscale
    inverse[:, 2] += 0.5 * (upscale - 1)
    return inverse


def _face_roi(inverse: np.ndarray, face_size: int, margin: int, shape: tuple[int, int]) -> tuple[int, ...]:
    corners = np.array([[0, 0], [face_size, 0], [0, face_size], [face_size, face_size]], dtype=np.float64)
    mapped = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = shape
    x0 = max(int(np.floor(mapped[:, 0].min())) - margin, 0)
    y0 = max(int(np.floor(mapped[:, 1].min())) - margin, 0)
    x1 = min(int(np.ceil(mapped[:, 0].max())) + margin, width)
    y1 = min(int(np.ceil(mapped[:, 1].max())) + margin, height)
    return x0, y0, x1, y1


def soft_face_mask(inverse: np.ndarray, face_size: int, roi: tuple[int, ...], upscale: int) -> np.ndarray:
    """Feathered blend weight (0..1, float32) of one face inside `roi` of the upscaled photo."""
    x0, y0, x1, y1 = roi
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    square = np.ones((face_size, face_size), np.float32)
    mask = cv2.warpAffine(square, local, (x1 - x0, y1 - y0))
    rim = max(int(2 * upscale), 1)
    mask = cv2.erode(mask, np.ones((rim, rim), np.uint8))
    ramp = int(np.sqrt(mask.sum())) // FEATHER_FRACTION
    if ramp > 0:
        kernel = 2 * ramp + 1
        mask = cv2.erode(mask, np.ones((kernel, kernel), np.uint8))
        mask = cv2.GaussianBlur(mask, (kernel, kernel), ramp / 3.0)
    return mask


def paste_faces(
    background: np.ndarray,
    faces: list[np.ndarray],
    matrices: list[np.ndarray],
    upscale: int,
) -> np.ndarray:
    """Blend restored uint8 BGR face crops into `background` (the photo already upscaled by `upscale`,
    uint8 or uint16 BGR) in place, and return it."""
    scale_to_bg = 257.0 if background.dtype == np.uint16 else 1.0
    max_value = float(np.iinfo(background.dtype).max)
    for face, matrix in zip(faces, matrices, strict=True):
        face_size = face.shape[0]
        inverse = inverse_affine(matrix, upscale)
        # Margin: the warped square reaches half a crop pixel beyond its corner centres; the mask must
        # fall to zero inside the ROI, or the erosion (which treats outside-ROI pixels as inside) stalls.
        crop_pixel = int(np.ceil(np.abs(inverse[:, :2]).sum(axis=1).max()))
        roi = _face_roi(inverse, face_size, crop_pixel + 2, background.shape[:2])
        x0, y0, x1, y1 = roi
        if x1 <= x0 or y1 <= y0:
            continue  # the face lies entirely outside the photo
        local = inverse.copy()
        local[:, 2] -= (x0, y0)
        warped = cv2.warpAffine(face.astype(np.float32), local, (x1 - x0, y1 - y0))
        mask = soft_face_mask(inverse, face_size, roi, upscale)[:, :, None]
        region = background[y0:y1, x0:x1].astype(np.float32)
        blended = mask * (warped * scale_to_bg) + (1.0 - mask) * region
        background[y0:y1, x0:x1] = np.clip(np.round(blended), 0, max_value).astype(background.dtype)
    return background
