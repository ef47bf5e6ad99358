"""Synthetic degradations that turn a high-quality face into a low-quality one.

`degrade` reproduces GFPGAN's training degradation (ffhq_degradation_dataset.py): a mixed isotropic /
anisotropic Gaussian blur, downsampling, Gaussian noise, JPEG compression, resizing back, then optional colour
jitter and gray. Every random draw comes from the `numpy.random.Generator` passed in, so a seed reproduces a
degradation exactly. `apply_preset` gives the fixed evaluation settings (mild / medium / severe).

Images are float32 BGR in [0, 1] (HxWx3) unless a function says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges of GFPGAN's training degradation (its published defaults)."""

    kernel_size: int = 41
    iso_prob: float = 0.5  # else anisotropic
    blur_sigma: tuple[float, float] = (0.1, 10.0)
    downsample_range: tuple[float, float] = (0.8, 8.0)
    noise_range: tuple[float, float] = (0.0, 20.0)  # sigma on the 0..255 scale
    jpeg_range: tuple[int, int] = (60, 100)
    color_jitter_prob: float = 0.3
    color_jitter_shift: float = 20.0  # on the 0..255 scale
    gray_prob: float = 0.01


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Normalised (an)isotropic 2-D Gaussian kernel rotated by `theta` radians."""
    half = (size - 1) / 2
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    cos, sin = math.cos(theta), math.sin(theta)
    u = cos * xs + sin * ys
    v = -sin * xs + cos * ys
    kernel = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def random_blur_kernel(cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    lo, hi = cfg.blur_sigma
    if rng.random() < cfg.iso_prob:
        sigma = rng.uniform(lo, hi)
        return gaussian_kernel(cfg.kernel_size, sigma, sigma, 0.0)
    return gaussian_kernel(cfg.kernel_size, rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(-math.pi, math.pi))


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, width: int, height: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.resize(img, (max(1, width), max(1, height)), interpolation=interpolation)


def add_gaussian_noise(img: np.ndarray, sigma_255: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(img.shape).astype(np.float32) * (sigma_255 / 255.0)
    return np.clip(img + noise, 0.0, 1.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    as_uint8 = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", as_uint8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32).reshape(img.shape) / 255.0


def to_gray3(img: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def quantize(img: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels, as a saved low-quality image would be."""
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float32) / 255.0


def degrade(img: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """GFPGAN's random training degradation of one HQ face. Returns (lq, made_gray).

    When `made_gray` is true the caller should gray the ground truth too (as GFPGAN does) so the network is
    not asked to invent colour.
    """
    h, w = img.shape[:2]
    lq = blur(img, random_blur_kernel(cfg, rng))
    scale = rng.uniform(*cfg.downsample_range)
    lq = resize(lq, int(w / scale), int(h / scale))
    if cfg.noise_range[1] > 0:
        lq = add_gaussian_noise(lq, rng.uniform(*cfg.noise_range), rng)
    lq = jpeg_compress(lq, int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1)))
    lq = resize(lq, w, h)
    if rng.random() < cfg.color_jitter_prob:
        shift = rng.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, size=3).astype(np.float32) / 255.0
        lq = np.clip(lq + shift, 0.0, 1.0)
    made_gray = bool(rng.random() < cfg.gray_prob)
    if made_gray:
        lq = to_gray3(lq)
    return quantize(lq), made_gray


@dataclass(frozen=True)
class Preset:
    """A fixed (non-random) degradation used for evaluation."""

    blur_sigma: float
    downscale: float
    noise_sigma: float
    jpeg_quality: int


PRESETS: dict[str, Preset] = {
    "mild": Preset(blur_sigma=1.5, downscale=2.0, noise_sigma=3.0, jpeg_quality=85),
    "medium": Preset(blur_sigma=2.5, downscale=4.0, noise_sigma=5.0, jpeg_quality=70),
    "severe": Preset(blur_sigma=4.0, downscale=8.0, noise_sigma=10.0, jpeg_quality=50),
}


def degrade_fixed(img: np.ndarray, preset: Preset, rng: np.random.Generator) -> np.ndarray:
    """Blur, downscale, add noise, JPEG, then bicubic back to the input size (float BGR in [0, 1])."""
    h, w = img.shape[:2]
    lq = blur(img, gaussian_kernel(41, preset.blur_sigma, preset.blur_sigma, 0.0))
    lq = resize(lq, round(w / preset.downscale), round(h / preset.downscale), cv2.INTER_AREA)
    lq = add_gaussian_noise(lq, preset.noise_sigma, rng)
    lq = jpeg_compress(lq, preset.jpeg_quality)
    return quantize(np.clip(resize(lq, w, h, cv2.INTER_CUBIC), 0.0, 1.0))


def apply_preset(img_bgr: np.ndarray, preset: str, seed: int) -> np.ndarray:
    """Degrade a uint8 BGR image with the named preset; the same seed gives the same output."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    img = img_bgr.astype(np.float32) / 255.0
    lq = degrade_fixed(img, PRESETS[preset], np.random.default_rng(seed))
    return np.round(lq * 255.0).astype(np.uint8)
