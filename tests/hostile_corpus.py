"""A generated corpus of hostile and awkward photo files, each with the outcome the batch system must give
it (`succeeded`, or the precise `ImageError` code of model/imageio.py). Used by tests/test_hostile_inputs.py
(`wgfpgan run` and `submit` + worker) and benchmarks/fault_injection.py.

Families: empty files, truncated files of every format at several cut points, wrong extensions, text,
HTML, archives and other binaries, decompression-bomb headers (PNG/JPEG/GIF/TIFF/BMP/WebP claiming huge
sizes, and a real 10000x10000 zero PNG), tiny sizes (1x1 ... 8x8), extreme aspect ratios (30000x200),
CMYK, 16-bit, palette, gray, alpha, 1-bit, 32-bit, animated GIF/PNG and multi-page TIFF, every EXIF
orientation, ICC profiles (valid and garbage), extreme pixel values, trailing garbage and polyglots.
Deterministic (seeded), so a failure is reproducible.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class Case:
    name: str  # the file name, extension included (wrong on purpose for some)
    data: bytes
    expect: frozenset[str]  # acceptable outcomes: "succeeded" or error codes
    size: tuple[int, int] | None = None  # expected output size at upscale 1, when it succeeded

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colour image (compresses like a photo, decodes in any format)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 1, 3)
    pixels = np.stack([(np.sin(x / (7 + 5 * b) + y / 11 + 6 * b) + 1) * 127 for b in base], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header(width: int, height: int, depth: int = 8, color: int = 2) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming `width x height` with a tiny IDAT (a classic decompression bomb shape)."""
    return _png_header(width, height) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _png_chunk(b"IEND", b"")


def _zero_png(width: int, height: int) -> bytes:
    """A real, valid gray PNG of zeros: ~10 kB on disk for 100 MP (streamed, never held raw in memory)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    chunks = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + compressor.flush()
    return _png_header(width, height, 8, 0) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _bomb_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 claims `width x height`, followed by a little scan data."""
    small = _encode(_photo(16, 16), "JPEG")
    sof = small.index(b"\xff\xc0")
    return small[: sof + 5] + struct.pack(">HH", height, width) + small[sof + 9 :]


def _bomb_gif(width: int, height: int) -> bytes:
    small = bytearray(_encode(_photo(16, 16).convert("P"), "GIF"))
    small[6:10] = struct.pack("<HH", width, height)  # logical screen
    frame = small.index(b",")  # image descriptor
    small[frame + 5 : frame + 9] = struct.pack("<HH", width, height)
    return bytes(small)


def _bomb_bmp(width: int, height: int) -> bytes:
    small = bytearray(_encode(_photo(16, 16), "BMP"))
    small[18:26] = struct.pack("<ii", width, height)
    return bytes(small)


def _bomb_tiff(width: int, height: int) -> bytes:
    """A small TIFF whose IFD ImageWidth/ImageLength entries are patched to claim `width x height`."""
    data = bytearray(_encode(_photo(16, 16), "TIFF"))
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            data[at + 8 : at + 12] = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
    return bytes(data)


def _bomb_webp(width: int, height: int) -> bytes:
    """A VP8X WebP header claiming a canvas of `width x height`."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    inner = _encode(_photo(16, 16), "WEBP")[12:]
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _exif_jpeg(orientation: int, size: tuple[int, int] = (40, 24)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(*size, seed=orientation), "JPEG", exif=exif.tobytes(), quality=90)


def _animated(fmt: str, frames: int = 3) -> bytes:
    images = [_photo(24, 24, seed=i).convert("P") if fmt == "GIF" else _photo(24, 24, seed=i) for i in range(frames)]
    return _encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


def _icc(profile: bytes, fmt: str) -> bytes:
    return _encode(_photo(32, 32, seed=3), fmt, icc_profile=profile)


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _text_files() -> list[tuple[str, bytes]]:
    letter = b"Dear archive,\nplease find the photos enclosed.\n"
    return [
        ("letter.jpg", letter * 20),
        ("readme.png", b"This is not a PNG.\n"),
        ("data.tif", b"id,name\n1,grandma\n2,grandpa\n" * 10),
        ("config.gif", b'{"photo": false, "reason": "json"}'),
        ("utf16.bmp", "not an image, in UTF-16".encode("utf-16")),
        ("unicode.webp", "Фотография бабушки — not an image ✓\n".encode()),
        ("spaces.jpeg", b" " * 4096),
        ("newlines.jpg", b"\n" * 100),
        ("script.png", b"#!/bin/sh\nrm -rf / --no-preserve-root\n"),
        ("svg.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
        ("postscript.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"),
        ("jpeg-word.jpg", b"JPEG\n"),
    ]


def _html_files() -> list[tuple[str, bytes]]:
    return [
        ("404.jpg", b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"),
        ("login.png", b"<html><head><title>Sign in</title></head><body><form></form></body></html>"),
        ("upper.tif", b"<!DOCTYPE HTML PUBLIC><HTML><BODY>moved</BODY></HTML>"),
        ("leading-space.gif", b"   \n\n<html>" + b"x" * 600),
        ("bom.webp", b"\xef\xbb\xbf<!doctype html><html></html>"),
    ]


def _binary_files(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("photo.jpg", _encode(_photo(16, 16), "JPEG"))
    return [
        ("album.jpg", archive.getvalue()),
        ("album-zip.png", archive.getvalue()),
        ("scan.tif.gz", gzip.compress(_encode(_photo(16, 16), "TIFF"))),
        ("gzip.jpg", gzip.compress(b"\0" * 10_000)),
        ("document.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
        ("program.png", b"\x7fELF\x02\x01\x01" + bytes(200)),
        ("noise1.jpg", rng.integers(0, 256, 333, dtype=np.uint8).tobytes()),
        ("noise2.png", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        ("noise3.gif", rng.integers(0, 256, 17, dtype=np.uint8).tobytes()),
        ("zeros.bmp", bytes(1000)),
        ("ff.jpg", b"\xff" * 1000),
        ("magic-only.png", b"\x89PNG\r\n\x1a\n"),
        ("magic-only.jpg", b"\xff\xd8\xff"),
        ("magic-only.gif", b"GIF89a"),
        ("magic-only.bmp", b"BM"),
        ("riff-wave.webp", b"RIFF\x24\0\0\0WAVEfmt " + bytes(28)),
    ]


def _format_samples() -> dict[str, bytes]:
    photo = _photo(48, 40, seed=11)
    return {
        "jpg": _encode(photo, "JPEG", quality=90),
        "progressive.jpg": _encode(photo, "JPEG", quality=90, progressive=True),
        "png": _encode(photo, "PNG"),
        "gif": _encode(photo.convert("P"), "GIF"),
        "tif": _encode(photo, "TIFF", compression="tiff_lzw"),
        "bmp": _encode(photo, "BMP"),
        "webp": _encode(photo, "WEBP", quality=80),
    }


def _truncated_cases() -> list[Case]:
    cases = []
    for ext, data in _format_samples().items():
        for fraction in (0.02, 0.3, 0.6, 0.95):
            cut = data[: max(1, int(len(data) * fraction))]
            # Cut inside the header the file is not recognisable (not_an_image) or its header is unreadable
            # (corrupt); cut in the pixel data it is truncated (or a damaged stream: corrupt).
            expect = {"truncated", "corrupt"} if fraction >= 0.3 else {"not_an_image", "corrupt", "truncated"}
            if ext == "tif":  # PIL writes the TIFF directory after the pixels: cut, the file is unrecognisable
                expect.add("not_an_image")
            cases.append(Case(f"truncated/{fraction:.2f}-{ext.replace('.', '-')}.{ext.rsplit('.', 1)[-1]}",
                              cut, frozenset(expect)))  # fmt: skip
    return cases


def build_corpus(seed: int = 2024) -> list[Case]:
    """Every case, deterministic. At least 200 files."""
    rng = np.random.default_rng(seed)
    cases: list[Case] = []

    def add(name: str, data: bytes, *expect: str, size: tuple[int, int] | None = None) -> None:
        cases.append(Case(name, data, frozenset(expect), size))

    def ok(name: str, make: Callable[[], bytes], size: tuple[int, int] | None = None) -> None:
        add(name, make(), SUCCEEDED, size=size)

    for ext in ("jpg", "jpeg", "png", "gif", "tif", "tiff", "bmp", "webp", "JPG", "PNG"):
        add(f"empty/empty.{ext}", b"", "empty")
    cases += _truncated_cases()

    samples = _format_samples()
    wrong = [("jpg", "png"), ("png", "jpg"), ("gif", "jpg"), ("tif", "png"), ("bmp", "gif"), ("webp", "tif"),
             ("jpg", "webp"), ("png", "bmp"), ("tif", "jpeg")]  # fmt: skip
    for real, named in wrong:
        add(f"wrong-ext/{real}-named.{named}", samples[real], SUCCEEDED, size=(48, 40))

    for name, data in _text_files():
        add(f"text/{name}", data, "not_an_image")
    for name, data in _html_files():
        add(f"html/{name}", data, "not_an_image")
    for name, data in _binary_files(rng):
        expect = ("not_an_image", "corrupt") if name.startswith("magic-only") else ("not_an_image",)
        if name.endswith(".gz"):
            name = name.replace(".gz", ".gz.jpg")
        add(f"binary/{name}", data, *expect)

    bombs = {"png": _bomb_png, "jpg": _bomb_jpeg, "gif": _bomb_gif, "bmp": _bomb_bmp, "tif": _bomb_tiff,
             "webp": _bomb_webp}  # fmt: skip
    for ext, make in bombs.items():
        for width, height in ((65_535, 65_535), (100_000, 2_000), (16_000, 16_000)):
            if ext in ("jpg", "gif") and max(width, height) > 65_535:
                continue  # 16-bit size fields
            add(f"bomb/{width}x{height}.{ext}", make(width, height), "too_large")
    add("bomb/real-zeros-10000x10000.png", _zero_png(10_000, 10_000), "too_large")
    add("bomb/bmp-negative-height.bmp", _bomb_bmp(20_000, -20_000), "too_large", "corrupt")

    for width, height in ((1, 1), (2, 2), (1, 500), (500, 1), (7, 7), (7, 300), (0, 0)):
        expect = ("bad_dimensions",) if width and height else ("bad_dimensions", "corrupt", "not_an_image")
        image_bytes = _png_header(width, height) + _png_chunk(b"IEND", b"") if not width else None
        add(
            f"tiny/{width}x{height}.png",
            image_bytes or _encode(_photo(max(width, 1), max(height, 1)), "PNG"),
            *expect,
        )
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif")):
        add(f"tiny/1x1-red.{ext}", _encode(Image.new("RGB", (1, 1), (200, 10, 10)), fmt), "bad_dimensions")
    add("tiny/8x8.png", _encode(_photo(8, 8), "PNG"), SUCCEEDED, size=(8, 8))

    add("aspect/30000x200.png", _encode(_photo(30_000, 200).convert("L"), "PNG"), SUCCEEDED, size=(30_000, 200))
    add("aspect/200x30000.jpg", _encode(_photo(200, 30_000), "JPEG", quality=70), SUCCEEDED, size=(200, 30_000))
    add("aspect/8x4000.png", _encode(_photo(8, 4000), "PNG"), SUCCEEDED, size=(8, 4000))

    cmyk = _photo(40, 32, seed=5).convert("CMYK")
    ok("mode/cmyk.jpg", lambda: _encode(cmyk, "JPEG"), (40, 32))
    ok("mode/cmyk.tif", lambda: _encode(cmyk, "TIFF"), (40, 32))
    gray16 = Image.fromarray((np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16))
    ok("mode/gray16.png", lambda: _encode(gray16, "PNG"), (40, 30))
    ok("mode/gray16.tif", lambda: _encode(gray16, "TIFF"), (40, 30))
    rgb16 = (rng.integers(0, 65535, (30, 40, 3))).astype(np.uint16)
    import cv2

    ok("mode/rgb16.png", lambda: cv2.imencode(".png", rgb16)[1].tobytes(), (40, 30))
    ok("mode/rgba16.png", lambda: cv2.imencode(".png", np.dstack([rgb16, rgb16[..., :1]]))[1].tobytes(), (40, 30))
    ok("mode/rgb16.tif", lambda: cv2.imencode(".tiff", rgb16)[1].tobytes(), (40, 30))
    photo = _photo(40, 30, seed=6)
    ok("mode/palette.png", lambda: _encode(photo.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"), (40, 30))
    transparent = photo.convert("P", palette=Image.ADAPTIVE, colors=16)
    ok("mode/palette-transparent.png", lambda: _encode(transparent, "PNG", transparency=0), (40, 30))
    ok("mode/palette.gif", lambda: _encode(photo.convert("P"), "GIF"), (40, 30))
    ok("mode/palette.bmp", lambda: _encode(photo.convert("P"), "BMP"), (40, 30))
    ok("mode/gray.jpg", lambda: _encode(photo.convert("L"), "JPEG"), (40, 30))
    ok("mode/gray-alpha.png", lambda: _encode(photo.convert("LA"), "PNG"), (40, 30))
    ok("mode/rgba.png", lambda: _encode(photo.convert("RGBA"), "PNG"), (40, 30))
    ok("mode/rgba.webp", lambda: _encode(photo.convert("RGBA"), "WEBP", lossless=True), (40, 30))
    ok("mode/1bit.png", lambda: _encode(photo.convert("1"), "PNG"), (40, 30))
    ok("mode/1bit.tif", lambda: _encode(photo.convert("1"), "TIFF", compression="group4"), (40, 30))
    ok("mode/1bit.bmp", lambda: _encode(photo.convert("1"), "BMP"), (40, 30))
    ok("mode/ycbcr.jpg", lambda: _encode(photo.convert("YCbCr"), "JPEG"), (40, 30))
    add("mode/float32.tif", _encode(photo.convert("F"), "TIFF"), "unsupported_format")
    add("mode/int32.tif", _encode(photo.convert("I"), "TIFF"), "unsupported_format")

    add("frames/animated.gif", _animated("GIF"), "unsupported_format")
    add("frames/animated.png", _animated("PNG"), "unsupported_format")
    add("frames/multipage.tif", _animated("TIFF"), "unsupported_format")
    add("frames/animated.webp", _animated("WEBP"), "unsupported_format")
    ok("frames/single-frame.gif", lambda: _encode(_photo(24, 24).convert("P"), "GIF", save_all=True), (24, 24))

    for orientation in range(1, 9):
        size = (24, 40) if orientation >= 5 else (40, 24)
        ok(f"exif/orientation-{orientation}.jpg", lambda o=orientation: _exif_jpeg(o), size)
    for bad_orientation in (0, 9, 255, 65535):
        ok(f"exif/orientation-{bad_orientation}.jpg", lambda o=bad_orientation: _exif_jpeg(o), (40, 24))
    broken_exif = _exif_jpeg(6)
    at = broken_exif.index(b"Exif\0\0")
    ok("exif/garbled.jpg", lambda: broken_exif[: at + 6] + b"\xff" * 20 + broken_exif[at + 26 :])

    srgb = _srgb_profile()
    ok("icc/srgb.jpg", lambda: _icc(srgb, "JPEG"), (32, 32))
    ok("icc/srgb.png", lambda: _icc(srgb, "PNG"), (32, 32))
    ok("icc/srgb.tif", lambda: _icc(srgb, "TIFF"), (32, 32))
    ok("icc/srgb.webp", lambda: _icc(srgb, "WEBP"), (32, 32))
    ok("icc/garbage.jpg", lambda: _icc(b"not an ICC profile" * 10, "JPEG"), (32, 32))
    ok("icc/garbage.png", lambda: _icc(bytes(rng.integers(0, 256, 700, dtype=np.uint8)), "PNG"), (32, 32))
    ok("icc/huge.jpg", lambda: _icc(srgb + bytes(300_000), "JPEG"), (32, 32))

    extremes = {
        "black": np.zeros((32, 32, 3), np.uint8),
        "white": np.full((32, 32, 3), 255, np.uint8),
        "red": np.dstack([np.full((32, 32), 255, np.uint8), *[np.zeros((32, 32), np.uint8)] * 2]),
        "checker": (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2),
        "noise": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "stripes": (np.arange(32) % 2 * 255).astype(np.uint8)[None, :, None].repeat(32, 0).repeat(3, 2),
    }  # fmt: skip
    for label, array in extremes.items():
        for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tif")):
            ok(f"extreme/{label}.{ext}", lambda a=array, f=fmt: _encode(Image.fromarray(a), f), (32, 32))

    good_jpeg, good_png = samples["jpg"], samples["png"]
    ok("tricks/trailing-garbage.jpg", lambda: good_jpeg + b"PK\x03\x04" + bytes(500), (48, 40))
    ok("tricks/trailing-html.png", lambda: good_png + b"<html><script>alert(1)</script></html>", (48, 40))
    ok("tricks/huge-comment.jpg", lambda: _encode(_photo(48, 40), "JPEG", comment=b"x" * 60_000), (48, 40))
    # A broken IHDR CRC makes PIL's PNG plugin refuse the file at open; it starts with the PNG signature,
    # so it is a damaged PNG (`corrupt`), not "not an image".
    add("tricks/png-bad-crc.png", good_png[:29] + b"\0\0\0\0" + good_png[33:], "corrupt")
    add("tricks/jpeg-no-eoi.jpg", good_jpeg[:-2], SUCCEEDED, "truncated")
    add("tricks/jpeg-header-only.jpg", good_jpeg[: good_jpeg.index(b"\xff\xda")], "truncated", "corrupt")
    big_text = _png_header(32, 32) + _png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * 50_000_000))
    big_text += _png_chunk(b"IDAT", zlib.compress(b"\0" * (32 * 97))) + _png_chunk(b"IEND", b"")
    add("tricks/png-text-bomb.png", big_text, SUCCEEDED, "too_large", "corrupt")
    for i in range(6):
        flipped = bytearray(good_jpeg)
        for position in rng.integers(len(good_jpeg) // 3, len(good_jpeg) - 2, 8):
            flipped[position] ^= 0x5A
        add(f"tricks/bitflips-{i}.jpg", bytes(flipped), SUCCEEDED, "corrupt", "truncated")
    for i in range(4):
        flipped = bytearray(good_png)
        flipped[int(rng.integers(60, len(good_png) - 20))] ^= 0xFF
        add(f"tricks/png-flip-{i}.png", bytes(flipped), SUCCEEDED, "corrupt", "truncated")  # IDAT CRCs unchecked

    for i in range(12):
        width, height = int(rng.integers(8, 120)), int(rng.integers(8, 120))
        fmt, ext = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("TIFF", "tif")][i % 4]
        ok(f"sizes/{width}x{height}-{i}.{ext}", lambda w=width, h=height, f=fmt, s=i: _encode(_photo(w, h, s), f),
           (width, height))  # fmt: skip
    return cases
