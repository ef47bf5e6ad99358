"""Full-reference image metrics for face restoration: PSNR, SSIM, gradient-energy sharpness and
landmark error. numpy + OpenCV only (no torch, no dlib: landmarks come from model/identity.py).

Conventions (the same everywhere in the evaluation reports):
- Images are uint8 (or float in 0..255) arrays, HxW (gray) or HxWx3 **BGR** (OpenCV order).
- PSNR is computed over all three colour channels on the 0..255 scale (colour shifts count as errors).
- SSIM is Wang et al. 2004 on the luma channel Y (ITU-R BT.601, 16..235 as in BasicSR/MATLAB `rgb2ycbcr`),
  with an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, averaged over the "valid"
  region (no padding), as in the reference MATLAB code.
- Sharpness is the gradient energy: the mean over interior pixels of |grad Y|^2, with the gradient
  estimated by the 3x3 Sobel operator divided by 8 (so a ramp of slope s has gradient s). It is reported as
  a ratio to the ground truth's: 1.0 = as sharp as GT, < 1 blurrier, > 1 sharper or noisier.
- Landmark error is the mean Euclidean distance between corresponding landmarks, rescaled to pixels of a
  512x512 face so that numbers at different evaluation sizes compare.
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0
LANDMARK_REFERENCE_SIZE = 512


def _as_float(img: np.ndarray) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")


def luma(img: np.ndarray) -> np.ndarray:
    """Y channel (BT.601, studio range 16..235) of a BGR image as float64; gray images pass through."""
    img = _as_float(img)
    if img.ndim == 2:
        return img
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def mse(a: np.ndarray, b: np.ndarray) -> float:
    _check_same_shape(a, b)
    return float(np.mean((_as_float(a) - _as_float(b)) ** 2))


def psnr(img: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all channels, 0..255 scale; inf for identical images."""
    error = mse(img, ref)
    if error == 0.0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE**2 / error))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 2-D Gaussian window (sums to 1)."""
    k = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F)
    return k @ k.T


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    pad = window.shape[0] // 2
    out = cv2.filter2D(x, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)
    return out[pad:-pad, pad:-pad]


def ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two single-channel float images (valid region only)."""
    _check_same_shape(x, y)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {x.shape}")
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    window = gaussian_window()
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(img: np.ndarray, ref: np.ndarray) -> float:
    """Mean SSIM on the luma channel (see module docstring); 1.0 for identical images."""
    _check_same_shape(img, ref)
    return float(np.mean(ssim_map(luma(img), luma(ref))))


def gradient_energy(img: np.ndarray) -> float:
    """Mean squared Sobel gradient of the luma over interior pixels (a ramp of slope s gives s^2)."""
    y = luma(img)
    gx = cv2.Sobel(y, cv2.CV_64F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(y, cv2.CV_64F, 0, 1, ksize=3) / 8.0
    energy = (gx**2 + gy**2)[1:-1, 1:-1]
    return float(np.mean(energy))


def sharpness_ratio(img: np.ndarray, ref: np.ndarray) -> float:
    """Gradient energy of `img` relative to the reference's (1.0 = as sharp as the reference)."""
    ref_energy = gradient_energy(ref)
    if ref_energy == 0.0:
        raise ValueError("the reference image is flat (zero gradient energy); the ratio is undefined")
    return gradient_energy(img) / ref_energy


def landmark_error(
    landmarks: np.ndarray, ref_landmarks: np.ndarray, image_size: int, *, at: int = LANDMARK_REFERENCE_SIZE
) -> float:
    """Mean Euclidean distance between matching (N, 2) landmark sets measured on an `image_size` face,
    expressed in pixels of an `at`-pixel face (default 512)."""
    a, b = np.asarray(landmarks, dtype=np.float64), np.asarray(ref_landmarks, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) landmark arrays, got {a.shape} and {b.shape}")
    distances = np.linalg.norm(a - b, axis=1)
    return float(distances.mean() * at / image_size)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """Distance threshold maximising verification accuracy ("same person" when distance < threshold),
    chosen among the midpoints between consecutive sorted distances (and both ends)."""
    d = np.sort(np.unique(np.asarray(distances, dtype=np.float64)))
    candidates = np.concatenate([[d[0] - 1.0], (d[:-1] + d[1:]) / 2, [d[-1] + 1.0]])
    accuracies = [np.mean((distances < t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def verification_accuracy(
    distances: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float, list[float]]:
    """LFW protocol: for each fold, pick the threshold on the other folds and measure accuracy on it.
    Returns (mean, standard deviation, per-fold accuracies)."""
    distances, same, folds = np.asarray(distances, float), np.asarray(same, bool), np.asarray(folds)
    if not (distances.shape == same.shape == folds.shape):
        raise ValueError("distances, same and folds must have the same length")
    per_fold = []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(distances[train], same[train])
        per_fold.append(float(np.mean((distances[test] < threshold) == same[test])))
    return float(np.mean(per_fold)), float(np.std(per_fold)), per_fold
