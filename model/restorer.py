"""`Restorer`: the one door into model/ — detect, align, restore (through `FaceEngine`), paste back.

`Restorer.enhance` mirrors `GFPGANer.enhance` (uint8 BGR in, `(cropped_faces, restored_faces,
restored_img)` out) so code written against GFPGANer switches by changing one import. Differences, on
purpose: `weight` really blends pixels (0 = input face, 1 = restored face; the official clean generator
ignores it, which equals our default 1.0), and gray / alpha / 16-bit photos are handled.

`restore_bytes` is what the CLI, the worker and the web UI call: encoded photo in, encoded photo out,
`ImageError` for every bad input. The generator forward pass lives only in `model.inference.FaceEngine`;
all faces of one photo go to it in batches of `batch_size` (one call for up to `batch_size` faces).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from model.face.alignment import alignment_matrix, warp_face
from model.face.detection import AlignedFace, DetectedFace, DlibDetector, FaceDetector
from model.face.paste import BackgroundUpsampler, LanczosUpsampler, as_background_upsampler, paste_faces
from model.imageio import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    ImageError,
    decode_image,
    encode_image,
    output_extension,
)

MAX_UPSCALE = 8


class FaceModel(Protocol):
    """What the Restorer needs from `model.inference.FaceEngine`."""

    face_size: int
    model_version: str

    def restore(self, faces: np.ndarray) -> np.ndarray:
        """N x S x S x 3 uint8 BGR aligned faces in, the same shape restored out."""
        ...


@dataclass
class RestoredImage:
    data: bytes  # the encoded output file
    ext: str  # "png" or "jpg"
    faces: int  # faces found and restored (0 is a success: the background is still upscaled)
    width: int
    height: int
    seconds: float
    boxes: list[tuple[float, float, float, float, float]]  # left, top, right, bottom, score in input pixels


@dataclass
class RestoredPhoto:
    """A restored photo before encoding, with the face crops (for the CLI's face folders)."""

    cropped_faces: list[np.ndarray]  # aligned input faces, uint8 BGR
    restored_faces: list[np.ndarray]  # restored (and weight-blended) faces, uint8 BGR
    pixels: np.ndarray  # upscaled BGR photo with faces pasted back, the input's dtype
    alpha: np.ndarray | None  # upscaled alpha, or None
    is_gray: bool  # written back as gray
    faces: list[AlignedFace]  # the detections the crops came from

    def encode(self, ext: str) -> bytes:
        return encode_image(self.pixels, alpha=self.alpha, ext=ext, gray=self.is_gray)


def blend_faces(inputs: Sequence[np.ndarray], restored: Sequence[np.ndarray], weight: float) -> list[np.ndarray]:
    """Pixel blend: weight 0 gives the input face, 1 the restored face."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], got {weight}")
    if weight == 1.0:
        return list(restored)
    if weight == 0.0:
        return [face.copy() for face in inputs]
    return [
        np.clip(np.round((1.0 - weight) * a.astype(np.float32) + weight * b.astype(np.float32)), 0, 255).astype(
            np.uint8
        )
        for a, b in zip(inputs, restored, strict=True)
    ]


def center_face(faces: list[AlignedFace], height: int, width: int) -> list[AlignedFace]:
    """The one face whose box centre is closest to the photo centre (empty list stays empty)."""
    if not faces:
        return []
    cy, cx = height / 2.0, width / 2.0
    return [min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)]


def as_bgr(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split a gray / BGR / BGRA array into BGR pixels and optional alpha."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), None
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR), None
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3]), np.ascontiguousarray(img[:, :, 3])
    if img.ndim == 3 and img.shape[2] == 3:
        return img, None
    raise ValueError(f"expected an H x W, H x W x 3 or H x W x 4 image, got shape {img.shape}")


class Restorer:
    """Face restoration of whole photos (see the module docstring)."""

    def __init__(
        self,
        model_path: str | None = None,
        device: str | None = "cpu",
        upscale: int = 2,
        *,
        mode: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_output_pixels: int = 4 * DEFAULT_MAX_PIXELS,
        batch_size: int = 8,
        detector: FaceDetector | None = None,
        bg_upsampler: BackgroundUpsampler | object | None = None,
        engine: FaceModel | None = None,
        arch: str = "clean",
        channel_multiplier: int | None = None,
    ):
        """`arch` and `channel_multiplier` are accepted so GFPGANer(...) keyword calls work unchanged: only
        the clean architecture exists here and its configuration is read from the weights, so
        `channel_multiplier` is not needed. `bg_upsampler` may also be a RealESRGANer (anything with
        GFPGANer's `enhance(img, outscale=...)`)."""
        if arch != "clean":
            raise ValueError(f"arch {arch!r} is not supported: only 'clean' (GFPGANv1Clean, v1.2-v1.4 weights)")
        del channel_multiplier  # inferred from the checkpoint's tensor shapes
        if engine is None:
            from model.inference import FaceEngine

            engine = FaceEngine.load(model_path, device=device or "cpu", mode=mode, batch_size=batch_size)
        self.engine = engine
        self.batch_size = max(1, batch_size)
        self.upscale = _check_upscale(upscale)
        self.max_pixels = max_pixels
        self.max_output_pixels = max_output_pixels
        self.detector = detector if detector is not None else DlibDetector()
        self.bg_upsampler = as_background_upsampler(bg_upsampler)

    @property
    def face_size(self) -> int:
        return int(self.engine.face_size)

    @property
    def model_version(self) -> str:
        return str(self.engine.model_version)

    # -- detection and alignment -------------------------------------------------------------------------
    def detect(self, img: np.ndarray) -> list[AlignedFace]:
        """Every face of a uint8 BGR (or gray/BGRA) photo with its box, 5 landmarks, score and the 2x3
        affine matrix from photo pixels to the aligned `face_size` crop."""
        bgr, _ = as_bgr(img)
        return [self._align(face) for face in self.detector.detect(bgr)]

    def _align(self, face: DetectedFace) -> AlignedFace:
        matrix = alignment_matrix(face.landmarks, self.face_size)
        return AlignedFace(box=face.box, landmarks=face.landmarks, score=face.score, affine=matrix)

    # -- restoration --------------------------------------------------------------------------------------
    def restore_faces(self, crops: Sequence[np.ndarray], weight: float = 1.0) -> list[np.ndarray]:
        """Restore aligned uint8 BGR crops of `face_size`, `batch_size` faces per engine call (one generator
        forward each), blended by `weight`."""
        if weight == 0.0 or not crops:  # the blend would discard the generator's output anyway
            return blend_faces(crops, crops, weight)
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):  # bounded memory for crowds of faces
            restored.extend(self.engine.restore(np.stack(crops[start : start + self.batch_size])))
        return blend_faces(crops, restored, weight)

    def enhance(
        self,
        img: np.ndarray,
        has_aligned: bool = False,
        only_center_face: bool = False,
        paste_back: bool = True,
        weight: float = 1.0,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """GFPGANer-compatible: returns (cropped_faces, restored_faces, restored_img), uint8 BGR.

        `restored_img` is the photo upscaled by `self.upscale` with the faces pasted back (BGRA when the
        input had alpha), or None when `has_aligned` or not `paste_back`."""
        if img.dtype != np.uint8:
            raise ValueError(f"enhance takes uint8 images, got {img.dtype} (restore_bytes handles 16-bit)")
        bgr, alpha = as_bgr(img)
        if has_aligned:
            crop = cv2.resize(bgr, (self.face_size, self.face_size), interpolation=cv2.INTER_LINEAR)
            return [crop], self.restore_faces([crop], weight), None
        _, crops, restored, output, out_alpha = self._restore_photo(
            bgr, bgr, alpha, self.upscale, weight, only_center_face, paste_back
        )
        if output is not None and out_alpha is not None:
            output = cv2.merge([*cv2.split(output), out_alpha])
        return crops, restored, output

    def _restore_photo(
        self,
        bgr8: np.ndarray,
        pixels: np.ndarray,
        alpha: np.ndarray | None,
        upscale: int,
        weight: float,
        only_center_face: bool,
        paste_back: bool = True,
    ) -> tuple[list[AlignedFace], list[np.ndarray], list[np.ndarray], np.ndarray | None, np.ndarray | None]:
        """Detect on `bgr8`, restore, and paste onto `pixels` (the same photo at full depth) upscaled."""
        faces = self.detect(bgr8)
        if only_center_face:
            faces = center_face(faces, *bgr8.shape[:2])
        crops = [warp_face(bgr8, face.affine, self.face_size) for face in faces]
        restored = self.restore_faces(crops, weight)
        if not paste_back:
            return faces, crops, restored, None, None
        background = self.bg_upsampler.upsample(pixels, upscale)
        output = paste_faces(background, restored, [face.affine for face in faces], upscale)
        out_alpha = None if alpha is None else LanczosUpsampler().upsample(alpha, upscale)
        return faces, crops, restored, output, out_alpha

    def restore_decoded(
        self,
        image: DecodedImage,
        *,
        weight: float = 1.0,
        only_center_face: bool = False,
        upscale: int | None = None,
    ) -> RestoredPhoto:
        """Restore a decoded photo at its own bit depth (16-bit stays 16-bit, alpha is upscaled along)."""
        scale = self.upscale if upscale is None else _check_upscale(upscale)
        if image.width * image.height * scale**2 > self.max_output_pixels:
            raise ImageError(
                "too_large",
                f"{image.width}x{image.height} upscaled x{scale} exceeds the output limit of "
                f"{self.max_output_pixels / 1e6:.0f} MP",
            )
        faces, crops, restored, output, out_alpha = self._restore_photo(
            image.bgr8(), image.pixels, image.alpha, scale, weight, only_center_face
        )
        assert output is not None
        return RestoredPhoto(crops, restored, output, out_alpha, image.is_gray, faces)

    def restore_bytes(
        self,
        data: bytes,
        *,
        name: str = "",
        out_ext: str = "auto",
        weight: float | None = None,
        only_center_face: bool = False,
        upscale: int | None = None,
    ) -> RestoredImage:
        """Encoded photo in, encoded restored photo out. Raises ImageError (message prefixed by `name`)
        for any bad input."""
        started = time.perf_counter()
        try:
            image = decode_image(data, max_pixels=self.max_pixels)
            photo = self.restore_decoded(
                image,
                weight=1.0 if weight is None else weight,
                only_center_face=only_center_face,
                upscale=upscale,
            )
            ext = output_extension(image, out_ext, out_size=(photo.pixels.shape[1], photo.pixels.shape[0]))
        except ImageError as exc:
            if name:
                raise ImageError(exc.code, f"{name}: {exc}") from exc
            raise
        return RestoredImage(
            data=photo.encode(ext),
            ext=ext,
            faces=len(photo.cropped_faces),
            width=int(photo.pixels.shape[1]),
            height=int(photo.pixels.shape[0]),
            seconds=time.perf_counter() - started,
            boxes=[(*map(float, face.box), float(face.score)) for face in photo.faces],
        )


def _check_upscale(upscale: int) -> int:
    if int(upscale) != upscale or not 1 <= upscale <= MAX_UPSCALE:
        raise ValueError(f"upscale must be an integer in 1..{MAX_UPSCALE}, got {upscale}")
    return int(upscale)
