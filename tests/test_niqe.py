"""Face-domain NIQE (model/niqe.py): fits, feature layout, shipped model, ranking on held-out faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model import niqe


def test_ggd_fit_recovers_gaussian_and_laplacian_shapes():
    rng = np.random.default_rng(0)
    samples = np.stack([rng.normal(0, 2.0, 200_000), rng.laplace(0, 1.0, 200_000)])
    alpha, variance = niqe.fit_ggd(samples)
    assert alpha[0] == pytest.approx(2.0, abs=0.05)  # Gaussian: shape 2
    assert alpha[1] == pytest.approx(1.0, abs=0.05)  # Laplacian: shape 1
    assert variance == pytest.approx([4.0, 2.0], rel=0.02)  # sigma^2 and 2 b^2


def test_aggd_fit_of_symmetric_gaussian_and_of_an_asymmetric_gaussian():
    rng = np.random.default_rng(1)
    symmetric = rng.normal(0, 1.0, 200_000)
    # AGGD with shape 2: left half-normal sigma 0.5, right sigma 2, each side's mass proportional to sigma.
    left = rng.random(200_000) < 0.5 / (0.5 + 2.0)
    magnitude = np.abs(rng.normal(0, 1.0, 200_000))
    asymmetric = np.where(left, -0.5 * magnitude, 2.0 * magnitude)
    (alpha, mean, left_beta_sq, right_beta_sq), fitted = niqe.fit_aggd(np.stack([symmetric, asymmetric]))
    # For shape 2 the AGGD scale is beta = sigma * sqrt(2): beta^2 = 2 sigma^2.
    assert alpha == pytest.approx(2.0, abs=0.05)
    assert abs(mean) < 0.01
    assert left_beta_sq == pytest.approx(2.0, rel=0.03) and right_beta_sq == pytest.approx(2.0, rel=0.03)
    assert fitted[0] == pytest.approx(2.0, abs=0.05)
    assert fitted[2] == pytest.approx(0.5, rel=0.03) and fitted[3] == pytest.approx(8.0, rel=0.03)
    # mean = (beta_r - beta_l) * G(2/a) / G(1/a) = (2 - 0.5) * sqrt(2) / sqrt(pi)
    assert fitted[1] == pytest.approx(1.5 * np.sqrt(2 / np.pi), rel=0.03)


def test_mscn_of_a_constant_image_is_zero():
    coefficients, sigma = niqe.mscn(np.full((32, 32), 128.0))
    assert np.allclose(coefficients, 0.0, atol=1e-3) and np.allclose(sigma, 0.0, atol=1e-3)


def test_features_are_36_per_patch_and_small_images_are_rejected():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    features, sharpness = niqe.image_features(img)
    assert features.shape == (2 * 3, 36) and sharpness.shape == (6,)
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe.niqe(np.zeros((64, 64), np.uint8))


def test_shipped_face_model_is_a_valid_gaussian():
    model = niqe.default_model()
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36)
    assert np.allclose(model.cov, model.cov.T)
    assert np.linalg.eigvalsh(model.cov).min() > -1e-9
    assert model.n_images == 4500 and model.n_patches > 4500


def test_held_out_sharp_faces_score_better_than_blurred_and_noisy(shared_dir):
    files = sorted((shared_dir / "data" / "faces" / "val-512").glob("*.jpg"))[:50]
    assert len(files) == 50
    rng = np.random.default_rng(3)
    scores = {"sharp": [], "blurred": [], "noisy": []}
    for path in files:
        face = cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_AREA)
        noise = rng.normal(0, 15, face.shape)
        scores["sharp"].append(niqe.face_niqe(face))
        scores["blurred"].append(niqe.face_niqe(cv2.GaussianBlur(face, (0, 0), 2.0)))
        scores["noisy"].append(niqe.face_niqe(np.clip(face + noise, 0, 255).astype(np.uint8)))
    mean = {name: float(np.mean(values)) for name, values in scores.items()}
    assert mean["sharp"] < mean["blurred"], mean
    assert mean["sharp"] < mean["noisy"], mean
