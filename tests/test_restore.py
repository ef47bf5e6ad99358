"""model/restorer.py (Restorer API, GFPGANer compatibility) and the `wgfpgan restore` verb."""

from __future__ import annotations

import io
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from model.face.alignment import FFHQ_TEMPLATE_512, apply_affine
from model.face.detection import DetectedFace
from model.face.paste import LanczosUpsampler, inverse_affine, soft_face_mask
from model.imageio import ImageError, decode_image
from model.restorer import Restorer, blend_faces
from wgfpgan.cli import main as wgfpgan_main

PHOTO = "CodeFormer/inputs/whole_imgs/01.jpg"  # 248x189, 4 faces


class IdentityEngine:
    """A "restorer" that returns its input: isolates detection, alignment and paste-back."""

    face_size = 64
    model_version = "identity"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def restore(self, faces: np.ndarray) -> np.ndarray:
        self.calls.append(len(faces))
        return faces.copy()


class FixedDetector:
    """Reports the given faces whatever the photo (for synthetic images without real faces)."""

    def __init__(self, faces: list[DetectedFace]):
        self.faces = faces

    def detect(self, img_bgr: np.ndarray) -> list[DetectedFace]:
        return list(self.faces)


def fixed_face(center: tuple[float, float], eye_distance: float) -> DetectedFace:
    scale = eye_distance / (FFHQ_TEMPLATE_512[1, 0] - FFHQ_TEMPLATE_512[0, 0])
    landmarks = (FFHQ_TEMPLATE_512 - 256) * scale + np.array(center)
    half = 128 * scale
    box = (center[0] - half, center[1] - half, center[0] + half, center[1] + half)
    return DetectedFace(box=box, landmarks=landmarks, score=1.0)


def png_bytes(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


@pytest.fixture(scope="module")
def photo_bytes(shared_dir) -> bytes:
    return (shared_dir / "data" / "realworld" / PHOTO).read_bytes()


@pytest.fixture(scope="module")
def tiny_restorer(tiny_model_path) -> Restorer:
    return Restorer(str(tiny_model_path), upscale=2)


# -- GFPGANer-compatible enhance -------------------------------------------------------------------------
def test_enhance_whole_photo(tiny_restorer, photo_bytes):
    image = decode_image(photo_bytes).bgr8()
    cropped, restored, output = tiny_restorer.enhance(image, has_aligned=False, paste_back=True)
    assert len(cropped) == len(restored) == 4
    assert all(face.shape == (64, 64, 3) and face.dtype == np.uint8 for face in cropped + restored)
    assert output.shape == (2 * image.shape[0], 2 * image.shape[1], 3) and output.dtype == np.uint8
    _, _, no_paste = tiny_restorer.enhance(image, paste_back=False)
    assert no_paste is None
    only, _, _ = tiny_restorer.enhance(image, only_center_face=True)
    assert len(only) == 1


def test_weight_blends_pixels(tiny_restorer, shared_dir):
    face = cv2.imread(str(shared_dir / "data" / "realworld" / "GFPGAN/inputs/cropped_faces/Adele_crop.png"))
    cropped, same, output = tiny_restorer.enhance(face, has_aligned=True, weight=0.0)
    assert output is None
    np.testing.assert_array_equal(same[0], cropped[0])  # weight 0 = the input face
    _, full, _ = tiny_restorer.enhance(face, has_aligned=True, weight=1.0)
    _, half, _ = tiny_restorer.enhance(face, has_aligned=True, weight=0.5)
    assert np.abs(full[0].astype(int) - cropped[0]).mean() > 5  # the random generator changes the face
    expected = np.round((cropped[0].astype(np.float32) + full[0]) / 2)
    assert np.abs(half[0] - expected).max() <= 1
    with pytest.raises(ValueError):
        blend_faces(cropped, full, 1.5)


def test_detect_returns_alignment(tiny_restorer, photo_bytes):
    faces = tiny_restorer.detect(decode_image(photo_bytes).bgr8())
    assert len(faces) == 4
    for face in faces:
        assert face.affine.shape == (2, 3) and face.landmarks.shape == (5, 2) and face.score > 0
        eyes_in_crop = apply_affine(face.affine, face.landmarks[:2])
        np.testing.assert_allclose(eyes_in_crop, FFHQ_TEMPLATE_512[:2] / 8, atol=1.5)


def test_identity_restorer_on_a_real_photo_equals_lanczos_outside_faces(photo_bytes):
    engine = IdentityEngine()
    restorer = Restorer(engine=engine, upscale=2, batch_size=3)
    image = decode_image(photo_bytes).bgr8()
    _, _, output = restorer.enhance(image)
    assert engine.calls == [3, 1]  # the photo's faces in batches of batch_size
    background = LanczosUpsampler().upsample(image, 2)
    height, width = background.shape[:2]
    covered = np.zeros((height, width), np.float32)
    for face in restorer.detect(image):
        inverse = inverse_affine(face.affine, 2)
        covered = np.maximum(covered, soft_face_mask(inverse, 64, (0, 0, width, height), 2))
    assert (covered == 0).mean() > 0.2
    np.testing.assert_array_equal(output[covered == 0], background[covered == 0])
    # inside the faces only resampling differences (crop and paste each interpolate once), no seam
    residual = output.astype(np.float32) - background
    assert np.abs(residual).mean() < 2.0
    assert np.percentile(np.abs(residual[covered > 0]), 99) < 40


def test_enhance_keeps_alpha():
    rgba = np.dstack([np.full((60, 80, 3), 90, np.uint8), np.tile(np.arange(80, dtype=np.uint8), (60, 1))])
    restorer = Restorer(engine=IdentityEngine(), detector=FixedDetector([fixed_face((40, 30), 20)]))
    cropped, _, output = restorer.enhance(rgba)
    assert len(cropped) == 1 and output.shape == (120, 160, 4)
    np.testing.assert_array_equal(output[:, :, 3], LanczosUpsampler().upsample(rgba[:, :, 3], 2))


class FakeRealESRGANer:
    """GFPGANer's background upsampler interface: enhance(img, outscale) -> (image, mode)."""

    def enhance(self, img: np.ndarray, outscale: float) -> tuple[np.ndarray, str]:
        height, width = img.shape[:2]
        size = (int(width * outscale), int(height * outscale))
        return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST), "RGB"


def test_gfpganer_keyword_call_and_realesrgan_background():
    image = np.tile(np.linspace(20, 230, 80, dtype=np.float32), (60, 1)).astype(np.uint8)
    image = cv2.merge([image, image, 255 - image])
    restorer = Restorer(
        upscale=2,
        arch="clean",
        channel_multiplier=2,
        bg_upsampler=FakeRealESRGANer(),
        engine=IdentityEngine(),
        detector=FixedDetector([]),
    )
    _, _, output = restorer.enhance(image, has_aligned=False, only_center_face=False, paste_back=True)
    np.testing.assert_array_equal(output, FakeRealESRGANer().enhance(image, 2)[0])
    with pytest.raises(ValueError, match="original"):
        Restorer(arch="original", engine=IdentityEngine())


# -- restore_bytes ---------------------------------------------------------------------------------------
def test_restore_bytes_jpeg_deterministic(tiny_restorer, photo_bytes):
    first = tiny_restorer.restore_bytes(photo_bytes, name="01.jpg")
    second = tiny_restorer.restore_bytes(photo_bytes, name="01.jpg")
    assert first.data == second.data
    assert (first.ext, first.faces, first.width, first.height) == ("jpg", 4, 496, 378)
    assert decode_image(first.data).source_format == "JPEG"
    assert tiny_restorer.restore_bytes(photo_bytes, out_ext="png", upscale=1).ext == "png"


def test_restore_bytes_16_bit_gray_with_alpha():
    gray16 = np.tile(np.linspace(1000, 60000, 80), (60, 1)).astype(np.uint16)
    alpha16 = np.full((60, 80), 40000, np.uint16)
    data = png_bytes(cv2.merge([gray16, gray16, gray16, alpha16]))
    restorer = Restorer(engine=IdentityEngine(), detector=FixedDetector([fixed_face((40, 30), 20)]))
    result = restorer.restore_bytes(data, out_ext="jpg")
    assert (result.ext, result.faces, result.width, result.height) == ("png", 1, 160, 120)
    out = decode_image(result.data)
    assert out.bit_depth == 16 and out.alpha is not None
    assert np.abs(out.alpha.astype(int) - 40000).max() <= 1
    background = LanczosUpsampler().upsample(cv2.merge([gray16] * 3), 2)
    assert np.abs(out.pixels.astype(int) - background).max() < 257 * 8  # identity face, 16-bit kept


def test_restore_bytes_gray_stays_gray():
    gray = np.tile(np.linspace(30, 220, 80), (60, 1)).astype(np.uint8)
    restorer = Restorer(engine=IdentityEngine(), detector=FixedDetector([]))
    result = restorer.restore_bytes(png_bytes(gray))
    assert result.faces == 0  # no face is a success: the background is still upscaled
    assert cv2.imdecode(np.frombuffer(result.data, np.uint8), cv2.IMREAD_UNCHANGED).shape == (120, 160)


def test_restore_bytes_bad_input_is_an_image_error_named():
    restorer = Restorer(engine=IdentityEngine(), detector=FixedDetector([]))
    with pytest.raises(ImageError, match=r"scan\.png") as info:
        restorer.restore_bytes(b"<html>oops</html>", name="scan.png")
    assert info.value.code == "not_an_image"
    big = Restorer(engine=IdentityEngine(), detector=FixedDetector([]), max_output_pixels=10_000)
    with pytest.raises(ImageError) as info:
        big.restore_bytes(png_bytes(np.zeros((60, 80, 3), np.uint8)))
    assert info.value.code == "too_large"


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no-such-model"):
        Restorer(str(tmp_path / "no-such-model.pth"))


# -- the CLI ---------------------------------------------------------------------------------------------
def png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_cli_folder_with_bad_files(tmp_path, shared_dir, tiny_model_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    realworld = shared_dir / "data" / "realworld"
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(realworld / PHOTO, inputs / "group.jpg")
    shutil.copy(realworld / "DFDNet/TestData/TestWhole/test6.png", inputs / "portrait.png")
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "notes.png").write_text("this is not a photo\n")
    buffer = io.BytesIO()
    Image.open(realworld / "DFDNet/TestData/TestWhole/test2.jpg").save(buffer, format="JPEG")
    (inputs / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (inputs / "bomb.png").write_bytes(png_header_claiming(100_000, 100_000))
    out = tmp_path / "out"

    code = wgfpgan_main(["restore", "-i", str(inputs), "-o", str(out), "--model", str(tiny_model_path)])

    assert code == 1
    err = capsys.readouterr().err
    for name, reason in [
        ("empty.jpg", "empty"),
        ("notes.png", "not_an_image"),
        ("cut.jpg", "truncated"),
        ("bomb.png", "too_large"),
    ]:
        assert any(name in line and reason in line for line in err.splitlines()), (name, err)
    assert "restored 2 of 6 files (5 faces)" in err
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == ["group.jpg", "portrait.png"]
    assert len(list((out / "restored_faces").glob("group_*.png"))) == 4
    assert (out / "cropped_faces" / "portrait_00.png").is_file()
    assert (out / "cmp" / "group_03.png").is_file()
    assert decode_image(out / "restored_imgs" / "group.jpg").width == 2 * 248


def test_cli_aligned_with_suffix(tmp_path, shared_dir, tiny_model_path):
    face = shared_dir / "data" / "realworld" / "GFPGAN/inputs/cropped_faces/Adele_crop.png"
    out = tmp_path / "out"
    args = ["restore", "-i", str(face), "-o", str(out), "--model", str(tiny_model_path), "--aligned"]
    assert wgfpgan_main([*args, "--suffix", "v1"]) == 0
    assert (out / "restored_faces" / "Adele_crop_00_v1.png").is_file()
    assert not list((out / "restored_imgs").iterdir())  # aligned faces are not pasted back
