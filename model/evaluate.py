"""Evaluation of face restoration: full-reference on degraded aligned HQ faces (`evaluate_hq`) and
no-reference on real photos (`evaluate_real`), with the reports they write. Behind `wgfpgan eval`.

Full-reference protocol (`evaluate_hq`):
- Each HQ face is resized (INTER_AREA) to the evaluation size: the face size of the first model given
  (its generator's input/output size; 512 only if the model is 512). Evaluating at the model's size keeps
  250 faces x 3 presets inside 10 minutes on 2 CPU cores and is what issue #4's acceptance prescribes.
- It is degraded with `model.degradations.apply_preset(face, preset, seed=seed + index)`: the same LQ for
  every method, run after run.
- Methods: `bicubic` (the degraded input itself, which the presets already bring back to size with
  bicubic interpolation), `unsharp` (classical unsharp mask on it) and each model, restored with
  `Restorer(path).enhance(lq, has_aligned=True, paste_back=False)`.
- Metrics against the GT (model/metrics.py, model/identity.py, model/niqe.py): PSNR (RGB), SSIM (Y), dlib
  identity distance, 5-point landmark error in pixels at 512 (landmarks of every variant are predicted in
  the GT's face box), sharpness = gradient energy / GT's, face-domain NIQE, whether dlib's HOG detector still
  finds the face, and restoration seconds per face. Means are over faces.
- GT analyses (box, landmarks, embedding) and the baselines' scores are cached on disk per folder and size
  (see `EvalCache`); the models are always run and scored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from model import metrics
from model.identity import FaceAnalysis, FaceIdentity, identity_distance
from model.niqe import face_niqe

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_PRESETS = ("mild", "medium", "severe")
BASELINES = ("bicubic", "unsharp")
SHEET_FACES = 6
SHEET_TILE = 192

# Issue #4 acceptance for the default model on the medium preset.
MIN_PSNR_GAIN_DB = 1.5
MAX_IDENTITY_RATIO = 0.8
MIN_SHARPNESS_RATIO = 0.6


@dataclass(frozen=True)
class Method:
    name: str
    restore: Callable[[np.ndarray], np.ndarray]  # S x S BGR LQ -> S x S BGR restored
    version: str


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image(path: Path) -> np.ndarray:
    """uint8 BGR pixels via model/imageio.py (EXIF orientation, 16-bit, alpha handled as in `restore`);
    raises `ImageError` (a ValueError) naming the file for anything unreadable."""
    from model.imageio import ImageError, decode_image

    try:
        return decode_image(path).bgr8()
    except ImageError as exc:
        raise ImageError(exc.code, f"{path}: {exc}") from exc


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    interpolation = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interpolation)


def unsharp_mask(img: np.ndarray, sigma: float = 1.5, amount: float = 1.0) -> np.ndarray:
    """Classical sharpening: img + amount * (img - GaussianBlur(img, sigma))."""
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1.0 + amount, blurred, -amount, 0)


def baseline_methods() -> list[Method]:
    return [
        Method("bicubic", lambda lq: lq, "degraded input (bicubic back to size)"),
        Method("unsharp", unsharp_mask, "unsharp mask sigma 1.5 amount 1.0"),
    ]


def model_method(restorer, name: str, size: int) -> Method:
    """Restore aligned faces with a `Restorer` (see the model contract)."""

    def restore(lq: np.ndarray) -> np.ndarray:
        _, restored_faces, _ = restorer.enhance(lq, has_aligned=True, paste_back=False)
        if not restored_faces:
            raise RuntimeError(f"model {name} returned no face for an aligned input")
        return resize_square(restored_faces[0], size)

    return Method(name, restore, restorer.model_version)


def model_name(path: str | None, taken: Sequence[str]) -> str:
    name = "default" if path is None else Path(path).stem
    suffix = 2
    base = name
    while name in taken or name in BASELINES:
        name, suffix = f"{base}-{suffix}", suffix + 1
    return name


# --------------------------------------------------------------------------------------------- GT cache


class EvalCache:
    """What does not depend on the model, kept per (HQ folder, size) under `cache_dir`: the dlib analyses of
    the resized GT faces (.npz) and the scores of the baselines (.json). A GT entry is keyed by the file's
    name, size and mtime; a baseline score also by a hash of the degraded input and the method's version,
    so any change to the degradations or the baselines recomputes it. `cache_dir=None` disables both."""

    def __init__(self, cache_dir: Path | None, hq_dir: Path, size: int) -> None:
        key = hashlib.sha1(f"{Path(hq_dir).resolve()}|{size}|v2".encode()).hexdigest()[:16]
        self.path = None if cache_dir is None else Path(cache_dir) / f"gt-{key}.npz"
        self.scores_path = None if cache_dir is None else Path(cache_dir) / f"baselines-{key}.json"
        self.entries: dict[str, FaceAnalysis] = {}
        self.scores: dict[str, dict] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            with np.load(self.path) as data:
                for i, stamp in enumerate(data["stamps"]):
                    self.entries[str(stamp)] = FaceAnalysis(
                        box=tuple(int(v) for v in data["boxes"][i]),
                        detected=bool(data["detected"][i]),
                        landmarks=data["landmarks"][i],
                        embedding=data["embeddings"][i],
                    )
        if self.scores_path is not None and self.scores_path.is_file():
            self.scores = json.loads(self.scores_path.read_text())

    @staticmethod
    def stamp(path: Path) -> str:
        stat = path.stat()
        return f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, path: Path, compute: Callable[[], FaceAnalysis]) -> FaceAnalysis:
        stamp = self.stamp(path)
        if stamp not in self.entries:
            self.entries[stamp] = compute()
            self.dirty = True
        return self.entries[stamp]

    def score_key(self, path: Path, lq: np.ndarray, method: Method) -> str:
        digest = hashlib.sha1(np.ascontiguousarray(lq).tobytes()).hexdigest()[:16]
        return f"{self.stamp(path)}|{digest}|{method.name}|{method.version}"

    def save(self) -> None:
        if self.path is None or self.scores_path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.scores_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.scores))
        tmp.replace(self.scores_path)
        if not self.dirty:
            return
        stamps = list(self.entries)
        values = [self.entries[s] for s in stamps]
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            stamps=np.array(stamps),
            boxes=np.array([v.box for v in values]),
            detected=np.array([v.detected for v in values]),
            landmarks=np.stack([v.landmarks for v in values]),
            embeddings=np.stack([v.embedding for v in values]),
        )
        tmp.replace(self.path)


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("wgfpgan")) / "eval"


# ----------------------------------------------------------------------------------- full-reference eval


@dataclass
class FaceScore:
    face: str
    preset: str
    method: str
    psnr: float
    ssim: float
    identity: float
    landmark_error: float
    sharpness: float
    niqe: float
    detected: bool
    seconds: float


METRIC_COLUMNS = ("psnr", "ssim", "identity", "landmark_error", "sharpness", "niqe", "detected", "seconds")
METRIC_LABELS = {
    "psnr": "PSNR dB ↑",
    "ssim": "SSIM ↑",
    "identity": "ID dist ↓",
    "landmark_error": "LM err px@512 ↓",
    "sharpness": "sharpness ×GT",
    "niqe": "NIQE ↓",
    "detected": "detected",
    "seconds": "s/face",
}


@dataclass
class EvalReport:
    rows: list[FaceScore]
    size: int
    faces: int
    presets: list[str]
    methods: dict[str, str]  # name -> version
    hq_dir: str
    seed: int
    wall_seconds: float = 0.0
    sheets: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)  # preset -> grid rows

    def summary(self) -> list[dict]:
        """Mean of every metric per (preset, method), in preset then method order."""
        table = []
        for preset in self.presets:
            for method in self.methods:
                group = [r for r in self.rows if r.preset == preset and r.method == method]
                if not group:
                    continue
                entry = {"preset": preset, "method": method, "faces": len(group)}
                for column in METRIC_COLUMNS:
                    entry[column] = float(np.mean([getattr(r, column) for r in group]))
                table.append(entry)
        return table

    def mean(self, preset: str, method: str, column: str) -> float:
        for entry in self.summary():
            if entry["preset"] == preset and entry["method"] == method:
                return entry[column]
        raise KeyError(f"no results for preset {preset!r} and method {method!r}")

    def acceptance(self, model: str | None = None, preset: str = "medium") -> dict:
        """Issue #4's three checks for `model` (default: the first model) against bicubic on `preset`."""
        models = [m for m in self.methods if m not in BASELINES]
        if not models:
            raise ValueError("no model was evaluated")
        model = model or models[0]
        psnr_gain = self.mean(preset, model, "psnr") - self.mean(preset, "bicubic", "psnr")
        identity_ratio = self.mean(preset, model, "identity") / self.mean(preset, "bicubic", "identity")
        sharpness = self.mean(preset, model, "sharpness")
        checks = {
            "psnr_gain_db": (psnr_gain, psnr_gain >= MIN_PSNR_GAIN_DB, f">= {MIN_PSNR_GAIN_DB}"),
            "identity_ratio": (
                identity_ratio,
                identity_ratio <= MAX_IDENTITY_RATIO,
                f"<= {MAX_IDENTITY_RATIO}",
            ),
            "sharpness_ratio": (sharpness, sharpness >= MIN_SHARPNESS_RATIO, f">= {MIN_SHARPNESS_RATIO}"),
        }
        return {
            "model": model,
            "preset": preset,
            "checks": {k: {"value": v, "passed": bool(p), "target": t} for k, (v, p, t) in checks.items()},
            "passed": all(p for _, p, _ in checks.values()),
        }

    def markdown(self) -> str:
        header = ["preset", "method", *(METRIC_LABELS[c] for c in METRIC_COLUMNS)]
        lines = [
            f"Faces: {self.faces} from `{self.hq_dir}` at {self.size}x{self.size}, seed {self.seed}; "
            f"wall time {self.wall_seconds:.0f} s.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for e in self.summary():
            cells = [
                f"{e['psnr']:.2f}",
                f"{e['ssim']:.4f}",
                f"{e['identity']:.4f}",
                f"{e['landmark_error']:.2f}",
                f"{e['sharpness']:.3f}",
                f"{e['niqe']:.2f}",
                f"{e['detected']:.0%}",
                f"{e['seconds']:.3f}",
            ]
            lines.append("| " + " | ".join([e["preset"], e["method"], *cells]) + " |")
        lines += ["", "Methods:"] + [f"- `{name}`: {version}" for name, version in self.methods.items()]
        if "medium" in self.presets and any(m not in BASELINES for m in self.methods):
            lines += ["", format_acceptance(self.acceptance())]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> dict[str, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out_dir / "results.md",
            "csv": out_dir / "results.csv",
            "json": out_dir / "summary.json",
        }
        paths["markdown"].write_text("# Restoration evaluation\n\n" + self.markdown())
        with paths["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(FaceScore)])
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.rows)
        summary = {
            "hq_dir": self.hq_dir,
            "faces": self.faces,
            "size": self.size,
            "seed": self.seed,
            "wall_seconds": self.wall_seconds,
            "methods": self.methods,
            "summary": self.summary(),
        }
        if "medium" in self.presets and any(m not in BASELINES for m in self.methods):
            summary["acceptance"] = self.acceptance()
        paths["json"].write_text(json.dumps(summary, indent=2))
        for preset, grid_rows in self.sheets.items():
            path = out_dir / f"contact_{preset}.png"
            cv2.imwrite(str(path), np.vstack(grid_rows))
            paths[f"sheet_{preset}"] = path
        return paths


def format_acceptance(result: dict) -> str:
    verdict = "PASS" if result["passed"] else "FAIL"
    parts = [
        f"{name} {check['value']:.3f} ({check['target']}: {'ok' if check['passed'] else 'no'})"
        for name, check in result["checks"].items()
    ]
    return f"Acceptance (issue #4, `{result['model']}` vs bicubic, {result['preset']}): {verdict} — " + "; ".join(parts)


def labelled_row(label: str, tiles: list[np.ndarray], tile: int = SHEET_TILE) -> np.ndarray:
    """One contact-sheet row: a label cell then the tiles, all `tile` pixels high."""
    cell = np.full((tile, 140, 3), 255, np.uint8)
    for i, word in enumerate(label.split()[:4]):
        cv2.putText(cell, word, (6, 24 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    resized = [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_NEAREST) for t in tiles]
    return np.hstack([cell, *resized])


def score_variant(
    identity: FaceIdentity, variant: np.ndarray, gt: np.ndarray, gt_face: FaceAnalysis, size: int
) -> dict:
    analysis = identity.analyze(variant, box=gt_face.box)
    return {
        "psnr": metrics.psnr(variant, gt),
        "ssim": metrics.ssim(variant, gt),
        "identity": identity_distance(analysis.embedding, gt_face.embedding),
        "landmark_error": metrics.landmark_error(analysis.landmarks, gt_face.landmarks, size),
        "sharpness": metrics.sharpness_ratio(variant, gt),
        "niqe": face_niqe(variant),
        "detected": bool(identity.detect(variant)),
    }


_process_identity: FaceIdentity | None = None


def _score_in_worker(variant: np.ndarray, gt: np.ndarray, gt_face: FaceAnalysis, size: int, seconds: float) -> dict:
    global _process_identity
    _process_identity = _process_identity or FaceIdentity()
    return {**score_variant(_process_identity, variant, gt, gt_face, size), "seconds": seconds}


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class _Scorer:
    """Scores variants inline (workers=0) or in a process pool, so that dlib embeddings of one face run
    on the second core while the model restores the next one."""

    def __init__(self, workers: int) -> None:
        self.identity = FaceIdentity()
        self.pool = None
        if workers > 0:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, variant: np.ndarray, gt: np.ndarray, gt_face: FaceAnalysis, size: int, *, seconds: float):
        """Future of the variant's scores (with the restoration `seconds` added)."""
        if self.pool is not None:
            return self.pool.submit(_score_in_worker, variant, gt, gt_face, size, seconds)
        return _done({**score_variant(self.identity, variant, gt, gt_face, size), "seconds": seconds})

    def throttle(self, pending: list, max_in_flight: int = 64) -> None:
        """Bound the images queued for the pool: wait for the oldest results when too many are queued."""
        if self.pool is not None and len(pending) > max_in_flight:
            pending[-max_in_flight][-1].result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def evaluate_hq(
    hq_dir: Path,
    model_paths: Sequence[str | None] = (None,),
    presets: Sequence[str] = DEFAULT_PRESETS,
    *,
    limit: int | None = None,
    size: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    cache_dir: Path | None = None,
    sheet_faces: int = SHEET_FACES,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Degrade, restore and score aligned HQ faces; see the module docstring for the protocol.

    `model_paths`: checkpoints to evaluate (None = the shipped default model); an empty list evaluates
    the baselines only (then `size` defaults to 512). `workers`: processes computing the metrics while
    the main process restores (0 = all inline; default: one per CPU core, as the dlib embeddings, not the
    model, dominate the time at the model's face size).
    """
    from model.degradations import PRESETS, apply_preset

    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ValueError(f"unknown preset(s) {unknown}; choose from {sorted(PRESETS)}")
    paths = list_images(hq_dir)[:limit] if limit else list_images(hq_dir)
    if not paths:
        raise ValueError(f"no images in {hq_dir}")
    start = time.perf_counter()

    restorers = []
    if model_paths:
        from model.restorer import Restorer

        restorers = [Restorer(path, device=device) for path in model_paths]
    size = size or (restorers[0].face_size if restorers else 512)
    methods = baseline_methods()
    for path, restorer in zip(model_paths, restorers, strict=True):
        methods.append(model_method(restorer, model_name(path, [m.name for m in methods]), size))

    scorer = _Scorer((os.cpu_count() or 1) if workers is None else workers)
    cache = EvalCache(cache_dir, hq_dir, size)
    report = EvalReport(
        rows=[],
        size=size,
        faces=len(paths),
        presets=list(presets),
        methods={m.name: m.version for m in methods},
        hq_dir=str(hq_dir),
        seed=seed,
    )
    sheet_tiles: dict[str, dict[str, list[np.ndarray]]] = {p: {} for p in presets}
    pending = []  # (face, preset, method, baseline cache key or None, future of the scores)
    try:
        for index, path in enumerate(paths):
            gt = resize_square(read_image(path), size)
            gt_face = cache.get(path, lambda gt=gt: scorer.identity.analyze(gt))
            for preset in presets:
                lq = apply_preset(gt, preset, seed=seed + index)
                tiles = sheet_tiles[preset]
                if index < sheet_faces:
                    tiles.setdefault("LQ (bicubic)", []).append(lq)
                for method in methods:
                    key = cache.score_key(path, lq, method) if method.name in BASELINES else None
                    on_sheet = index < sheet_faces and method.name != "bicubic"
                    if key in cache.scores and not on_sheet:
                        pending.append((path.name, preset, method.name, key, _done(cache.scores[key])))
                        continue
                    t0 = time.perf_counter()
                    restored = method.restore(lq)
                    scores = scorer.submit(restored, gt, gt_face, size, seconds=time.perf_counter() - t0)
                    pending.append((path.name, preset, method.name, key, scores))
                    scorer.throttle(pending)
                    if on_sheet:
                        tiles.setdefault(method.name, []).append(restored)
                if index < sheet_faces:
                    tiles.setdefault("GT", []).append(gt)
            if progress:
                progress(f"{index + 1}/{len(paths)} faces restored")
        for face, preset, method, key, future in pending:
            scores = future.result()
            if key is not None:
                cache.scores[key] = scores
            report.rows.append(FaceScore(face, preset, method, **scores))
    finally:
        scorer.close()
    cache.save()
    report.sheets = {
        preset: [labelled_row(f"{preset} {label}", row) for label, row in tiles.items()]
        for preset, tiles in sheet_tiles.items()
    }
    report.wall_seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------------------------------- real photos


@dataclass
class RealScore:
    image: str
    width: int
    height: int
    aligned: bool  # no face detected: the whole image was restored as one aligned face
    faces: int  # faces the Restorer found and restored
    dlib_faces_before: int
    dlib_faces_after: int
    niqe_before: float  # mean face-domain NIQE of the face crops before restoration
    niqe_after: float
    seconds: float


def before_after_sheet(before: np.ndarray, after: np.ndarray, height: int = 384) -> np.ndarray:
    def fit(img: np.ndarray) -> np.ndarray:
        width = max(1, round(img.shape[1] * height / img.shape[0]))
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)

    gap = np.full((height, 8, 3), 255, np.uint8)
    return np.hstack([fit(before), gap, fit(after)])


def evaluate_real(
    real_dir: Path,
    out_dir: Path,
    model_path: str | None = None,
    *,
    device: str = "cpu",
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RealScore]:
    """Restore every photo of `real_dir` and write before/after sheets plus a Markdown/CSV/JSON report.

    Photos in which no face is detected but which are square (already-cropped faces) are restored as
    aligned faces. NIQE is the face-domain NIQE of the face crops (mean over faces), before and after.
    """
    from model.restorer import Restorer

    restorer = Restorer(model_path, device=device)
    identity = FaceIdentity()
    out_dir = Path(out_dir)
    sheets_dir = out_dir / "sheets"
    sheets_dir.mkdir(parents=True, exist_ok=True)
    paths = list_images(real_dir)[:limit] if limit else list_images(real_dir)
    if not paths:
        raise ValueError(f"no images in {real_dir}")
    scores = []
    skipped = []
    for n, path in enumerate(paths, 1):
        try:
            img = read_image(path)
        except ValueError as exc:
            skipped.append(str(exc))
            continue
        t0 = time.perf_counter()
        crops, restored_faces, restored = restorer.enhance(img, has_aligned=False, paste_back=True)
        aligned = False
        if not restored_faces and img.shape[0] == img.shape[1]:
            crops, restored_faces, _ = restorer.enhance(img, has_aligned=True, paste_back=False)
            restored, aligned = restored_faces[0], True
        seconds = time.perf_counter() - t0
        if aligned:
            crops = [resize_square(img, restorer.face_size)]
        relative = path.relative_to(real_dir)
        scores.append(
            RealScore(
                image=str(relative),
                width=img.shape[1],
                height=img.shape[0],
                aligned=aligned,
                faces=len(restored_faces),
                dlib_faces_before=len(identity.detect(img)),
                dlib_faces_after=len(identity.detect(restored)) if restored is not None else 0,
                niqe_before=float(np.mean([face_niqe(c) for c in crops])) if crops else float("nan"),
                niqe_after=float(np.mean([face_niqe(f) for f in restored_faces])) if restored_faces else float("nan"),
                seconds=seconds,
            )
        )
        if restored is not None:
            sheet = before_after_sheet(img, restored)
            cv2.imwrite(str(sheets_dir / (str(relative.with_suffix("")).replace("/", "__") + ".png")), sheet)
        if progress:
            progress(f"{n}/{len(paths)} {relative}")
    write_real_report(scores, out_dir, real_dir, restorer.model_version, skipped)
    return scores


def write_real_report(scores: list[RealScore], out_dir: Path, real_dir: Path, version: str, skipped: list[str]) -> None:
    with (out_dir / "real.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(RealScore)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in scores)
    before = [s.niqe_before for s in scores if not np.isnan(s.niqe_before)]
    after = [s.niqe_after for s in scores if not np.isnan(s.niqe_after)]
    totals = {
        "images": len(scores),
        "unreadable": len(skipped),
        "model": version,
        "faces_restored": sum(s.faces for s in scores),
        "images_without_detected_faces": sum(1 for s in scores if s.faces == 0 or s.aligned),
        "restored_as_aligned": sum(1 for s in scores if s.aligned),
        "dlib_faces_before": sum(s.dlib_faces_before for s in scores),
        "dlib_faces_after": sum(s.dlib_faces_after for s in scores),
        "mean_face_niqe_before": float(np.mean(before)) if before else None,
        "mean_face_niqe_after": float(np.mean(after)) if after else None,
        "seconds_per_image": float(np.mean([s.seconds for s in scores])),
    }
    report = {"totals": totals, "images": [asdict(s) for s in scores], "unreadable": skipped}
    (out_dir / "real.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Real-world photos: before / after",
        "",
        f"Folder `{real_dir}`, model `{version}`. NIQE: face-domain NIQE of the face crops (lower = better).",
        "",
        "| total | value |",
        "|---|---|",
        *(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in totals.items()),
        "",
        "| image | size | faces | dlib before → after | face NIQE before → after | s |",
        "|---|---|---|---|---|---|",
    ]
    for s in scores:
        faces = f"{s.faces}{' (aligned)' if s.aligned else ''}"
        lines.append(
            f"| {s.image} | {s.width}x{s.height} | {faces} | {s.dlib_faces_before} → {s.dlib_faces_after} "
            f"| {s.niqe_before:.2f} → {s.niqe_after:.2f} | {s.seconds:.2f} |"
        )
    if skipped:
        lines += ["", "Unreadable files (skipped):", *(f"- {line}" for line in skipped)]
    (out_dir / "real.md").write_text("\n".join(lines) + "\n")
