"""CLI verbs of the scheduler: submit, jobs, status, watch, cancel, retry, reconcile (+ `db ...`).

Imports nothing heavy at module level; each handler imports what it needs, and none of them ever
imports torch, model/ or worker/ (`wgfpgan status` stays fast and light).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction) -> None:
    from db.cli import register as register_db

    p = subparsers.add_parser("submit", help="register a folder/S3 prefix as a job and enqueue its images")
    p.add_argument("source", help="s3://bucket/prefix/ or a local folder")
    p.add_argument("--out", required=True, metavar="DEST", help="s3://bucket/prefix/ or a local folder")
    p.add_argument("--manifest", metavar="FILE", help="only these keys (one per line, relative to SOURCE; - = stdin)")
    p.add_argument("--name", help="a readable job name (default: the source folder name)")
    add_restore_options(p)
    p.add_argument("--all-files", action="store_true", help="make every object an item, not only image extensions")
    p.add_argument("--chunk-size", type=int, help="item ids per broker message (default WGFPGAN_CHUNK_SIZE or 8)")
    p.add_argument("--json", action="store_true", help='print {"id": ...} and the counts as JSON')
    p.set_defaults(handler=_submit)

    p = subparsers.add_parser("jobs", help="list jobs with their item counts")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_jobs)

    p = subparsers.add_parser("status", help="one job's state and item counts (and failed items)")
    p.add_argument("job", type=int)
    p.add_argument("--json", action="store_true", help="an object with id, state, done and counts")
    p.add_argument("--failed", action="store_true", help="also list failed items with their reasons")
    p.add_argument("--limit", type=int, default=100, help="failed items to show")
    p.set_defaults(handler=_status)

    p = subparsers.add_parser("watch", help="live progress of a job until it is done")
    p.add_argument("job", type=int)
    p.add_argument("--interval", type=float, default=1.0)
    p.set_defaults(handler=_watch)

    p = subparsers.add_parser("cancel", help="cancel a job's queued items (running ones finish)")
    p.add_argument("job", type=int)
    p.set_defaults(handler=_cancel)

    p = subparsers.add_parser("retry", help="requeue a job's failed (and cancelled) items")
    p.add_argument("job", type=int)
    p.add_argument("--failed", action="store_true", help="only failed items, not cancelled ones")
    p.set_defaults(handler=_retry)

    p = subparsers.add_parser("reconcile", help="requeue expired leases and re-send items the broker lost")
    p.add_argument("--loop", type=float, metavar="SECONDS", help="repeat every SECONDS (run as a service)")
    p.add_argument(
        "--stale-after", type=float, default=300.0, metavar="SECONDS",
        help="only items sent at least this long ago are checked against the broker (default 300)",
    )  # fmt: skip
    p.set_defaults(handler=_reconcile)

    register_db(subparsers)


def add_restore_options(parser: argparse.ArgumentParser) -> None:
    """--upscale/--weight/--ext, shared by `submit` and `run`."""
    parser.add_argument("--upscale", type=int, default=2, choices=(1, 2, 3, 4), help="background upscale factor")
    parser.add_argument("--weight", type=float, help="blend of restored and input face, 0..1 (default: model's)")
    parser.add_argument("--ext", default="auto", choices=("auto", "png", "jpg"), help="output format")


def restore_options(args: argparse.Namespace) -> dict:
    from scheduler.submit import job_options

    if args.weight is not None and not 0.0 <= args.weight <= 1.0:
        raise ValueError("--weight must be between 0 and 1")
    return job_options(upscale=args.upscale, weight=args.weight, ext=args.ext)


def cli_errors(fn: Handler) -> Handler:
    """Known failures print one clear line on stderr (exit 2 for usage/setup, 1 for outages)."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        from db import DatabaseNotMigrated
        from wgfpgan.config import mask_url
        from wgfpgan.storage import StorageError, TransientStorageError

        try:
            return fn(args)
        except (DatabaseNotMigrated, ValueError, StorageError) as exc:
            print(f"wgfpgan {args.command}: {mask_url(str(exc))}", file=sys.stderr)
            return 2
        except TransientStorageError as exc:
            print(f"wgfpgan {args.command}: storage unavailable: {mask_url(str(exc))}", file=sys.stderr)
            return 1
        except Exception as exc:
            if not _is_outage(exc):
                raise
            if _is_database_error(exc):
                print(f"wgfpgan {args.command}: {_database_down_message(exc)}", file=sys.stderr)
                return 1
            print(
                f"wgfpgan {args.command}: service unavailable: {mask_url(str(exc))} "
                "(nothing is lost: run the same command again when it is back)",
                file=sys.stderr,
            )
            return 1

    return wrapper


def _is_outage(exc: Exception) -> bool:
    from kombu.exceptions import OperationalError as BrokerError
    from sqlalchemy.exc import OperationalError as DatabaseError

    return isinstance(exc, BrokerError | DatabaseError | ConnectionError)


def _is_database_error(exc: Exception) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


def _database_down_message(exc: Exception) -> str:
    from wgfpgan.config import Settings, mask_url

    text = str(getattr(exc, "orig", None) or exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return (
        f"the status database {mask_url(Settings.from_env().database_url)} is unreachable ({mask_url(reason)}); "
        "nothing is lost: run the same command again when it is back"
    )


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import dataclasses

    from wgfpgan.config import Settings

    settings = Settings.from_env()
    if getattr(args, "chunk_size", None):
        settings = dataclasses.replace(settings, chunk_size=args.chunk_size)
    return settings


def _database(args: argparse.Namespace, *, interactive: bool = True):  # type: ignore[no-untyped-def]
    """The status DB. Interactive commands give up on an outage after a few seconds (a person is
    waiting); `reconcile` keeps the long retry of workers and services."""
    from db import DEFAULT_RETRY_SECONDS, INTERACTIVE_RETRY_SECONDS, Database

    retry_seconds = INTERACTIVE_RETRY_SECONDS if interactive else DEFAULT_RETRY_SECONDS
    return Database.from_settings(_settings(args), retry_seconds=retry_seconds)


def _job_or_exit(database, job_id: int):  # type: ignore[no-untyped-def]
    from db import queries

    job = database.run(queries.get_job, job_id)
    if job is None:
        raise ValueError(f"no job {job_id} (see `wgfpgan jobs`)")
    return job


@cli_errors
def _submit(args: argparse.Namespace) -> int:
    from db import INTERACTIVE_RETRY_SECONDS
    from scheduler.submit import submit
    from scheduler.views import print_json

    def announce(job_id: int, created: bool) -> None:
        if not args.json:  # the id at once; the listing of a big archive can take minutes
            verb = "created" if created else "reopened"
            print(f"job {job_id} {verb}; listing {args.source} ...", file=sys.stderr, flush=True)

    result = submit(
        _settings(args),
        args.source,
        args.out,
        name=args.name,
        manifest=args.manifest,
        all_files=args.all_files,
        options=restore_options(args),
        on_job=announce,
        db_retry_seconds=INTERACTIVE_RETRY_SECONDS,
    )
    if args.json:
        print_json({"id": result.job_id, **{k: v for k, v in vars(result).items() if k != "job_id"}})
    else:
        verb = "created" if result.created else "resumed"
        print(
            f"job {result.job_id} {verb}: {result.listed} listed, {result.new_items} new, "
            f"{result.dispatched} sent to workers  (follow it: wgfpgan watch {result.job_id})"
        )
    return 0


@cli_errors
def _jobs(args: argparse.Namespace) -> int:
    from db import queries
    from scheduler.views import console, job_dict, jobs_table, print_json

    database = _database(args)
    rows = database.run(queries.list_jobs, args.limit)
    if args.json:
        print_json([job_dict(job, counts) for job, counts in rows])
    else:
        jobs_table(console(), rows)
    return 0


@cli_errors
def _status(args: argparse.Namespace) -> int:
    from db import queries
    from scheduler.views import console, failed_table, item_dict, job_dict, print_json, status_view

    database = _database(args)
    job = _job_or_exit(database, args.job)
    counts = database.run(queries.counts, job.id)
    failed = database.run(queries.list_failed, job.id, limit=args.limit) if args.failed else []
    if args.json:
        payload = job_dict(job, counts)
        if args.failed:
            payload["failed"] = [item_dict(item) for item in failed]
        print_json(payload)
        return 0
    out = console()
    status_view(out, job, counts)
    if args.failed:
        failed_table(out, failed)
    return 0


@cli_errors
def _watch(args: argparse.Namespace) -> int:
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from db import queries
    from scheduler.views import console

    database = _database(args)
    job = _job_or_exit(database, args.job)
    columns = (
        TextColumn(f"job {job.id} {job.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console()) as progress:
        task = progress.add_task("items", total=None, detail="")
        while True:
            job = database.run(queries.get_job, job.id)
            counts = database.run(queries.counts, job.id)
            total = sum(counts.values())
            finished = total - counts["queued"] - counts["running"]
            detail = " ".join(f"{state} {n}" for state, n in counts.items() if n)
            progress.update(task, total=total, completed=finished, detail=detail)
            if queries.is_done(job, counts):
                break
            time.sleep(args.interval)
    return 0


@cli_errors
def _cancel(args: argparse.Namespace) -> int:
    from db import queries

    database = _database(args)
    job = _job_or_exit(database, args.job)
    n = database.run(queries.cancel_job, job.id)
    print(f"job {job.id} cancelled: {n} queued items will not run (running ones finish)")
    return 0


@cli_errors
def _retry(args: argparse.Namespace) -> int:
    from db import queries
    from scheduler.submit import send_queued

    settings = _settings(args)
    database = _database(args)
    job = _job_or_exit(database, args.job)
    n = database.run(queries.retry_job, job.id, failed_only=args.failed)
    sent = send_queued(database, settings, job)
    if job.options.get("embedded"):
        command = f"wgfpgan run {job.source} --out {job.dest}"
        print(f"job {job.id}: {n} items queued again; process them with `{command}`")
        return 0
    print(f"job {job.id}: {n} items queued again, {sent} sent to workers")
    return 0


@cli_errors
def _reconcile(args: argparse.Namespace) -> int:
    import logging

    from scheduler.reconcile import reconcile_loop, reconcile_once

    settings = _settings(args)
    if args.loop:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        reconcile_loop(settings, interval=args.loop, stale_after=args.stale_after)
        return 0
    database = _database(args, interactive=False)
    report = reconcile_once(database, settings, stale_after=args.stale_after)
    print(
        f"reconcile: {report.expired_leases} expired leases requeued, {report.lost_messages} lost messages, "
        f"{report.dispatched} items sent to workers"
    )
    return 0
