"""The try page's backend: one `Restorer`, loaded lazily on the first upload and shared by all requests
(default model, or WGFPGAN_MODEL), restoring one photo at a time, plus the upload size guard.

Checks on an upload, cheapest first: the declared Content-Length and the bytes actually streamed
(`UploadLimit`, before anything is parsed or spooled), then decoding through model/imageio.py, which
refuses empty files, non-images (text named .png, HTML), decompression bombs from their header alone,
truncated and corrupt files, each with an `ImageError` code and a readable reason. The photo is also
limited in pixels (`MAX_PIXELS`) so one request cannot occupy the CPU for minutes.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from typing import Any

from web.errors import ApiError
from wgfpgan.config import Settings

log = logging.getLogger(__name__)

MAX_PIXELS = 16_000_000  # input photo
MAX_OUTPUT_PIXELS = 64_000_000  # after upscaling
BUSY_TIMEOUT = 120.0  # seconds a request waits for the previous restoration to finish
TRY_PATH_PREFIX = "/api/try/"
OTHER_MAX_BYTES = 1_000_000  # any other request body (submit JSON...)


class ModelUnavailable(RuntimeError):
    """The restoration model could not be loaded (the reason is logged, not shown: it names paths)."""


class Busy(RuntimeError):
    """Another restoration has been running for longer than BUSY_TIMEOUT."""


class UploadTooLarge(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "too_large", f"the upload is larger than the limit of {max_bytes / 1e6:g} MB")


class RestorerHolder:
    """Loads the Restorer once, on first use; serialises restorations (the CPU is the bottleneck)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._restorer: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._restorer is not None

    def get(self) -> Any:
        if self._restorer is None:
            with self._load_lock:
                if self._restorer is None:
                    self._restorer = self._load()
        return self._restorer

    def _load(self) -> Any:
        from model.restorer import Restorer

        try:
            return Restorer(
                self.settings.model_path,
                device=self.settings.device,
                max_pixels=MAX_PIXELS,
                max_output_pixels=MAX_OUTPUT_PIXELS,
            )
        except Exception as exc:  # missing/corrupt weights, unknown device: the log has the details
            log.exception("loading the restoration model failed")
            raise ModelUnavailable(
                "the restoration model could not be loaded (see the server log; WGFPGAN_MODEL selects a "
                f"checkpoint): {type(exc).__name__}"
            ) from exc

    def run(self, data: bytes, *, weight: float, upscale: int) -> dict[str, Any]:
        restorer = self.get()
        if not self._run_lock.acquire(timeout=BUSY_TIMEOUT):
            raise Busy("another photo is being restored; try again in a minute")
        try:
            return restore_with_faces(restorer, data, weight=weight, upscale=upscale)
        finally:
            self._run_lock.release()


@dataclass(frozen=True)
class FaceBox:
    left: float
    top: float
    right: float
    bottom: float
    score: float


def restore_with_faces(restorer: Any, data: bytes, *, weight: float, upscale: int) -> dict[str, Any]:
    """Restore (ImageError for a bad photo) and describe the result: the response body. The boxes are the
    detections the restorer itself used (one detection pass)."""
    result = restorer.restore_bytes(data, weight=weight, upscale=upscale)
    boxes = [FaceBox(*box) for box in result.boxes]
    return {
        "faces": result.faces,
        "boxes": [vars(box) for box in boxes],
        "input_width": result.width // upscale,
        "input_height": result.height // upscale,
        "width": result.width,
        "height": result.height,
        "ext": result.ext,
        "media_type": "image/png" if result.ext == "png" else "image/jpeg",
        "seconds": round(result.seconds, 3),
        "model_version": restorer.model_version,
        "image_base64": base64.b64encode(result.data).decode("ascii"),
    }


class UploadLimit:
    """ASGI middleware bounding request bodies: `max_bytes` (plus multipart framing) for uploads under
    TRY_PATH_PREFIX, `OTHER_MAX_BYTES` for every other request (JSON bodies are small). A larger
    Content-Length is refused at once with 413; a chunked body is counted as it streams and cut off."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"].startswith(TRY_PATH_PREFIX)
        limit = self.max_bytes + 64 * 1024 if is_upload else OTHER_MAX_BYTES
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, is_upload)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLarge(self.max_bytes if is_upload else OTHER_MAX_BYTES)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge:
            if not started:
                await self._refuse(send, is_upload)

    async def _refuse(self, send: Any, is_upload: bool) -> None:
        import json

        detail = UploadTooLarge(self.max_bytes if is_upload else OTHER_MAX_BYTES).detail
        body = json.dumps({"detail": detail, "code": "too_large"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
