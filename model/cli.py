"""model/'s verbs for the `wgfpgan` entry point: `restore` (here) and `eval` (model/eval_cli.py).

`wgfpgan restore` follows GFPGAN's `inference_gfpgan.py`: it writes OUTPUT/cropped_faces/,
OUTPUT/restored_faces/ and OUTPUT/cmp/ (`{name}_{idx:02d}.png`) and OUTPUT/restored_imgs/ (`{name}.{ext}`).
A bad file is reported by name with its reason and skipped; the exit code is 1 if any file failed.

Imported by every `wgfpgan` invocation: nothing heavy at module level (torch, cv2, dlib load in the
handler). To add a model/ verb, write `<verb>_cli.register(subparsers)` in `register` below.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from model import eval_cli, inference_cli, train_cli

EXT_CHOICES = ("auto", "png", "jpg")
MAX_UPSCALE = 8  # as model.restorer.MAX_UPSCALE (not imported: that module loads cv2)


def register(subparsers) -> None:
    """Add model/'s verbs to the `wgfpgan` parser."""
    register_restore(subparsers)
    eval_cli.register(subparsers)
    train_cli.register(subparsers)
    inference_cli.register(subparsers)


def register_restore(subparsers) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore the faces in a photo or a folder of photos (local, no queue)",
        description="Detect, align, restore and paste back every face; the background is upscaled.",
    )
    parser.add_argument("-i", "--input", required=True, type=Path, help="a photo or a folder of photos")
    parser.add_argument("-o", "--output", default=Path("results"), type=Path, help="output folder")
    parser.add_argument("-s", "--upscale", type=upscale_factor, default=2, help="final upscale 1..8 (default 2)")
    parser.add_argument("--model", default=None, help="checkpoint (.pth/.onnx; default: WGFPGAN_MODEL or shipped)")
    parser.add_argument("--aligned", action="store_true", help="inputs are aligned faces (no detection)")
    parser.add_argument("--only-center-face", action="store_true", help="restore only the most central face")
    parser.add_argument(
        "-w", "--weight", type=float, default=1.0, help="blend: 0 = input face, 1 = restored face (default 1)"
    )
    parser.add_argument("--ext", choices=EXT_CHOICES, default="auto", help="output format (default: as input)")
    parser.add_argument("--suffix", default=None, help="suffix of the restored face and photo file names")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: WGFPGAN_DEVICE or cpu)")
    parser.add_argument(
        "--mode",
        default="auto",
        help="FaceEngine mode: auto, eager, channels_last, bf16 or onnx (default auto)",
    )
    parser.add_argument("--batch", type=int, default=8, help="faces per generator call (default 8)")
    parser.add_argument("--detector", choices=("hog", "cnn"), default="hog", help="dlib face detector")
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=80.0,
        help="refuse larger photos (default 80, checked from the header)",
    )
    parser.set_defaults(handler=run_restore)


def upscale_factor(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_UPSCALE:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_UPSCALE}")
    return value


@dataclass
class RestoreSummary:
    photos: int = 0
    faces: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)


def list_inputs(path: Path) -> list[Path]:
    """A single file, or the visible regular files of a folder (not recursive), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def output_names(paths: list[Path]) -> dict[Path, str]:
    """Base names for the outputs; inputs that share a stem (a.jpg, a.png) keep their extension in it."""
    stems: dict[str, int] = {}
    for path in paths:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    return {p: p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths}


def run_restore(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    if not args.input.exists():
        console.print(f"[red]input {args.input} does not exist[/red]")
        return 2
    paths = list_inputs(args.input)
    if not paths:
        console.print(f"[red]no files in {args.input}[/red]")
        return 2
    try:
        restorer = _build_restorer(args)
    except Exception as exc:  # model file missing / unreadable: one clear line, no traceback
        console.print(f"[red]cannot load the model: {exc}[/red]")
        return 2
    writer = OutputWriter(args.output, args.suffix)
    started = time.perf_counter()
    summary = _restore_all(restorer, paths, writer, args, console)
    failed = len(summary.failures)
    console.print(
        f"restored {summary.photos} of {len(paths)} files ({summary.faces} faces) in "
        f"{time.perf_counter() - started:.1f} s; {failed} failed; results in {args.output}"
    )
    for name, reason in summary.failures:
        console.print(f"  [red]FAILED[/red] {escape(name)}: {escape(reason)}")
    return 1 if failed else 0


def _build_restorer(args: argparse.Namespace):
    from model.face.detection import DlibDetector
    from model.restorer import Restorer
    from wgfpgan.config import Settings

    settings = Settings.from_env()
    return Restorer(
        args.model or settings.model_path,
        device=args.device or settings.device,
        upscale=args.upscale,
        mode=args.mode,
        max_pixels=int(args.max_megapixels * 1e6),
        batch_size=args.batch,
        detector=DlibDetector(args.detector),
    )


def _restore_all(restorer, paths: list[Path], writer: OutputWriter, args, console) -> RestoreSummary:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from model.imageio import ImageError

    summary = RestoreSummary()
    names = output_names(paths)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("restoring", total=len(paths))
        for path in paths:
            progress.update(task, description=f"restoring {escape(path.name)}")
            reason = None
            try:
                summary.faces += _restore_one(restorer, path, names[path], writer, args)
                summary.photos += 1
            except ImageError as exc:
                reason = f"{exc.code}: {exc}"
            except (OSError, ValueError, MemoryError) as exc:  # unreadable file, out of memory: skip, go on
                reason = f"{type(exc).__name__}: {exc}"
            if reason:
                summary.failures.append((path.name, reason))
                progress.console.print(f"[red]skipped[/red] {escape(path.name)}: {escape(reason)}")
            progress.advance(task)
    return summary


def _restore_one(restorer, path: Path, name: str, writer: OutputWriter, args) -> int:
    from model.imageio import decode_image, output_extension

    image = decode_image(path.read_bytes(), max_pixels=restorer.max_pixels)
    if args.aligned:
        cropped, restored, _ = restorer.enhance(image.bgr8(), has_aligned=True, weight=args.weight)
        writer.write_faces(name, cropped, restored)
        return len(restored)
    photo = restorer.restore_decoded(image, weight=args.weight, only_center_face=args.only_center_face)
    writer.write_faces(name, photo.cropped_faces, photo.restored_faces)
    ext = output_extension(image, args.ext, out_size=(photo.pixels.shape[1], photo.pixels.shape[0]))
    writer.write_photo(name, photo.encode(ext), ext)
    return len(photo.restored_faces)


class OutputWriter:
    """The four output folders of GFPGAN's inference script."""

    def __init__(self, root: Path, suffix: str | None):
        self.root = root
        self.suffix = f"_{suffix}" if suffix else ""
        for folder in ("cropped_faces", "restored_faces", "cmp", "restored_imgs"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    def write_faces(self, name: str, cropped: list, restored: list) -> None:
        import cv2
        import numpy as np

        from model.imageio import encode_image

        for idx, (crop, face) in enumerate(zip(cropped, restored, strict=True)):
            (self.root / "cropped_faces" / f"{name}_{idx:02d}.png").write_bytes(encode_image(crop))
            restored_name = f"{name}_{idx:02d}{self.suffix}.png"
            (self.root / "restored_faces" / restored_name).write_bytes(encode_image(face))
            side_by_side = np.concatenate([crop, cv2.resize(face, crop.shape[1::-1])], axis=1)
            (self.root / "cmp" / f"{name}_{idx:02d}.png").write_bytes(encode_image(side_by_side))

    def write_photo(self, name: str, data: bytes, ext: str) -> None:
        (self.root / "restored_imgs" / f"{name}{self.suffix}.{ext}").write_bytes(data)
