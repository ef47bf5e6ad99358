"""The torch port of dlib's face-recognition ResNet (model/dlib_resnet.py) against dlib itself, on the real weights
shipped by face-recognition-models and real aligned faces from ../shared/data/faces/val-512."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model.dlib_resnet import (
    CHIP_SIZE,
    DlibFormatError,
    add_zero_padded,
    chip_sampling,
    extract_face_chips,
    face_chip_details,
    load_dlib_face_resnet,
    read_dlib_face_resnet,
)
from model.identity import ALIGNED_FACE_BOX, scale_box

dlib = pytest.importorskip("dlib", reason="dlib (pip package dlib-bin) is not installed")

N_FACES = 3


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_paths() -> dict[str, Path]:
    from model.dlib_models import FACE_RECOGNITION_RESNET, SHAPE_PREDICTOR_5, model_file

    try:
        return {"resnet": model_file(FACE_RECOGNITION_RESNET), "shape5": model_file(SHAPE_PREDICTOR_5)}
    except RuntimeError as exc:
        pytest.skip(f"dlib model files unavailable: {exc}")


@pytest.fixture(scope="module")
def net(model_paths):
    return load_dlib_face_resnet(model_paths["resnet"])


@pytest.fixture(scope="module")
def recognizer(model_paths):
    return dlib.face_recognition_model_v1(str(model_paths["resnet"]))


@pytest.fixture(scope="module")
def faces(shared_dir, model_paths) -> dict[int, list[tuple[np.ndarray, object]]]:
    """{side: [(RGB uint8 image, dlib 5-point shape)]} for the first val-512 faces at 512 and 128 px, with
    landmarks found as model/identity.py finds them on aligned faces (shape predictor in ALIGNED_FACE_BOX)."""
    folder = shared_dir / "data" / "faces" / "val-512"
    paths = sorted(folder.glob("*.jpg"))[:N_FACES]
    if len(paths) < N_FACES:
        pytest.skip(f"need {N_FACES} faces in {folder}")
    predictor = dlib.shape_predictor(str(model_paths["shape5"]))
    result = {}
    for side in (512, 128):
        result[side] = []
        for path in paths:
            bgr = cv2.resize(cv2.imread(str(path)), (side, side), interpolation=cv2.INTER_AREA)
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            shape = predictor(rgb, dlib.rectangle(*scale_box(ALIGNED_FACE_BOX, side, side)))
            result[side].append((rgb, shape))
    return result


def _landmarks(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float()


def _chip_pixels(chips: torch.Tensor) -> np.ndarray:
    return chips[0].permute(1, 2, 0).numpy()


def _rotated_face(rgb: np.ndarray, shape, degrees: float) -> tuple[np.ndarray, object]:
    """The image rotated about its centre with its landmarks moved along (rounded, as dlib points are)."""
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    rotated = cv2.warpAffine(rgb, matrix, (w, h))
    points = np.rint(np.c_[_landmarks(shape), np.ones(5)] @ matrix.T).astype(int)
    parts = [dlib.point(int(x), int(y)) for x, y in points]
    return rotated, dlib.full_object_detection(dlib.rectangle(0, 0, w - 1, h - 1), parts)


# -------------------------------------------------------------------------------------------------- the weights


def test_reader_finds_dlibs_layers_and_input_means(model_paths):
    weights = read_dlib_face_resnet(model_paths["resnet"])
    assert len(weights.convs) == len(weights.affines) == 29
    assert weights.convs[0][0].shape == (32, 3, 7, 7) and weights.convs[-1][0].shape == (256, 256, 3, 3)
    assert weights.fc.shape == (256, 128)
    assert weights.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)


def test_loaded_network_is_frozen(net):
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())


def test_a_truncated_file_is_rejected(model_paths, tmp_path):
    broken = tmp_path / "truncated.dat"
    broken.write_bytes(model_paths["resnet"].read_bytes()[:100_000])
    with pytest.raises(DlibFormatError, match="end of file"):
        read_dlib_face_resnet(broken)


def test_add_prev_zero_pads_channels_and_the_bottom_right():
    small = torch.ones(1, 1, 2, 2)
    large = torch.full((1, 2, 3, 3), 10.0)
    total = add_zero_padded(small, large)
    assert total.shape == (1, 2, 3, 3)
    assert torch.equal(total[0, 0, :2, :2], torch.full((2, 2), 11.0))
    assert total[0, 0, 2].eq(10).all() and total[0, 1].eq(10).all()


def test_network_on_a_dlib_chip_equals_dlibs_descriptor(net, recognizer, faces):
    worst = 0.0
    for rgb, shape in faces[512]:
        chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=0.25)
        expected = np.array(recognizer.compute_face_descriptor(chip))
        with torch.no_grad():
            got = net(_to_tensor(chip))[0].double().numpy()
        worst = max(worst, float(np.abs(got - expected).max()))
    print(f"max |torch - dlib| on dlib chips: {worst:.2e}")
    assert worst < 1e-4


# -------------------------------------------------------------------------------------------------- face chips


@pytest.mark.parametrize("side", [512, 128])
def test_chip_details_equal_dlibs(faces, side):
    for _, shape in faces[side]:
        expected = dlib.get_face_chip_details(shape, CHIP_SIZE, 0.25)
        got = face_chip_details(_landmarks(shape))
        rect = expected.rect
        assert got.rect == pytest.approx((rect.left(), rect.top(), rect.right(), rect.bottom()), abs=1e-9)
        assert got.angle == pytest.approx(expected.angle, abs=1e-12)


@pytest.mark.parametrize("variant", ["512", "128", "512-rotated"])
def test_chip_extraction_matches_get_face_chip(faces, variant):
    """Smooth chips are within uint8 truncation of dlib's; quantized ones are dlib's pixels. The 512-px faces
    go through one level of dlib's anti-aliasing pyramid, the 128-px ones through none."""
    side = int(variant[:3])
    for rgb, shape in faces[side]:
        if variant.endswith("rotated"):
            rgb, shape = _rotated_face(rgb, shape, 20.0)
        expected = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=0.25).astype(np.float64)
        image, landmarks = _to_tensor(rgb), _landmarks(shape)[None]
        smooth = _chip_pixels(extract_face_chips(image, landmarks))
        quantized = _chip_pixels(extract_face_chips(image, landmarks, quantize=True))
        levels = chip_sampling(face_chip_details(landmarks[0]), *rgb.shape[:2]).levels
        assert levels == (1 if side == 512 else 0)
        assert np.abs(smooth - expected).mean() < 0.5 * (levels + 1) + 0.1
        assert np.abs(smooth - expected).max() <= levels + 1 + 1e-3
        assert (quantized != expected).mean() < 1e-3


@pytest.mark.parametrize("side", [512, 128])
def test_full_pipeline_embedding_matches_compute_face_descriptor(net, recognizer, faces, side):
    images = torch.cat([_to_tensor(rgb) for rgb, _ in faces[side]])
    landmarks = np.stack([_landmarks(shape) for _, shape in faces[side]])
    expected = np.stack([np.array(recognizer.compute_face_descriptor(rgb, shape)) for rgb, shape in faces[side]])
    with torch.no_grad():
        smooth = net.embed(images, landmarks).double().numpy()
        quantized = net.embed(images, landmarks, quantize=True).double().numpy()
        unit_range = net.embed(images / 127.5 - 1, landmarks, value_range=(-1, 1)).double().numpy()
    smooth_dist = np.linalg.norm(smooth - expected, axis=1).max()
    quantized_dist = np.linalg.norm(quantized - expected, axis=1).max()
    print(f"{side} px: embedding distance to dlib {smooth_dist:.4f} (smooth), {quantized_dist:.1e} (quantized)")
    assert smooth_dist < 0.02
    assert quantized_dist < 1e-3
    assert np.abs(unit_range - smooth).max() < 1e-4


def test_gradients_reach_the_image_through_chip_and_network(net, faces):
    rgb, shape = faces[128][0]
    target = _to_tensor(rgb)
    image = _to_tensor(cv2.GaussianBlur(rgb, (0, 0), 2)).requires_grad_()
    landmarks = _landmarks(shape)[None]
    distance = (net.embed(image, landmarks) - net.embed(target, landmarks)).norm()
    distance.backward()
    grad = image.grad
    assert math.isfinite(distance.item()) and distance.item() > 0
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    left, top, right, bottom = chip_sampling(face_chip_details(landmarks[0]), 128, 128).crop
    outside = grad.clone()
    outside[..., top : bottom + 1, left : right + 1] = 0
    assert outside.abs().sum() == 0  # only pixels inside dlib's crop box feed the chip
