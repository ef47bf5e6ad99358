"""Item images for the before/after viewer: read through wgfpgan/storage.py (S3 or folders), decoded by
model/imageio.py (so hostile files fail with an ImageError, never crash PIL), shrunk to a bounded size,
encoded as JPEG (PNG when the photo has transparency) and kept in an in-memory LRU bounded in bytes.

The cache key includes the object URI, so a re-run that writes a new output under a new name is never
served stale; the same URI re-written in place may be served from the cache until evicted (outputs are
written once per successful run, so that only happens after a retry of a succeeded item).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

THUMB_SIZES = (320, 1024, 2048)  # the longest side; requests are rounded up to one of these


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    media_type: str


def pick_size(requested: int) -> int:
    return next((size for size in THUMB_SIZES if size >= requested), THUMB_SIZES[-1])


def make_thumbnail(data: bytes, longest_side: int) -> Thumbnail:
    """Decode (ImageError for a bad file), shrink so the longest side is at most `longest_side`, encode."""
    import cv2

    from model.imageio import decode_image, encode_image, to_uint8

    image = decode_image(data)
    pixels, alpha = image.bgr8(), image.alpha
    scale = longest_side / max(image.width, image.height)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        if alpha is not None:
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    if alpha is not None:
        return Thumbnail(encode_image(pixels, alpha=to_uint8(alpha), ext="png"), "image/png")
    return Thumbnail(encode_image(pixels, ext="jpg"), "image/jpeg")


class ThumbnailCache:
    """LRU of encoded thumbnails, at most `max_bytes` in total; thread-safe."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, int], Thumbnail] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uri: str, longest_side: int) -> Thumbnail:
        """The thumbnail of the object at `uri`; reads and decodes it on a miss. Raises the storage
        layer's errors and ImageError."""
        from wgfpgan import storage

        size = pick_size(longest_side)
        key = (uri, size)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        thumb = make_thumbnail(storage.read_bytes(uri), size)
        self._put(key, thumb)
        return thumb

    def _put(self, key: tuple[str, int], thumb: Thumbnail) -> None:
        if len(thumb.data) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old.data)
            self._entries[key] = thumb
            self.bytes += len(thumb.data)
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= len(evicted.data)

    def __len__(self) -> int:
        return len(self._entries)
