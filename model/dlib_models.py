"""Locates the dlib model files shipped by the `face-recognition-models` pip package.

The package's own `__init__` imports `pkg_resources`, which current setuptools no longer provides, so we
find its folder with `importlib.util.find_spec` instead of importing it. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

SHAPE_PREDICTOR_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"


@cache
def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the pip package 'face-recognition-models' is not installed; it ships the dlib face models "
            "(install the project with `pip install -e .`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_file(name: str) -> Path:
    """Path of one shipped dlib model file, with a clear error when it is missing."""
    path = models_dir() / name
    if not path.is_file():
        raise RuntimeError(f"dlib model file {name} not found in {models_dir()}")
    return path
