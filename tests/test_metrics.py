"""Metric functions of model/metrics.py against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import metrics


def test_psnr_of_uniform_offset_matches_formula():
    ref = np.zeros((8, 8, 3), np.uint8)
    img = ref + 10  # MSE = 100 -> 10*log10(255^2 / 100) = 28.1308 dB
    assert metrics.psnr(img, ref) == pytest.approx(28.130803608679, abs=1e-9)


def test_psnr_single_saturated_pixel():
    ref = np.zeros((2, 2), np.uint8)
    img = ref.copy()
    img[0, 0] = 255  # MSE = 255^2 / 4 -> PSNR = 10*log10(4)
    assert metrics.psnr(img, ref) == pytest.approx(10 * math.log10(4), abs=1e-12)


def test_psnr_identical_is_infinite_and_shape_mismatch_is_an_error():
    img = np.full((4, 4, 3), 77, np.uint8)
    assert metrics.psnr(img, img) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(img, img[:2])


def test_luma_of_black_and_white_is_studio_range():
    assert metrics.luma(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert metrics.luma(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)
    pure_red = np.zeros((1, 1, 3), np.uint8)
    pure_red[..., 2] = 255  # BGR
    assert metrics.luma(pure_red)[0, 0] == pytest.approx(16 + 65.481)


def test_ssim_of_identical_images_is_one():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constant_images_is_the_luminance_term():
    # Zero variance everywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 255)^2.
    a, b = np.full((16, 16), 100, np.uint8), np.full((16, 16), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_drops_with_noise_and_is_symmetric():
    rng = np.random.default_rng(1)
    img = rng.integers(60, 200, (40, 40, 3)).astype(np.uint8)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    value = metrics.ssim(noisy, img)
    assert 0 < value < 0.9
    assert metrics.ssim(img, noisy) == pytest.approx(value, abs=1e-12)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


def test_gradient_energy_of_a_ramp_is_slope_squared():
    x = np.arange(20, dtype=np.float64)
    horizontal = np.tile(3 * x, (20, 1))  # slope 3 along x
    assert metrics.gradient_energy(horizontal) == pytest.approx(9.0)
    plane = 3 * x[None, :] + 4 * x[:, None]  # |grad| = 5
    assert metrics.gradient_energy(plane) == pytest.approx(25.0)
    assert metrics.gradient_energy(np.full((10, 10), 50.0)) == 0.0


def test_sharpness_ratio_of_double_slope_is_four():
    x = np.arange(16, dtype=np.float64)
    assert metrics.sharpness_ratio(np.tile(6 * x, (16, 1)), np.tile(3 * x, (16, 1))) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="flat"):
        metrics.sharpness_ratio(np.tile(x, (16, 1)), np.zeros((16, 16)))


def test_landmark_error_is_rescaled_to_512_pixels():
    ref = np.array([[10.0, 10.0], [50.0, 60.0]])
    moved = ref + np.array([3.0, 4.0])  # each point off by 5 px at 256 -> 10 px at 512
    assert metrics.landmark_error(moved, ref, image_size=256) == pytest.approx(10.0)
    assert metrics.landmark_error(ref, ref, image_size=512) == 0.0
    with pytest.raises(ValueError, match="landmark"):
        metrics.landmark_error(ref[:1], ref, image_size=256)


def test_best_threshold_separates_separable_pairs():
    distances = np.array([0.2, 0.3, 0.4, 0.7, 0.8])
    same = np.array([True, True, True, False, False])
    assert metrics.best_threshold(distances, same) == pytest.approx(0.55)  # midpoint of 0.4 and 0.7


def test_verification_accuracy_by_cross_validation_by_hand():
    distances = np.array([0.3, 0.6, 0.7, 0.4, 0.2, 0.4, 0.6, 0.8])
    same = np.array([True, True, False, False, True, True, False, False])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # Fold 0 is scored with fold 1's threshold 0.5 (it separates fold 1): 0.3 ok, 0.6 no, 0.7 ok, 0.4 no.
    # Fold 1 is scored with fold 0's: candidates 0.35 and 0.65 both reach 3/4, the first (0.35) wins;
    # on fold 1: 0.2 ok, 0.4 (same person) no, 0.6 ok, 0.8 ok.
    mean, std, per_fold = metrics.verification_accuracy(distances, same, folds)
    assert per_fold == [0.5, 0.75]
    assert mean == pytest.approx(0.625) and std == pytest.approx(0.125)
    with pytest.raises(ValueError, match="same length"):
        metrics.verification_accuracy(distances, same[:3], folds)
