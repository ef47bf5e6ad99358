"""CLI verbs of the worker layer: `wgfpgan worker` (a Celery worker) and `wgfpgan run` (the embedded
default: one machine, no services). Heavy imports (celery, torch) happen inside the handlers."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="start a Celery worker that restores queued items")
    p.add_argument("--concurrency", type=int, default=1, help="worker processes (1 = solo pool, in-process)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default WGFPGAN_DEVICE or cpu")
    p.add_argument("--batch", type=int, help="faces per forward pass (default WGFPGAN_FACE_BATCH or 8)")
    p.add_argument("--queue", help="queue to consume (default WGFPGAN_QUEUE or wgfpgan)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(handler=_worker)

    from scheduler.cli import add_restore_options

    p = subparsers.add_parser("run", help="restore a folder/S3 prefix on this machine (no Redis/PostgreSQL)")
    p.add_argument("source", help="a local folder or s3://bucket/prefix/")
    p.add_argument("--out", required=True, metavar="DEST", help="a local folder or s3://bucket/prefix/")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--batch", type=int, help="faces per forward pass")
    p.add_argument("--manifest", metavar="FILE", help="only these keys (one per line, relative to SOURCE)")
    p.add_argument("--name", help="a readable job name")
    p.add_argument("--all-files", action="store_true", help="make every file an item, not only images")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    add_restore_options(p)
    p.set_defaults(handler=_run)


def _apply_env(args: argparse.Namespace) -> None:
    """Flags become environment so that every worker process (fork or spawn) sees the same settings."""
    import os

    for flag, variable in (
        ("device", "WGFPGAN_DEVICE"),
        ("batch", "WGFPGAN_FACE_BATCH"),
        ("queue", "WGFPGAN_QUEUE"),
    ):
        value = getattr(args, flag, None)
        if value:
            os.environ[variable] = str(value)


def _worker(args: argparse.Namespace) -> int:
    import os
    import socket

    from db import Database, DatabaseNotMigrated
    from wgfpgan.config import Settings, mask_url

    _apply_env(args)
    settings = Settings.from_env()
    try:
        Database.from_settings(settings).dispose()  # refuse an un-migrated DB before taking messages
    except DatabaseNotMigrated as exc:
        print(f"wgfpgan worker: {exc}", file=sys.stderr)
        return 2
    model_error = _model_problem(settings.model_path)
    if model_error:
        print(f"wgfpgan worker: {model_error}", file=sys.stderr)
        return 2
    from worker.app import app

    pool = "solo" if args.concurrency <= 1 else "prefork"
    where = f"broker {mask_url(settings.broker_url)}, queue {settings.queue}"
    where += f", db {mask_url(settings.database_url)}"
    print(f"wgfpgan worker: {where}, {pool} x{max(1, args.concurrency)}", file=sys.stderr)
    argv = [
        "worker",
        f"--queues={settings.queue}",
        f"--pool={pool}",
        f"--concurrency={max(1, args.concurrency)}",
        f"--loglevel={args.loglevel}",
        f"--hostname=wgfpgan-{os.getpid()}@{socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0


def _model_problem(model_path: str | None) -> str | None:
    """A readable reason why no model can be loaded, checked before any message is taken."""
    from pathlib import Path

    if model_path:
        return None if Path(model_path).is_file() else f"model file {model_path} not found (WGFPGAN_MODEL)"
    from model.checkpoint import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.is_file():
        return f"the shipped default model {DEFAULT_MODEL_PATH} is missing; set WGFPGAN_MODEL"
    return None


def _run(args: argparse.Namespace) -> int:
    from scheduler.cli import cli_errors

    return cli_errors(_run_embedded)(args)


def _run_embedded(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scheduler.cli import restore_options
    from scheduler.views import console, print_json
    from wgfpgan.config import Settings
    from worker.run import embedded_settings, run_job

    _apply_env(args)
    settings = embedded_settings(Settings.from_env(), device=args.device, batch=args.batch)
    model_error = _model_problem(settings.model_path)
    if model_error:
        print(f"wgfpgan run: {model_error}", file=sys.stderr)
        return 2
    out = console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=out, disable=args.json or not out.is_terminal)
    job_ids: list[int] = []

    def on_job(job_id: int) -> None:
        job_ids.append(job_id)
        if not args.json:
            print(
                f"job {job_id}: restoring {args.source} -> {args.out} with {args.workers} worker(s)",
                flush=True,
            )

    task = progress.add_task("restoring", total=None)

    def on_progress(counts: dict[str, int]) -> None:
        finished = sum(counts.values()) - counts["queued"] - counts["running"]
        progress.update(task, total=sum(counts.values()), completed=finished)

    try:
        with progress:
            result = run_job(
                settings,
                args.source,
                args.out,
                options=restore_options(args),
                workers=args.workers,
                name=args.name,
                manifest=args.manifest,
                all_files=args.all_files,
                on_job=on_job,
                on_progress=on_progress,
            )
    except RuntimeError as exc:  # e.g. the model cannot be loaded, worker processes cannot start
        print(f"wgfpgan run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = f"job {job_ids[0]}" if job_ids else "the job"
        print(
            f"interrupted: {where} keeps its progress; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    counts = result.counts
    if args.json:
        print_json({"id": result.job_id, "counts": counts, "requeued": result.requeued})
    else:
        summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        print(f"job {result.job_id} finished: {summary or 'no images found'}")
        if counts["failed"]:
            print(f"see why: wgfpgan status {result.job_id} --failed")
    return 0
