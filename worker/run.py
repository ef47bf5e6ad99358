"""The embedded default, `wgfpgan run SOURCE --out DEST`: the whole job on this machine, no broker and
no database server. Same tables and queries as the distributed path (the status DB defaults to a SQLite
file), same per-item code (worker/process.py), items handed to local processes in chunks.

Resumable: re-running the same command reopens the job, requeues items whose worker process is gone
(this host, pid not alive) or whose lease expired, and continues with whatever is still queued.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from db import Database, queries
from scheduler.submit import iter_new_items, open_job, register_items
from wgfpgan.config import Settings

ProgressFn = Callable[[dict[str, int]], None]


@dataclass
class RunResult:
    job_id: int
    counts: dict[str, int]
    requeued: int


def run_job(
    settings: Settings,
    source: str,
    dest: str,
    *,
    options: dict,
    workers: int = 1,
    name: str | None = None,
    manifest: str | None = None,
    all_files: bool = False,
    on_job: Callable[[int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> RunResult:
    database = Database.from_settings(settings)
    try:
        job, created = open_job(database, source, dest, name=name, options={**options, "embedded": True})
        if on_job:
            on_job(job.id)
        if not created:
            database.run(queries.reopen_cancelled, job.id)
        register_items(database, job.id, iter_new_items(job.source, manifest=manifest, all_files=all_files))
        database.run(queries.finish_submission, job.id)
        requeued = _requeue_abandoned(database, job.id)
        report = (lambda: on_progress(database.run(queries.counts, job.id))) if on_progress else None
        _process_queued(database, settings, job.id, workers, report)
        return RunResult(job.id, database.run(queries.counts, job.id), requeued)
    finally:
        database.dispose()


def _requeue_abandoned(database: Database, job_id: int) -> int:
    """Items left `running` by a previous run that was interrupted or crashed."""
    dead = [w for w in database.run(queries.running_workers, job_id) if not _alive_here(w)]
    requeued = database.run(queries.requeue_workers, job_id, dead)
    return len(requeued) + len(database.run(queries.requeue_expired_leases))


def _alive_here(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's worker: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chunks(database: Database, job_id: int, size: int) -> Iterator[list[int]]:
    cursor = 0
    while ids := database.run(queries.queued_ids, job_id, after_id=cursor, limit=size * 64):
        cursor = ids[-1]
        for start in range(0, len(ids), size):
            yield ids[start : start + size]


def _process_queued(
    database: Database, settings: Settings, job_id: int, workers: int, report: Callable[[], None] | None
) -> None:
    chunk_size = max(1, min(settings.chunk_size, 4))  # small chunks: even progress across processes
    # Items handed back (storage outage) are queued again: another pass picks them up, while passes
    # still make progress.
    for _ in range(3):
        if workers <= 1:
            from worker.process import ItemProcessor

            processor = ItemProcessor(database, settings)
            for chunk in _chunks(database, job_id, chunk_size):
                processor.process_chunk(chunk)
                if report:
                    report()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_pool_process, initargs=(settings,)) as pool:
                for _done in pool.imap_unordered(_pool_process_chunk, _chunks(database, job_id, chunk_size)):
                    if report:
                        report()
        if not database.run(queries.queued_ids, job_id, limit=1):
            return


_pool_processor: Any = None


def _init_pool_process(settings: Settings) -> None:
    global _pool_processor
    from worker.process import ItemProcessor

    _pool_processor = ItemProcessor(Database(settings.database_url), settings)
    _pool_processor.restorer  # load the model before the first chunk arrives  # noqa: B018


def _pool_process_chunk(item_ids: list[int]) -> int:
    return len(_pool_processor.process_chunk(item_ids))


def embedded_settings(settings: Settings, *, device: str | None, batch: int | None) -> Settings:
    changes: dict[str, Any] = {}
    if device:
        changes["device"] = device
    if batch:
        changes["face_batch"] = batch
    return replace(settings, **changes)
