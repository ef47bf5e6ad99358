"""model/: pure ML — architectures, checkpoints, face detection/alignment/paste-back, the Restorer,
degradations, losses, the trainer and metrics. Knows nothing of db/, worker/ or scheduler/.

Public names are imported lazily (PEP 562) so that `import model.cli` or `import model.imageio`
does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GFPGANv1Clean": "model.gfpgan_arch",
    "StyleGAN2Discriminator": "model.discriminator",
    "load_generator": "model.checkpoint",
    "Restorer": "model.restorer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
