"""Regenerate docs/RESULTS.md: every number in it comes from this one command.

    python benchmarks/make_results.py                      # all stages with the shipped default model
    python benchmarks/make_results.py --stages render      # only re-render from the saved JSON files
    python benchmarks/make_results.py --pipeline-check     # tiny random weights: pipeline proof, NOT results

Stages (each writes its raw output under benchmarks/results/, then `render` writes docs/RESULTS.md):
- hq:    `wgfpgan eval` protocol on ../shared/data/faces/val-512 (250 faces, 3 presets, default model and the
         extra `--model`s, bicubic and unsharp baselines) -> benchmarks/results/eval-val512/
- niqe:  the face-domain NIQE sanity check (50 held-out faces: sharp / blurred / noisy / JPEG)
- lfw:   benchmarks/lfw_study.py on a balanced subset of LFW DevTrain pairs (`--lfw-pairs`)
- real:  `wgfpgan eval --real` on ../shared/data/realworld -> benchmarks/results/real/
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from model import evaluate  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "RESULTS.md"
IMAGES = REPO / "docs" / "img"
STAGES = ("hq", "niqe", "lfw", "real", "render")
# Real photos shown in RESULTS.md: a group photo, a small old photo, a crop and a gray crop.
SHEET_PHOTOS = (
    "DifFace/testdata/Solvay_conference_1927.png",
    "CodeFormer/inputs/whole_imgs/00.jpg",
    "GFPGAN/inputs/cropped_faces/Adele_crop.png",
    "CodeFormer/inputs/gray_faces/Einstein01.png",
)


def shared_dir() -> Path:
    import os

    return Path(os.environ.get("WGFPGAN_SHARED", REPO.parent / "shared"))


def tiny_random_model(path: Path) -> str:
    """A 64-px generator with random weights, for checking the pipeline end to end."""
    import torch

    from model.checkpoint import save_generator
    from model.gfpgan_arch import GFPGANv1Clean

    torch.manual_seed(0)
    net = GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, num_mlp=2, narrow=0.125, sft_half=True)
    return str(save_generator(net, path))


def save_jpeg(img: np.ndarray, path: Path, max_width: int = 1400) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.shape[1] > max_width:
        scale = max_width / img.shape[1]
        img = cv2.resize(img, (max_width, round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return path


# ----------------------------------------------------------------------------------------------- stages


def stage_hq(models: list[str | None], limit: int | None) -> None:
    out = RESULTS / "eval-val512"
    report = evaluate.evaluate_hq(
        shared_dir() / "data" / "faces" / "val-512",
        models,
        limit=limit,
        cache_dir=evaluate.default_cache_dir(),
        progress=lambda m: print(f"\r  hq: {m}", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    paths = report.write(out)
    for preset in report.presets:
        save_jpeg(cv2.imread(str(paths[f"sheet_{preset}"])), IMAGES / f"results_contact_{preset}.jpg")


def stage_niqe() -> None:
    from model.niqe import face_niqe

    files = sorted((shared_dir() / "data" / "faces" / "val-512").glob("*.jpg"))[:50]
    rng = np.random.default_rng(0)
    scores: dict[str, list[float]] = {
        "sharp": [],
        "blurred (sigma 2)": [],
        "noisy (sigma 15)": [],
        "JPEG q20": [],
    }
    for path in files:
        face = cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_AREA)
        _, jpeg = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 20])
        variants = [
            face,
            cv2.GaussianBlur(face, (0, 0), 2.0),
            np.clip(face + rng.normal(0, 15, face.shape), 0, 255).astype(np.uint8),
            cv2.imdecode(jpeg, cv2.IMREAD_COLOR),
        ]
        for name, img in zip(scores, variants, strict=True):
            scores[name].append(face_niqe(img))
    summary = {name: {"mean": float(np.mean(v)), "std": float(np.std(v))} for name, v in scores.items()}
    (RESULTS / "niqe_check.json").write_text(json.dumps({"faces": len(files), "scores": summary}, indent=2))


def stage_lfw(model: str | None, pairs: int, presets: list[str]) -> None:
    from lfw_study import run_study

    result = run_study(shared_dir() / "data" / "lfw-devtrain", pairs, presets, model)
    (RESULTS / "lfw_study.json").write_text(json.dumps(result, indent=2))


def stage_real(model: str | None) -> None:
    out = RESULTS / "real"
    scores = evaluate.evaluate_real(
        shared_dir() / "data" / "realworld",
        out,
        model,
        progress=lambda m: print(f"\r  real: {m[:70]:70}", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    by_name = {s.image: s for s in scores}
    picks = [by_name[name] for name in SHEET_PHOTOS if name in by_name] or scores[:3]
    sheets = [
        cv2.imread(str(out / "sheets" / (Path(s.image).with_suffix("").as_posix().replace("/", "__") + ".png")))
        for s in picks
    ]
    sheets = [cv2.resize(s, (round(s.shape[1] * 256 / s.shape[0]), 256)) for s in sheets if s is not None]
    if sheets:
        width = max(s.shape[1] for s in sheets)
        padded = [
            cv2.copyMakeBorder(s, 4, 4, 0, width - s.shape[1], cv2.BORDER_CONSTANT, value=(255,) * 3) for s in sheets
        ]
        save_jpeg(np.vstack(padded), IMAGES / "results_real.jpg")


# ----------------------------------------------------------------------------------------------- render


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def paragraph(text: str, **values) -> str:
    """One Markdown paragraph from a wrapped template: whitespace collapsed, then `str.format`."""
    return " ".join(text.split()).format(**values)


PIPELINE_BANNER = """> **PIPELINE CHECK ONLY — these numbers come from a tiny generator with RANDOM weights.**
> They prove that every stage runs end to end; they say nothing about the project's model.
> Re-run `python benchmarks/make_results.py` once the default model is in model/weights/."""

HQ_TEXT = """{faces} held-out aligned faces of `val-512`, resized to the model's face size ({size}x{size}),
degraded with the fixed-seed presets of model/degradations.py (mild: blur 1.5, 2x down, noise 3, JPEG 85;
medium: blur 2.5, 4x, noise 5, JPEG 70; severe: blur 4, 8x, noise 10, JPEG 50; all brought back to size
with bicubic), then restored. `bicubic` is that degraded input; `unsharp` is an unsharp mask on it.
PSNR on RGB, SSIM on Y; ID dist = dlib embedding distance to the GT (same person typically < 0.6);
LM err = dlib 5-point landmark error in pixels at 512; sharpness = gradient energy / GT's; NIQE =
face-domain NIQE of the face at 256 px (lower = more like sharp faces); detected = dlib HOG still finds
the face. Protocol: model/evaluate.py."""

NIQE_TEXT = """NIQE re-implemented from Mittal et al. 2013 with its pristine model fitted on the 4,500 train-256
faces (model/niqe.py, `benchmarks/fit_niqe.py`): a face-domain NIQE, not comparable with published
natural-image NIQE values. On {faces} held-out val faces at 256 px:"""

LFW_TEXT = """Both images of each pair degraded with the preset (seed from the file name), then embedded with
dlib's 128-d face recogniser: clean, degraded, and restored (`Restorer.enhance`: detect, align, restore,
paste back, upscale 1). Threshold by 10-fold cross-validation; mean accuracy and fold standard deviation.
`face detected` = dlib HOG found the face (else the median clean box is used); `vs degraded` = accuracy
change that restoration brings; `loss recovered` = that change as a share of the accuracy the degradation
took (noisy when little was lost, e.g. on mild). Script: `benchmarks/lfw_study.py`."""

REAL_TEXT = """{images} photos of `../shared/data/realworld` through `wgfpgan eval --real` with `{model}`:
{faces_restored} faces restored; {images_without_detected_faces} photos without a detected face, of which
{restored_as_aligned} (square crops) were restored as one aligned face; dlib HOG finds {dlib_faces_before}
faces before and {dlib_faces_after} after; mean face NIQE {mean_face_niqe_before:.2f} before,
{mean_face_niqe_after:.2f} after; {seconds_per_image:.2f} s per photo. Per-photo table:
`benchmarks/results/real/real.md`."""

OWN_MODEL_TEXT = """Without `--model` the shipped default model is evaluated. The summary ends with issue #4's
acceptance line (PSNR gain >= 1.5 dB, identity distance <= 0.8x bicubic's, sharpness >= 0.6x GT's, on
medium); `--check` makes the exit code 1 when the first model fails it. In Python:
`evaluate_hq(folder, [path], ['medium']).acceptance()` (model/evaluate.py)."""

REPRODUCE_TEXT = """`python benchmarks/make_results.py` (about 15 minutes on 2 cores from cold caches, 6 minutes
when they are warm; `--stages hq,render` for the table alone, `--lfw-pairs 0` for all 2,200 LFW pairs).
GT embeddings, baseline scores and LFW embeddings are cached in the user cache folder, so a re-run mostly
costs the model."""

EVAL_COMMANDS = """```
wgfpgan eval --hq ../shared/data/faces/val-512 --model runs/my.pth --preset medium --out eval-report
wgfpgan eval --hq ../shared/data/faces/val-512 --model a.pth --model b.pth   # several models, 3 presets
wgfpgan eval --real ../shared/data/realworld --out real-report               # before/after sheets
```"""


def render(pipeline_check: bool) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    lines = ["# Results", ""]
    if pipeline_check:
        lines += [PIPELINE_BANNER, ""]
    lines += [
        f"Generated by `python benchmarks/make_results.py` on {dt.date.today().isoformat()} at commit "
        f"`{commit.stdout.strip() or '?'}`, on the project's 2-core CPU machine. Raw outputs: `benchmarks/results/`.",
        "",
    ]
    hq = _load(RESULTS / "eval-val512" / "summary.json")
    if hq:
        table = (RESULTS / "eval-val512" / "results.md").read_text().split("\n", 2)[2].strip()
        lines += [
            "## Restoration of degraded faces (full reference)",
            "",
            paragraph(HQ_TEXT, faces=hq["faces"], size=hq["size"]),
            "",
            table,
            "",
            "Contact sheet (medium; rows: degraded input, unsharp, model(s), ground truth):",
            "",
            "![contact sheet, medium preset](img/results_contact_medium.jpg)",
            "",
        ]
    niqe = _load(RESULTS / "niqe_check.json")
    if niqe:
        lines += [
            "## Face-domain NIQE sanity check",
            "",
            paragraph(NIQE_TEXT, faces=niqe["faces"]),
            "",
            "| variant | mean NIQE | std |",
            "|---|---|---|",
            *(f"| {k} | {v['mean']:.2f} | {v['std']:.2f} |" for k, v in niqe["scores"].items()),
            "",
        ]
    lfw = _load(RESULTS / "lfw_study.json")
    if lfw:
        from lfw_study import markdown_table

        lines += [
            "## Face recognition on LFW (does restoration give identity back?)",
            "",
            paragraph(LFW_TEXT),
            "",
            markdown_table(lfw),
            "",
            f"Wall time {lfw['wall_seconds'] / 60:.1f} min for the conditions not already cached.",
            "",
        ]
    real = _load(RESULTS / "real" / "real.json")
    if real:
        lines += [
            "## Real-world photos (no ground truth)",
            "",
            paragraph(REAL_TEXT, **real["totals"]),
            "",
            "![before / after](img/results_real.jpg)",
            "",
        ]
    lines += ["## Evaluate your own model", "", EVAL_COMMANDS, "", paragraph(OWN_MODEL_TEXT), ""]
    lines += ["## Reproduce", "", paragraph(REPRODUCE_TEXT), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {STAGES}")
    parser.add_argument("--model", action="append", help="extra checkpoint(s) to evaluate beside the default")
    parser.add_argument("--limit", type=int, default=None, help="faces of val-512 (default: all 250)")
    parser.add_argument("--lfw-pairs", type=int, default=300, help="LFW pairs (balanced; 0 = all 2,200)")
    parser.add_argument("--lfw-preset", action="append", choices=("mild", "medium", "severe"))
    parser.add_argument("--pipeline-check", action="store_true", help="use a tiny random model (NOT results)")
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    needs_model = bool(set(stages) & {"hq", "lfw", "real"})
    default = None
    if args.pipeline_check and needs_model:
        default = tiny_random_model(Path(tempfile.mkdtemp()) / "tiny-random.pth")
    models = [default, *(args.model or [])]
    runners = {
        "hq": lambda: stage_hq(models, args.limit),
        "niqe": stage_niqe,
        "lfw": lambda: stage_lfw(default, args.lfw_pairs, args.lfw_preset or ["mild", "medium", "severe"]),
        "real": lambda: stage_real(default),
        "render": lambda: DOC.write_text(render(args.pipeline_check)),
    }
    for stage in stages:
        start = time.perf_counter()
        runners[stage]()
        print(f"{stage}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
