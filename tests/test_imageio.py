"""model/imageio.py on generated hostile and unusual files."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from model.imageio import ImageError, decode_image, encode_image, output_extension


def gradient_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth RGB test image (distinct channels so orientation and channel order are checkable)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(np.uint8)


def pil_bytes(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height RGB pixels, with a tiny (wrong) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + png_chunk(b"IEND", b"")
    )


def error_code(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, **kwargs)
    assert str(info.value)  # a human-readable reason is always given
    return info.value.code


def test_empty_file():
    assert error_code(b"") == "empty"


def test_text_and_html_named_png_are_not_images():
    with pytest.raises(ImageError, match="text") as info:
        decode_image(b"hello, this is not a photo\n")
    assert info.value.code == "not_an_image"
    with pytest.raises(ImageError, match="HTML") as info:
        decode_image(b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_jpeg_is_an_error_not_a_gray_picture(cut):
    data = pil_bytes(Image.fromarray(gradient_rgb(256, 256)), "JPEG", quality=90)
    assert error_code(data[: int(len(data) * cut)]) == "truncated"


def test_truncated_png():
    data = pil_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    assert error_code(data[: len(data) // 2]) == "truncated"


def test_huge_header_refused_before_decoding():
    assert error_code(png_header_only(100_000, 100_000)) == "too_large"


def test_max_pixels_is_configurable():
    data = pil_bytes(Image.fromarray(gradient_rgb(100, 100)), "PNG")
    assert error_code(data, max_pixels=9_999) == "too_large"
    assert decode_image(data, max_pixels=10_000).width == 100


def test_degenerate_dimensions():
    assert error_code(pil_bytes(Image.new("RGB", (3000, 1)), "PNG")) == "bad_dimensions"


def test_rgb_jpeg_is_bgr():
    rgb = gradient_rgb()
    image = decode_image(pil_bytes(Image.fromarray(rgb), "PNG"))
    assert image.source_format == "PNG" and image.bit_depth == 8 and image.alpha is None and not image.is_gray
    np.testing.assert_array_equal(image.pixels, rgb[:, :, ::-1])


def test_cmyk_jpeg_converted_to_rgb():
    rgb = gradient_rgb()
    data = pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    image = decode_image(data)
    assert image.pixels.shape == (48, 64, 3) and image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.astype(int) - rgb[:, :, ::-1]).mean() < 6
    assert output_extension(image) == "jpg"


def test_16_bit_png_keeps_its_depth_and_round_trips():
    rng = np.random.default_rng(1)
    bgr16 = rng.integers(0, 65535, (40, 30, 3), dtype=np.uint16)
    _, buffer = cv2.imencode(".png", bgr16)
    image = decode_image(buffer.tobytes())
    assert image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, bgr16)
    assert output_extension(image, "jpg") == "png"  # JPEG cannot hold 16 bit
    again = decode_image(encode_image(image.pixels, ext="png"))
    np.testing.assert_array_equal(again.pixels, bgr16)


def test_16_bit_gray_png():
    gray16 = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).astype(np.uint16)
    _, buffer = cv2.imencode(".png", gray16)
    image = decode_image(buffer.tobytes())
    assert image.is_gray and image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels[:, :, 1], gray16)
    out = cv2.imdecode(np.frombuffer(encode_image(image.pixels, gray=True), np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.ndim == 2 and out.dtype == np.uint16
    np.testing.assert_array_equal(out, gray16)


def test_palette_png_with_and_without_transparency():
    palette_image = Image.fromarray(gradient_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image = decode_image(pil_bytes(palette_image, "PNG"))
    assert image.pixels.shape == (48, 64, 3) and image.alpha is None
    palette_image.info["transparency"] = 0
    image = decode_image(pil_bytes(palette_image, "PNG", transparency=0))
    assert image.alpha is not None and (image.alpha == 0).any() and (image.alpha == 255).any()


def test_gray_and_gray_alpha():
    gray = gradient_rgb()[:, :, 0]
    image = decode_image(pil_bytes(Image.fromarray(gray, "L"), "PNG"))
    assert image.is_gray and image.alpha is None
    np.testing.assert_array_equal(image.pixels[:, :, 2], gray)
    alpha = np.full_like(gray, 200)
    image = decode_image(pil_bytes(Image.fromarray(np.stack([gray, alpha], -1), "LA"), "PNG"))
    assert image.is_gray
    np.testing.assert_array_equal(image.alpha, alpha)
    encoded = encode_image(image.pixels, alpha=image.alpha, gray=True)
    np.testing.assert_array_equal(decode_image(encoded).alpha, alpha)


def test_rgba_alpha_kept():
    rgba = np.dstack([gradient_rgb(), np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)])
    image = decode_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(image.alpha, rgba[:, :, 3])
    assert output_extension(image, "jpg") == "png"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(orientation):
    rgb = gradient_rgb()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(Image.fromarray(rgb), "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    image = decode_image(data)
    np.testing.assert_array_equal(image.pixels, expected[:, :, ::-1])
    assert (image.height, image.width) == ((64, 48) if orientation >= 5 else (48, 64))


def test_animated_gif_refused_single_frame_gif_accepted():
    frames = [
        Image.fromarray(gradient_rgb()).convert("P"),
        Image.fromarray(255 - gradient_rgb()).convert("P"),
    ]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:])
    assert error_code(animated.getvalue()) == "unsupported_format"
    assert decode_image(pil_bytes(frames[0], "GIF")).pixels.shape == (48, 64, 3)


def test_decode_from_path(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(pil_bytes(Image.fromarray(gradient_rgb()), "JPEG"))
    image = decode_image(path)
    assert image.source_format == "JPEG" and output_extension(image) == "jpg"
    assert output_extension(image, "png") == "png"


def test_encode_jpeg_refuses_alpha():
    with pytest.raises(ValueError):
        encode_image(gradient_rgb(), alpha=np.zeros((48, 64), np.uint8), ext="jpg")


@pytest.mark.parametrize("ext", [".tiff", ".webp", ".bmp"])
def test_other_lossless_formats(ext):
    bgr = gradient_rgb()[:, :, ::-1].copy()
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    image = decode_image(cv2.imencode(ext, bgr, params)[1].tobytes())
    np.testing.assert_array_equal(image.pixels, bgr)
    assert output_extension(image) == "png"


def test_16_bit_tiff():
    bgr16 = np.random.default_rng(2).integers(0, 65535, (40, 30, 3), dtype=np.uint16)
    image = decode_image(cv2.imencode(".tiff", bgr16)[1].tobytes())
    assert image.source_format == "TIFF" and image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, bgr16)


def test_an_output_too_large_for_jpeg_becomes_png_under_auto_and_fails_precisely_as_jpg():
    image = decode_image(pil_bytes(Image.fromarray(gradient_rgb()), "JPEG"))
    assert output_extension(image, "auto", out_size=(65_500, 24)) == "jpg"
    assert output_extension(image, "auto", out_size=(24, 65_501)) == "png"
    with pytest.raises(ImageError) as info:
        output_extension(image, "jpg", out_size=(65_501, 24))
    assert info.value.code == "too_large_for_jpeg" and "65501x24" in str(info.value)
    with pytest.raises(ImageError) as info:  # the encoder refuses it too, with the same code
        encode_image(np.zeros((8, 65_501, 3), np.uint8), ext="jpg")
    assert info.value.code == "too_large_for_jpeg"


def test_a_png_with_a_broken_header_crc_is_corrupt_not_a_non_image():
    good = pil_bytes(Image.fromarray(gradient_rgb()), "PNG")
    crc_at = 8 + 4 + 4 + 13  # signature, IHDR length and type, IHDR payload
    broken = good[:crc_at] + bytes(b ^ 0xFF for b in good[crc_at : crc_at + 4]) + good[crc_at + 4 :]
    with pytest.raises(ImageError) as info:
        decode_image(broken)
    assert info.value.code == "corrupt"
    assert "damaged PNG" in str(info.value) and "checksum" in str(info.value)
    # bytes that merely look binary are still "not an image"; text starting with "BM" is not a BMP
    assert error_code(bytes(range(256)) * 4) == "not_an_image"
    assert error_code(b"BMW service records, 1970-1985\n" * 20) == "not_an_image"
