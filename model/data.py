"""Training data: aligned high-quality faces degraded on the fly into (LQ, GT) pairs.

Randomness is keyed by a global *sample id* (epoch * N + index) rather than by worker state, so a run resumed
from a checkpoint, with any number of DataLoader workers or DDP ranks, sees exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from model.degradations import DegradationConfig, degrade, to_gray3

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no face images found in {folder}")
    return files


def bgr_to_tensor(img: np.ndarray) -> torch.Tensor:
    """float BGR HxWx3 in [0, 1] -> 3xHxW RGB tensor in [-1, 1]."""
    rgb = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))
    return torch.from_numpy(rgb) * 2.0 - 1.0


def tensor_to_bgr_uint8(x: torch.Tensor) -> np.ndarray:
    """3xHxW RGB tensor in [-1, 1] -> uint8 BGR HxWx3."""
    rgb = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
    return np.ascontiguousarray(rgb.transpose(1, 2, 0)[:, :, ::-1])


class DegradedFaces(Dataset):
    """Pairs (lq, gt) from a folder of aligned HQ faces, resized to `size`, flipped and degraded per sample id.

    With `landmarks=True` each sample also carries dlib's 5 landmarks of the final (flipped) GT, found inside
    the aligned-face box: the identity loss cuts the same 150-px chip from the output and the GT with them."""

    def __init__(
        self,
        folder: str | Path,
        size: int,
        degradation: DegradationConfig,
        seed: int = 0,
        flip: bool = True,
        landmarks: bool = False,
    ) -> None:
        self.files = list_images(folder)
        self.size = size
        self.degradation = degradation
        self.seed = seed
        self.flip = flip
        self.landmarks = landmarks
        self._identity = None  # dlib's shape predictor, loaded lazily in each DataLoader worker

    def __len__(self) -> int:
        return len(self.files)

    def load_gt(self, index: int) -> np.ndarray:
        img = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read training image {self.files[index]}")
        if img.shape[:2] != (self.size, self.size):
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return img.astype(np.float32) / 255.0

    def __getitem__(self, sample_id: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, sample_id])
        gt = self.load_gt(sample_id % len(self.files))
        if self.flip and rng.random() < 0.5:
            gt = np.ascontiguousarray(gt[:, ::-1])
        lq, made_gray = degrade(gt, self.degradation, rng)
        if made_gray:
            gt = to_gray3(gt)
        sample = {"lq": bgr_to_tensor(lq), "gt": bgr_to_tensor(gt)}
        if self.landmarks:
            sample["landmarks"] = torch.from_numpy(self.gt_landmarks(gt)).float()
        return sample

    def gt_landmarks(self, gt: np.ndarray) -> np.ndarray:
        from model.identity import ALIGNED_FACE_BOX, FaceIdentity, scale_box

        if self._identity is None:
            self._identity = FaceIdentity()
        img = (gt * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        return self._identity.landmarks(img, scale_box(ALIGNED_FACE_BOX, self.size, self.size))


class ResumableSampler(Sampler[int]):
    """Endless stream of sample ids: a fresh permutation per epoch, sharded across DDP ranks.

    Position k of the global stream is id `epoch * n + perm_epoch[k % n]`; rank r takes positions
    k = start + r, start + r + world, ... so resuming at `start` replays the same stream.
    """

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[int]:
        k = self.start + self.rank
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        while True:
            if k // self.n != epoch:
                epoch = k // self.n
                perm = self._permutation(epoch)
            yield epoch * self.n + int(perm[k % self.n])
            k += self.world
