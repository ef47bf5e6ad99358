"""Face-recognition study on LFW pairs: does restoration give a face recogniser back what degradation took?

    python benchmarks/lfw_study.py [--lfw ../shared/data/lfw-devtrain] [--pairs-limit 300]
        [--preset medium ...] [--model PATH] [--out benchmarks/results/lfw_study.json]

For every pair of pairsDevTrain.txt (or an evenly spaced, balanced subset of `--pairs-limit` pairs) both
250x250 images are embedded with dlib's 128-d face recogniser in three conditions:
- clean: the LFW image;
- degraded: `apply_preset(image, preset, seed)` (seed derived from the file name, so both runs and both
  members of a pair are reproducible);
- restored: the degraded image through `Restorer.enhance` (detect, align, restore, paste back), the
  whole-photo path a user would run, with upscale 1 so the recogniser sees the same 250x250 geometry as
  in the other conditions (its 150-px chip needs no more; it also halves the run time).
The face is found by dlib's HOG detector; when it finds none (degraded inputs) the box falls back to
the median clean detection box of this LFW set, scaled to the image (deep-funneled LFW is roughly aligned).
Verification: "same person" when the embedding distance is below a threshold chosen by 10-fold
cross-validation (the threshold is fitted on 9 folds and scored on the tenth, as the LFW protocol says;
DevTrain has no official folds, so pair i of each half goes to fold i mod 10). Reported: mean accuracy and
its standard deviation over folds, and how often the detector found the face.

Embeddings are cached per condition (and model version) in the user cache folder, so the clean and
degraded conditions are computed once and a new model only costs its restored condition.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.evaluate import default_cache_dir, read_image  # noqa: E402
from model.identity import FaceIdentity  # noqa: E402
from model.metrics import verification_accuracy  # noqa: E402

FOLDS = 10


@dataclass(frozen=True)
class Pair:
    first: str  # relative image paths under images/
    second: str
    same: bool
    fold: int


def image_path(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: Path, limit: int | None) -> list[Pair]:
    """Matched then mismatched pairs of an LFW pairs file; `limit` keeps an evenly spaced balanced subset."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    count = int(lines[0][0])
    matched = [(image_path(n, a), image_path(n, b), True) for n, a, b in lines[1 : 1 + count]]
    mismatched = [(image_path(n1, a), image_path(n2, b), False) for n1, a, n2, b in lines[1 + count : 1 + 2 * count]]
    pairs = []
    for half in (matched, mismatched):
        keep = len(half) if limit is None else min(len(half), limit // 2)
        indices = np.linspace(0, len(half) - 1, keep).round().astype(int) if keep else []
        pairs += [Pair(*half[i], fold=k % FOLDS) for k, i in enumerate(indices)]
    return pairs


def stable_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "little")


class EmbeddingCache:
    """name -> (embedding, detected) for one condition, stored as one .npz."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, tuple[np.ndarray, bool]] = {}
        if path.is_file():
            with np.load(path) as data:
                for name, emb, det in zip(data["names"], data["embeddings"], data["detected"], strict=True):
                    self.values[str(name)] = (emb, bool(det))
        self.dirty = False

    def save(self) -> None:
        if not self.dirty or not self.values:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(self.values)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            names=np.array(names),
            embeddings=np.stack([self.values[n][0] for n in names]),
            detected=np.array([self.values[n][1] for n in names]),
        )
        tmp.replace(self.path)


def clean_fallback_box(identity: FaceIdentity, images: dict[str, np.ndarray]) -> tuple[float, ...]:
    """Median HOG detection box on the clean images, as fractions of the image side."""
    boxes = []
    for img in images.values():
        found = identity.detect(img)
        if found:
            h, w = img.shape[:2]
            left, top, right, bottom = found[0]
            boxes.append((left / w, top / h, (right + 1) / w, (bottom + 1) / h))
    if not boxes:
        raise RuntimeError("no face detected in any clean LFW image")
    return tuple(float(v) for v in np.median(np.array(boxes), axis=0))


class Embedder:
    """Builds one condition's version of an image and embeds it; one per process."""

    def __init__(self, model: str | None, fallback: tuple[float, ...]) -> None:
        self.model, self.fallback = model, fallback
        self.identity = FaceIdentity()
        self._restorer = None

    @property
    def restorer(self):
        if self._restorer is None:
            from model.restorer import Restorer

            self._restorer = Restorer(self.model, upscale=1)  # the same 250x250 geometry as the other conditions
        return self._restorer

    def image(self, kind: str, preset: str | None, key: str, img: np.ndarray) -> np.ndarray:
        from model.degradations import apply_preset

        if kind == "clean":
            return img
        degraded = apply_preset(img, preset, seed=stable_seed(key))
        return degraded if kind == "degraded" else self.restorer.enhance(degraded)[2]

    def embed(self, kind: str, preset: str | None, key: str, img: np.ndarray) -> tuple[np.ndarray, bool]:
        analysis = self.identity.analyze(self.image(kind, preset, key, img), fallback=self.fallback)
        return analysis.embedding, analysis.detected


_process_embedder: Embedder | None = None


def _init_worker(model: str | None, fallback: tuple[float, ...]) -> None:
    global _process_embedder
    _process_embedder = Embedder(model, fallback)


def _embed_in_worker(kind: str, preset: str | None, key: str, img: np.ndarray) -> tuple[np.ndarray, bool]:
    return _process_embedder.embed(kind, preset, key, img)


def embed_condition(
    name: str,
    kind: str,
    preset: str | None,
    images: dict[str, np.ndarray],
    embedder: Embedder,
    pool,
    cache_dir: Path,
) -> dict[str, tuple[np.ndarray, bool]]:
    """Embeddings of every image in one condition: from the cache, else computed (in `pool` if given)."""
    cache = EmbeddingCache(cache_dir / f"{name}.npz")
    start, todo = time.perf_counter(), [k for k in images if k not in cache.values]
    if pool is not None:
        futures = [pool.submit(_embed_in_worker, kind, preset, key, images[key]) for key in todo]
        results = (future.result() for future in futures)
    else:
        results = (embedder.embed(kind, preset, key, images[key]) for key in todo)
    for i, (key, result) in enumerate(zip(todo, results, strict=True), 1):
        cache.values[key] = result
        cache.dirty = True
        if i % 50 == 0:
            print(f"  {name}: {i}/{len(todo)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
            cache.save()
    cache.save()
    return {k: cache.values[k] for k in images}


def score(pairs: list[Pair], embeddings: dict[str, tuple[np.ndarray, bool]]) -> dict:
    distances = np.array([np.linalg.norm(embeddings[p.first][0] - embeddings[p.second][0]) for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    mean, std, per_fold = verification_accuracy(distances, same, folds)
    detected = np.mean([embeddings[k][1] for k in {x for p in pairs for x in (p.first, p.second)}])
    return {"accuracy": mean, "fold_std": std, "per_fold": per_fold, "detection_rate": float(detected)}


def run_study(
    lfw_dir: Path,
    pairs_limit: int | None = 300,
    presets: list[str] | tuple[str, ...] = ("mild", "medium", "severe"),
    model: str | None = None,
    restore: bool = True,
    workers: int | None = None,
) -> dict:
    """Embed every condition (cached), score the pairs and return the result dict written as JSON.
    `workers`: processes embedding images (default: one per CPU core; 0 = inline)."""
    from model import degradations

    # Cached degraded/restored embeddings are only valid for the degradation code that made them.
    version = hashlib.sha1(Path(degradations.__file__).read_bytes()).hexdigest()[:8]
    pairs = read_pairs(lfw_dir / "pairsDevTrain.txt", pairs_limit or None)
    keys = sorted({x for p in pairs for x in (p.first, p.second)})
    images = {k: read_image(lfw_dir / "images" / k) for k in keys}
    identity = FaceIdentity()
    fallback = clean_fallback_box(identity, images)
    cache_dir = default_cache_dir() / "lfw"
    start = time.perf_counter()
    print(f"{len(pairs)} pairs, {len(keys)} images, fallback box {np.round(fallback, 3).tolist()}", file=sys.stderr)

    embedder = Embedder(model, fallback)
    model_version = embedder.restorer.model_version if restore else None
    conditions = [("clean", "clean", None)]
    for preset in presets:
        conditions.append((f"degraded {preset}", "degraded", preset))
        if restore:
            conditions.append((f"restored {preset}", "restored", preset))
    workers = (os.cpu_count() or 1) if workers is None else workers
    pool = None
    if workers > 0:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(model, fallback),
        )
    rows = {}
    try:
        for label, kind, preset in conditions:
            name = {"clean": "clean", "degraded": f"degraded-{preset}-{version}"}.get(
                kind, f"restored-{preset}-{version}-{model_version}"
            )
            rows[label] = score(pairs, embed_condition(name, kind, preset, images, embedder, pool, cache_dir))
    finally:
        if pool is not None:
            pool.shutdown()

    subset = (
        "all 2,200" if not pairs_limit else f"evenly spaced {pairs_limit // 2} matched + {pairs_limit // 2} mismatched"
    )
    return {
        "pairs": len(pairs),
        "matched": sum(p.same for p in pairs),
        "images": len(keys),
        "pairs_file": str(lfw_dir / "pairsDevTrain.txt"),
        "subset": subset,
        "model": model_version,
        "folds": FOLDS,
        "fallback_box": fallback,
        "wall_seconds": time.perf_counter() - start,
        "conditions": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw-devtrain")
    parser.add_argument("--pairs-limit", type=int, default=300, help="balanced subset size (0 = all 2,200)")
    parser.add_argument("--preset", action="append", choices=("mild", "medium", "severe"))
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped default model)")
    parser.add_argument("--no-restore", action="store_true", help="only clean and degraded conditions")
    parser.add_argument("--workers", type=int, default=None, help="embedding processes (default: CPU cores)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lfw_study.json")
    args = parser.parse_args()
    result = run_study(
        args.lfw,
        args.pairs_limit,
        args.preset or ("mild", "medium", "severe"),
        args.model,
        not args.no_restore,
        args.workers,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(markdown_table(result))
    return 0


def recovered_share(conditions: dict, preset: str) -> float | None:
    """Share of the accuracy lost to degradation that restoration gives back (1 = all, < 0 = made worse)."""
    clean = conditions["clean"]["accuracy"]
    degraded, restored = conditions.get(f"degraded {preset}"), conditions.get(f"restored {preset}")
    if restored is None or clean - degraded["accuracy"] <= 0:
        return None
    return (restored["accuracy"] - degraded["accuracy"]) / (clean - degraded["accuracy"])


def markdown_table(result: dict) -> str:
    conditions = result["conditions"]
    lines = [
        f"LFW DevTrain, {result['pairs']} pairs ({result['subset']}), {result['folds']}-fold CV, "
        f"model `{result['model']}`.",
        "",
        "| condition | accuracy | fold std | face detected | vs degraded | loss recovered |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in conditions.items():
        change = recovered = ""
        if name.startswith("restored"):
            preset = name.split()[-1]
            change = f"{row['accuracy'] - conditions[f'degraded {preset}']['accuracy']:+.3f}"
            share = recovered_share(conditions, preset)
            recovered = "" if share is None else f"{share:+.0%}"
        lines.append(
            f"| {name} | {row['accuracy']:.3f} | {row['fold_std']:.3f} | {row['detection_rate']:.0%} "
            f"| {change} | {recovered} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
