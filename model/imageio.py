"""Decoding and encoding of archive photos, hardened against what real archives contain. No torch.

`decode_image(bytes | path)` returns a `DecodedImage`: BGR pixels (uint8, or uint16 for 16-bit PNG/TIFF),
the alpha channel kept apart (pasted through to the output unchanged), and what the output should look
like (gray stays gray, 16 bit stays 16 bit, JPEG stays JPEG under `ext="auto"`). Every bad input raises
`ImageError` with a stable `code`:

- ``empty``: zero bytes.
- ``not_an_image``: not a PNG/JPEG/WebP/TIFF/BMP/GIF file (text and HTML are named as such).
- ``too_large``: more than `max_pixels` pixels (default 80 MP), checked from the header before any pixel
  is decoded, so a decompression bomb costs nothing.
- ``bad_dimensions``: a zero side, or a side shorter than `MIN_SIDE` pixels (nothing to restore).
- ``truncated``: the pixel data ends early. PIL's `LOAD_TRUNCATED_IMAGES` stays False and `.load()` is
  called, so a cut file is an error, never half a gray picture.
- ``corrupt``: the data is damaged in another way, including a file that starts with a known image
  signature but whose header PIL refuses (e.g. a PNG with a broken IHDR checksum): damaged, not "not an
  image".
- ``too_large_for_jpeg``: the output would have a side longer than JPEG's `JPEG_MAX_SIDE` (65,500) pixels
  and JPEG was requested explicitly (under ``auto`` such an output is written as PNG instead).
- ``unsupported_format``: a format we do not process, e.g. animated GIFs and multi-page TIFFs are refused
  rather than silently reduced to their first frame (restoring only page 1 of a scanned album would lose
  the rest); MPO phone JPEGs are the exception: their first frame is the photo.

Decisions: EXIF orientation is applied (the output is upright and carries no EXIF); palette images become
RGB(A); CMYK JPEGs are converted to RGB (Adobe-inverted CMYK handled by PIL, no ICC colour management);
gray and gray+alpha are processed as BGR and written back as gray. PIL decodes 16-bit colour PNGs only at
8 bits, so 16-bit PNG/TIFF pixels are decoded by OpenCV after PIL has validated the file.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 80_000_000
MIN_SIDE = 8
JPEG_QUALITY = 95
JPEG_MAX_SIDE = 65_500  # libjpeg's limit on either side
# Formats PIL may try. Restricting the list keeps risky plugins (e.g. EPS, which runs Ghostscript) away
# from untrusted bytes. (Phone MPO files open through the JPEG plugin.)
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})  # the DIB header sizes PIL reads
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})
ORIENTATION_TAG = 0x0112

ImageFile.LOAD_TRUNCATED_IMAGES = False  # the default; stated because the module depends on it


class ImageError(ValueError):
    """A photo that cannot be processed. `code` is a short stable slug (see the module docstring);
    str(exc) is a human-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class DecodedImage:
    pixels: np.ndarray  # H x W x 3 BGR, uint8 or uint16
    alpha: np.ndarray | None  # H x W, same dtype as pixels, or None
    source_format: str  # PIL format name: "PNG", "JPEG", ...
    is_gray: bool  # the source had no colour: the output is written as gray

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    def bgr8(self) -> np.ndarray:
        """The pixels as uint8 BGR (what detection and the generator see)."""
        return to_uint8(self.pixels)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)


def decode_image(source: bytes | str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a photo from bytes or a file path. Raises ImageError for anything that is not a usable image."""
    data = Path(source).read_bytes() if isinstance(source, str | os.PathLike) else bytes(source)
    if not data:
        raise ImageError("empty", "the file is empty (0 bytes)")
    image = _open(data)
    _check_dimensions(image, max_pixels)
    _check_single_frame(image)
    _load(image)
    orientation = _orientation(image)
    if _is_16_bit(image, data):
        pixels, alpha = _decode_16_bit(data)
    else:
        pixels, alpha = _pil_to_bgr(image)
    pixels, alpha = _apply_orientation(pixels, orientation), _apply_orientation(alpha, orientation)
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        source_format=str(image.format),
        is_gray=image.mode in GRAY_MODES or (image.mode == "P" and _palette_is_gray(image)),
    )


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", f"refused before decoding: {exc}") from exc
    except UnidentifiedImageError as exc:
        claimed = _signature_format(data)
        if claimed is not None:
            raise _damaged_header(data, claimed) from exc
        raise ImageError("not_an_image", f"not an image: {_describe_non_image(data)}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _signature_format(data) is None:  # a loose plugin match (e.g. text starting with "BM")
            raise ImageError("not_an_image", f"not an image: {_describe_non_image(data)}") from exc
        raise ImageError("corrupt", f"unreadable image header: {exc}") from exc


def _signature_format(data: bytes) -> str | None:
    """The allowed format whose magic bytes start `data`, if any (what the file claims to be)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM") and len(data) >= 18 and int.from_bytes(data[14:18], "little") in BMP_HEADER_SIZES:
        return "BMP"
    return None


def _damaged_header(data: bytes, claimed: str) -> ImageError:
    """`corrupt` (or `truncated` if it ends inside the header), with the plugin's own reason."""
    Image.init()
    factory = Image.OPEN[claimed][0]
    try:
        factory(io.BytesIO(data), "").close()
        reason = "unreadable header"
    except EOFError as exc:
        return ImageError("truncated", f"the {claimed} file ends inside its header ({exc or 'end of data'})")
    except struct.error:
        reason = "the header is cut short"
    except Exception as exc:  # whatever the plugin raised is the reason; the verdict is the same
        reason = str(exc) or type(exc).__name__
    if "truncat" in reason.lower():
        return ImageError("truncated", f"the {claimed} file ends inside its header ({reason})")
    return ImageError("corrupt", f"a damaged {claimed} file: {reason}")


def _describe_non_image(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "the file is an HTML page"
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary data (expected one of {', '.join(ALLOWED_FORMATS)})"
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "the file is text"
    return f"unknown data (expected one of {', '.join(ALLOWED_FORMATS)})"


def _check_dimensions(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{width}x{height} ({width * height / 1e6:.1f} MP) exceeds the {max_pixels / 1e6:.1f} MP limit",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError("bad_dimensions", f"{width}x{height}: a side is shorter than {MIN_SIDE} pixels")


def _check_single_frame(image: Image.Image) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format not in JPEG_FORMATS:
        raise ImageError(
            "unsupported_format",
            f"{image.format} with {frames} frames/pages: extract the frames and submit them one by one",
        )


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except (OSError, EOFError, SyntaxError, ValueError) as exc:
        message = str(exc)
        if isinstance(exc, EOFError) or "truncat" in message.lower() or "end of file" in message.lower():
            raise ImageError("truncated", f"the file is truncated ({message or 'unexpected end of data'})") from exc
        raise ImageError("corrupt", f"damaged pixel data ({message})") from exc


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # unreadable EXIF must not cost the photo; it only loses the rotation hint
        return 1


def _apply_orientation(pixels: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Apply EXIF orientation 1..8 (rotations and mirrors) to an H x W (x C) array."""
    if pixels is None or orientation not in range(2, 9):
        return pixels
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    return transforms[orientation](pixels)


def _is_16_bit(image: Image.Image, data: bytes) -> bool:
    if image.format == "PNG":
        return len(data) > 24 and data[24] == 16  # IHDR bit depth
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))  # BitsPerSample
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _decode_16_bit(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        raise ImageError("unsupported_format", "16-bit image layout that OpenCV cannot decode")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), None
    if array.shape[2] == 2:  # gray + alpha
        return cv2.cvtColor(array[:, :, 0], cv2.COLOR_GRAY2BGR), array[:, :, 1]
    if array.shape[2] == 4:
        return array[:, :, :3], array[:, :, 3]
    return array, None


def _palette_is_gray(image: Image.Image) -> bool:
    rgb = np.asarray(image.convert("RGB"))
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _pil_to_bgr(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    if mode == "P":
        mode_after = "RGBA" if "transparency" in image.info or image.palette.mode == "RGBA" else "RGB"
        image, mode = image.convert(mode_after), mode_after
    if mode in ("LA", "La", "PA", "RGBa"):
        image, mode = image.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        rgba = np.asarray(image)
        return cv2.cvtColor(rgba[:, :, :3], cv2.COLOR_RGB2BGR), rgba[:, :, 3].copy()
    if mode in ("I", "F"):
        raise ImageError("unsupported_format", f"{image.format} with {mode} (32-bit) pixels is not supported")
    if mode != "RGB":
        image = image.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), None


def output_extension(image: DecodedImage, requested: str = "auto", *, out_size: tuple[int, int] | None = None) -> str:
    """The output extension, png or jpg: `auto` keeps the input's family; alpha and 16-bit force PNG.

    `out_size` is the output's (width, height) (default: the input's). An output too large for JPEG
    becomes PNG under `auto`; an explicit `jpg` then raises ImageError("too_large_for_jpeg")."""
    if requested not in ("auto", "png", "jpg", "jpeg"):
        raise ValueError(f"unknown output extension {requested!r} (auto, png or jpg)")
    if image.alpha is not None or image.bit_depth == 16:
        return "png"
    if requested == "png" or (requested == "auto" and image.source_format not in JPEG_FORMATS):
        return "png"
    width, height = out_size or (image.width, image.height)
    if max(width, height) <= JPEG_MAX_SIDE:
        return "jpg"
    if requested == "auto":
        return "png"
    raise _too_large_for_jpeg(width, height)


def _too_large_for_jpeg(width: int, height: int) -> ImageError:
    return ImageError(
        "too_large_for_jpeg",
        f"a {width}x{height} output exceeds JPEG's {JPEG_MAX_SIDE} px side limit: ask for png (or auto)",
    )


def encode_image(pixels: np.ndarray, *, alpha: np.ndarray | None = None, ext: str = "png", gray: bool = False) -> bytes:
    """Encode BGR (uint8/uint16) pixels, with optional alpha, as PNG or JPEG (quality 95)."""
    if gray:  # PNG has gray+alpha but OpenCV cannot write it: gray+alpha is written as equal-channel BGRA
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
        if alpha is not None:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if alpha is not None:
        pixels = cv2.merge([*cv2.split(pixels), alpha.astype(pixels.dtype)])
    if ext == "png":
        ok, buffer = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    elif ext in ("jpg", "jpeg"):
        if alpha is not None or pixels.dtype != np.uint8:
            raise ValueError("JPEG holds neither alpha nor 16-bit pixels; use png")
        if max(pixels.shape[:2]) > JPEG_MAX_SIDE:
            raise _too_large_for_jpeg(pixels.shape[1], pixels.shape[0])
        ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        raise ValueError(f"unknown output extension {ext!r}")
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode a {pixels.shape} {pixels.dtype} image as {ext}")
    return buffer.tobytes()
