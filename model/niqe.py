"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013), implemented
from the paper and its reference MATLAB code, with a **face-domain** pristine model.

No pretrained NIQE parameters can be downloaded here, and the classic ones were fitted on 125 natural
scenes anyway. The pristine model shipped in model/data/niqe_faces.npz is fitted on the 4,500 aligned
high-quality faces of ../shared/data/faces/train-256 by `python benchmarks/fit_niqe.py`. Scores are therefore
"distance from the statistics of sharp aligned 256-px faces": lower is better, comparable between methods
on faces, not with published NIQE numbers on natural images. Score faces at 256x256 (`face_niqe` resizes).

Algorithm (one grayscale image, values 0..255):
1. MSCN coefficients: (I - mu) / (sigma + 1), mu and sigma from a 7x7 Gaussian window (sigma 7/6).
2. The image is centre-cropped to a multiple of the 96x96 patch size (the MATLAB code crops top-left; the
   centre keeps more of an aligned face) and cut into non-overlapping patches.
3. Per patch, 18 features: GGD fit of the MSCN coefficients (shape, variance) and AGGD fits (shape, mean,
   left variance, right variance) of the products of horizontally, vertically and both diagonally
   neighbouring coefficients. The same at half resolution (48x48 patches of the 2x downscaled image):
   36 features per patch.
4. Pristine model: only patches whose sharpness (mean local sigma) exceeds 0.75x the sharpest patch of
   their image are kept; a multivariate Gaussian (mean, covariance) is fitted to their features.
5. A test image's patches (all of them) give its own Gaussian; NIQE is
   sqrt((mu_p - mu_t)^T ((C_p + C_t) / 2)^+ (mu_p - mu_t)).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from scipy.special import gammaln

PATCH_SIZE = 96
SHARPNESS_THRESHOLD = 0.75
NIQE_FACE_SIZE = 256
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "niqe_faces.npz"

_GAMMA_GRID = np.arange(0.2, 10.0 + 1e-9, 0.001)
# GGD: rho(g) = G(1/g) G(3/g) / G(2/g)^2 ; AGGD: r(g) = G(2/g)^2 / (G(1/g) G(3/g)).
_GGD_RATIO = np.exp(gammaln(1 / _GAMMA_GRID) + gammaln(3 / _GAMMA_GRID) - 2 * gammaln(2 / _GAMMA_GRID))
_AGGD_RATIO = 1.0 / _GGD_RATIO
_NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
_EPS = 1e-12


@dataclass(frozen=True)
class NiqeModel:
    """Multivariate Gaussian of pristine patch features."""

    mean: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    n_images: int
    n_patches: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            mean=self.mean.astype(np.float64),
            cov=self.cov.astype(np.float64),
            n_images=self.n_images,
            n_patches=self.n_patches,
            patch_size=PATCH_SIZE,
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> NiqeModel:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"NIQE pristine model {path} not found; fit it with `python benchmarks/fit_niqe.py`"
            )
        with np.load(path) as data:
            return cls(
                mean=data["mean"],
                cov=data["cov"],
                n_images=int(data["n_images"]),
                n_patches=int(data["n_patches"]),
            )


@cache
def default_model() -> NiqeModel:
    return NiqeModel.load(DEFAULT_MODEL_PATH)


def to_gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img.astype(np.uint8) if img.dtype != np.uint8 else img, cv2.COLOR_BGR2GRAY)
    return img.astype(np.float64)


def mscn(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients and the local sigma map."""
    k = cv2.getGaussianKernel(7, 7 / 6, ktype=cv2.CV_64F)
    window = k @ k.T
    mu = cv2.filter2D(gray, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE)
    mu_sq = cv2.filter2D(gray * gray, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(mu_sq - mu * mu))
    return (gray - mu) / (sigma + 1.0), sigma


def _nearest_gamma(ratio_grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    return _GAMMA_GRID[np.argmin(np.abs(ratio_grid[None, :] - values[:, None]), axis=1)]


def fit_ggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matching GGD fit per row of `x` (n, m): shape alpha and variance sigma^2."""
    sigma_sq = np.mean(x * x, axis=1)
    mean_abs = np.mean(np.abs(x), axis=1)
    rho = sigma_sq / np.maximum(mean_abs**2, _EPS)
    return _nearest_gamma(_GGD_RATIO, rho), sigma_sq


def fit_aggd(x: np.ndarray) -> np.ndarray:
    """AGGD fit per row of `x` (n, m): columns alpha, mean, left variance, right variance."""
    negative, positive = x < 0, x > 0
    left_std = np.sqrt(np.sum(x * x * negative, axis=1) / np.maximum(negative.sum(axis=1), 1))
    right_std = np.sqrt(np.sum(x * x * positive, axis=1) / np.maximum(positive.sum(axis=1), 1))
    gamma_hat = left_std / np.maximum(right_std, _EPS)
    r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.maximum(np.mean(x * x, axis=1), _EPS)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _nearest_gamma(_AGGD_RATIO, r_hat_norm)
    scale = np.exp(0.5 * (gammaln(1 / alpha) - gammaln(3 / alpha)))
    beta_left, beta_right = left_std * scale, right_std * scale
    mean = (beta_right - beta_left) * np.exp(gammaln(2 / alpha) - gammaln(1 / alpha))
    return np.stack([alpha, mean, beta_left**2, beta_right**2], axis=1)


def _patches(x: np.ndarray, size: int) -> np.ndarray:
    rows, cols = x.shape[0] // size, x.shape[1] // size
    return x[: rows * size, : cols * size].reshape(rows, size, cols, size).swapaxes(1, 2).reshape(-1, size, size)


def patch_features(mscn_coefficients: np.ndarray, size: int) -> np.ndarray:
    """18 NIQE features for each non-overlapping `size` x `size` patch: (n_patches, 18)."""
    blocks = _patches(mscn_coefficients, size)
    flat = blocks.reshape(len(blocks), -1)
    alpha, sigma_sq = fit_ggd(flat)
    columns = [alpha[:, None], sigma_sq[:, None]]
    for shift in _NEIGHBOUR_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        columns.append(fit_aggd(products.reshape(len(blocks), -1)))
    return np.concatenate(columns, axis=1)


def _centre_crop(gray: np.ndarray, multiple: int) -> np.ndarray:
    h, w = gray.shape
    ch, cw = h // multiple * multiple, w // multiple * multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"NIQE needs images of at least {multiple}x{multiple} pixels, got {w}x{h}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return gray[top : top + ch, left : left + cw]


def image_features(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_patches, 36) features at two scales and each patch's sharpness (mean local sigma)."""
    gray = _centre_crop(to_gray(img), PATCH_SIZE)
    coefficients, sigma = mscn(gray)
    sharpness = _patches(sigma, PATCH_SIZE).mean(axis=(1, 2))
    half = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
    half_coefficients, _ = mscn(half)
    features = np.concatenate(
        [patch_features(coefficients, PATCH_SIZE), patch_features(half_coefficients, PATCH_SIZE // 2)],
        axis=1,
    )
    return features, sharpness


def fit_pristine_model(images: Iterable[np.ndarray]) -> NiqeModel:
    """Fit the pristine Gaussian from the sharpest patches of each image."""
    selected, n_images = [], 0
    for img in images:
        features, sharpness = image_features(img)
        keep = sharpness > SHARPNESS_THRESHOLD * sharpness.max()
        selected.append(features[keep])
        n_images += 1
    if n_images == 0:
        raise ValueError("no images given to fit the NIQE pristine model")
    rows = np.concatenate(selected)
    return NiqeModel(mean=rows.mean(axis=0), cov=np.cov(rows, rowvar=False), n_images=n_images, n_patches=len(rows))


def niqe(img: np.ndarray, model: NiqeModel | None = None) -> float:
    """NIQE score of an image as given (lower = closer to the pristine statistics)."""
    model = model or default_model()
    features, _ = image_features(img)
    mean = features.mean(axis=0)
    cov = np.cov(features, rowvar=False) if len(features) > 1 else np.zeros_like(model.cov)
    diff = model.mean - mean
    return float(np.sqrt(max(diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff, 0.0)))


def face_niqe(face: np.ndarray, model: NiqeModel | None = None) -> float:
    """NIQE of an aligned face after resizing it to the pristine model's 256x256 face size."""
    if face.shape[0] != NIQE_FACE_SIZE or face.shape[1] != NIQE_FACE_SIZE:
        shrinking = face.shape[0] > NIQE_FACE_SIZE
        face = cv2.resize(
            face,
            (NIQE_FACE_SIZE, NIQE_FACE_SIZE),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC,
        )
    return niqe(face, model)
