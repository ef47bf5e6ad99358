"""The embedded default, `wgfpgan run SOURCE --out DEST`: the whole job on this machine, no broker and
no database server. Same tables and queries as the distributed path (the status DB defaults to a SQLite
file), same per-item code (worker/process.py), items handed to local processes in chunks.

Resumable: re-running the same command reopens the job, requeues items whose worker process is gone
(this host, pid not alive) or whose lease expired, and continues with whatever is still queued.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

from db import Database, queries
from scheduler.submit import iter_new_items, open_job, register_items
from wgfpgan.config import Settings

log = logging.getLogger(__name__)

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
        requeued = _requeue_abandoned(database, job.id, settings.max_attempts)
        report = (lambda: on_progress(database.run(queries.counts, job.id))) if on_progress else None
        _process_queued(database, settings, job.id, workers, report)
        return RunResult(job.id, database.run(queries.counts, job.id), requeued)
    finally:
        database.dispose()


def _requeue_abandoned(database: Database, job_id: int, max_attempts: int) -> int:
    """Items left `running` by processes that are gone (an interrupted or crashed run, a killed pool
    process): requeued, or failed as `worker_lost` after `max_attempts`. Returns how many moved."""
    before = database.run(queries.counts, job_id)["running"]
    dead = [w for w in database.run(queries.running_workers, job_id) if not _alive_here(w)]
    database.run(queries.requeue_workers, job_id, dead, max_attempts=max_attempts)
    database.run(queries.requeue_expired_leases, max_attempts=max_attempts)
    return before - database.run(queries.counts, job_id)["running"]


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
            _process_in_pool(database, settings, job_id, workers, chunk_size, report)
        if not database.run(queries.queued_ids, job_id, limit=1):
            return


def _process_in_pool(
    database: Database,
    settings: Settings,
    job_id: int,
    workers: int,
    chunk_size: int,
    report: Callable[[], None] | None,
) -> None:
    """Chunks to `workers` spawned processes. If one dies (killed, out of memory, a crashing decoder) the
    pool is rebuilt, the dead processes' items are requeued (or failed after `max_attempts`) and work
    continues."""
    context = multiprocessing.get_context("spawn")
    while True:
        completed = [0]  # chunks this pool finished: proof that its processes can work at all
        try:
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_pool_process, initargs=(settings,)
            ) as pool:
                pending: set[Future] = set()
                for chunk in _chunks(database, job_id, chunk_size):
                    if len(pending) >= 2 * workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        _collect(done, report, completed)
                    pending.add(pool.submit(_pool_process_chunk, chunk))
                _collect(wait(pending).done, report, completed)
            return
        except BrokenProcessPool as exc:
            recovered = _requeue_abandoned(database, job_id, settings.max_attempts)
            if not recovered and not completed[0]:  # the processes cannot even start (e.g. the model)
                raise RuntimeError(f"worker processes failed before finishing any photo: {exc}") from exc
            log.warning("a worker process died; %d items taken back, restarting the pool", recovered)


def _collect(done: set[Future], report: Callable[[], None] | None, completed: list[int]) -> None:
    for future in done:
        future.result()
        completed[0] += 1
        if report:
            report()


_pool_processor: Any = None


def _init_pool_process(settings: Settings) -> None:
    global _pool_processor
    from worker.process import ItemProcessor

    _pool_processor = ItemProcessor(Database(settings.database_url, durable_commits=False), settings)
    _pool_processor.warm_up()  # load the model before the first chunk arrives


def _pool_process_chunk(item_ids: list[int]) -> int:
    return len(_pool_processor.process_chunk(item_ids))


def embedded_settings(settings: Settings, *, device: str | None, batch: int | None) -> Settings:
    changes: dict[str, Any] = {}
    if device:
        changes["device"] = device
    if batch:
        changes["face_batch"] = batch
    return replace(settings, **changes)
