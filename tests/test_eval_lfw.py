"""benchmarks/lfw_study.py: pairs parsing, balanced subsets and folds, and the recovered share."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "lfw_study.py"


@pytest.fixture(scope="module")
def lfw_study():
    spec = importlib.util.spec_from_file_location("lfw_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lfw_study"] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def write_pairs(path: Path, n: int) -> Path:
    lines = [str(n)]
    lines += [f"Person_{i}\t1\t2" for i in range(n)]
    lines += [f"Person_{i}\t1\tOther_{i}\t3" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_pairs_parses_the_lfw_format(lfw_study, tmp_path):
    pairs = lfw_study.read_pairs(write_pairs(tmp_path / "pairs.txt", 20), None)
    assert len(pairs) == 40 and sum(p.same for p in pairs) == 20
    assert pairs[0].first == "Person_0/Person_0_0001.jpg" and pairs[0].second == "Person_0/Person_0_0002.jpg"
    assert pairs[20].second == "Other_0/Other_0_0003.jpg" and not pairs[20].same
    assert {p.fold for p in pairs} == set(range(10))


def test_subset_is_balanced_and_spread_over_the_list(lfw_study, tmp_path):
    pairs = lfw_study.read_pairs(write_pairs(tmp_path / "pairs.txt", 20), 10)
    matched = [p for p in pairs if p.same]
    assert len(matched) == 5 and len(pairs) == 10
    assert matched[0].first.startswith("Person_0/") and matched[-1].first.startswith("Person_19/")
    for fold in range(5):  # each fold gets one matched and one mismatched pair
        assert sorted(p.same for p in pairs if p.fold == fold) == [False, True]


def test_recovered_share(lfw_study):
    conditions = {
        "clean": {"accuracy": 0.9},
        "degraded medium": {"accuracy": 0.7},
        "restored medium": {"accuracy": 0.8},
        "degraded mild": {"accuracy": 0.9},
        "restored mild": {"accuracy": 0.85},
    }
    assert lfw_study.recovered_share(conditions, "medium") == pytest.approx(0.5)
    assert lfw_study.recovered_share(conditions, "mild") is None  # nothing was lost
    assert lfw_study.recovered_share(conditions, "severe") is None


def test_lfw_pairs_file_references_existing_images(lfw_study, shared_dir):
    folder = shared_dir / "data" / "lfw-devtrain"
    pairs = lfw_study.read_pairs(folder / "pairsDevTrain.txt", None)
    assert len(pairs) == 2200
    assert all((folder / "images" / p.first).is_file() and (folder / "images" / p.second).is_file() for p in pairs)
