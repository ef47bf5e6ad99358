"""Turning a source listing (or a manifest) into a job's items, and sending queued items to the broker.

`register_items` is shared with the embedded runner (`wgfpgan run`), which processes the items itself
instead of dispatching them. Keys that could escape the destination become items born `failed` with
code `unsafe_key`, so every listed object's fate stays visible and nothing is ever written outside DEST.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from db import DEFAULT_RETRY_SECONDS, Database, queries
from db.models import Job
from wgfpgan import storage
from wgfpgan.config import Settings

INSERT_BATCH = 2000


@dataclass
class SubmitResult:
    job_id: int
    created: bool
    listed: int = 0
    new_items: int = 0
    dispatched: int = 0
    reopened: int = 0


def job_options(upscale: int = 2, weight: float | None = None, ext: str = "auto", **extra: Any) -> dict:
    return {"upscale": upscale, "weight": weight, "ext": ext, **extra}


def open_job(database: Database, source: str, dest: str, *, name: str | None, options: dict) -> tuple[Job, bool]:
    source, dest = storage.normalize_location(source), storage.normalize_location(dest)
    if _inside(dest, source) or _inside(source, dest):
        raise ValueError(
            f"the destination {dest} and the source {source} must not contain each other "
            "(outputs must never overwrite originals or be listed as new inputs)"
        )
    storage.check_destination(dest)
    existing = database.run(queries.find_job, source=source, dest=dest)
    if existing is not None and _restore_options(existing.options) != _restore_options(options):
        raise ValueError(
            f"job {existing.id} for this source and destination was created with "
            f"{_restore_options(existing.options)}; re-submit with the same options, or choose another "
            "--out for different ones"
        )
    return database.run(
        queries.get_or_create_job,
        name=name or _default_name(source),
        source=source,
        dest=dest,
        options=options,
    )


def _restore_options(options: dict) -> dict:
    return {key: value for key, value in options.items() if key != "embedded"}


def _inside(path: str, folder: str) -> bool:
    folder = folder if folder.endswith("/") else folder + "/"
    path = path if path.endswith("/") else path + "/"
    return path.startswith(folder)


def _default_name(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def iter_new_items(source: str, *, manifest: str | None = None, all_files: bool = False) -> Iterator[queries.NewItem]:
    """NewItems for every image under `source` (or every manifest entry), unsafe keys born failed."""
    entries: Iterable[tuple[str, str]]
    if manifest:
        entries = _manifest_entries(source, manifest)
    else:
        entries = ((obj.rel_key, obj.uri) for obj in storage.iter_objects(source, images_only=not all_files))
    for rel_key, uri in entries:
        try:
            storage.validate_rel_key(rel_key)
        except storage.UnsafeKey as exc:
            yield queries.NewItem(_printable(rel_key), _printable(uri), exc.code, str(exc))
        else:
            yield queries.NewItem(rel_key, uri)


def _manifest_entries(source: str, manifest: str) -> Iterator[tuple[str, str]]:
    """Lines of the manifest: keys relative to SOURCE, or full URIs/paths under SOURCE. `#` comments."""
    prefix = source if storage.is_s3(source) else source.rstrip("/") + "/"
    handle: TextIO = sys.stdin if manifest == "-" else Path(manifest).open(encoding="utf-8")  # noqa: SIM115
    try:
        for line in handle:
            entry = line.rstrip("\r\n")
            if not entry.strip() or entry.lstrip().startswith("#"):
                continue
            rel_key = entry[len(prefix) :] if entry.startswith(prefix) else entry
            yield rel_key, prefix + rel_key
    finally:
        if handle is not sys.stdin:
            handle.close()


def _printable(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def register_items(
    database: Database,
    job_id: int,
    items: Iterable[queries.NewItem],
    *,
    on_batch: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """Insert items in batches (existing keys skipped); call `on_batch` after each. Returns (listed, new)."""
    listed = new = 0
    batch: list[queries.NewItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= INSERT_BATCH:
            new += database.run(queries.add_items, job_id, batch)
            listed += len(batch)
            batch = []
            if on_batch:
                on_batch()
    if batch:
        new += database.run(queries.add_items, job_id, batch)
        listed += len(batch)
    if on_batch:
        on_batch()
    return listed, new


class Dispatcher:
    """Sends a job's undispatched queued items to the broker in chunks, then marks them enqueued.

    Remembers how far it got per job: during a submission new items only ever get larger ids, so each
    call reads only what was inserted since the previous one (no rescans at a million items)."""

    def __init__(self, database: Database, settings: Settings, sender: Any) -> None:
        self.database = database
        self.chunk_size = max(1, settings.chunk_size)
        self.sender = sender
        self.sent = 0
        self._cursor: dict[int, int] = {}

    def dispatch(self, job_id: int) -> int:
        from wgfpgan.broker import chunked

        before = self.sent
        cursor = self._cursor.get(job_id, 0)
        while ids := self.database.run(queries.undispatched_ids, job_id, after_id=cursor, limit=5000):
            for chunk in chunked(ids, self.chunk_size):
                self.sender.send(chunk)
            self.database.run(queries.mark_enqueued, ids)
            self.sent += len(ids)
            cursor = ids[-1]
        self._cursor[job_id] = cursor
        return self.sent - before


def send_queued(database: Database, settings: Settings, job: Job) -> int:
    """Send a job's queued, not yet dispatched items to the workers (after `queries.retry_job`, say) and return
    how many went. An embedded `wgfpgan run` job has no workers: its items wait for `wgfpgan run` (0).
    Broker errors propagate; the items stay queued and `wgfpgan reconcile` sends them later."""
    from wgfpgan.broker import ChunkSender

    if job.options.get("embedded"):
        return 0
    with ChunkSender(settings) as sender:
        return Dispatcher(database, settings, sender).dispatch(job.id)


def submit(
    settings: Settings,
    source: str,
    dest: str,
    *,
    name: str | None = None,
    manifest: str | None = None,
    all_files: bool = False,
    options: dict,
    on_job: Callable[[int, bool], None] | None = None,
    db_retry_seconds: float = DEFAULT_RETRY_SECONDS,
) -> SubmitResult:
    """Create or reopen the job, stream the listing in, and dispatch work while listing continues.
    `on_job(job_id, created)` is called as soon as the job exists (before the listing).
    `db_retry_seconds` bounds how long a database outage is retried (the CLI passes a short budget)."""
    from wgfpgan.broker import ChunkSender

    database = Database.from_settings(settings, retry_seconds=db_retry_seconds)
    try:
        job, created = open_job(database, source, dest, name=name, options=options)
        result = SubmitResult(job.id, created)
        if on_job:
            on_job(job.id, created)
        if not created:
            result.reopened = database.run(queries.reopen_cancelled, job.id)
        with ChunkSender(settings) as sender:
            dispatcher = Dispatcher(database, settings, sender)
            result.listed, result.new_items = register_items(
                database,
                job.id,
                iter_new_items(job.source, manifest=manifest, all_files=all_files),
                on_batch=lambda: dispatcher.dispatch(job.id),
            )
            database.run(queries.finish_submission, job.id)
            result.dispatched = dispatcher.sent
        return result
    finally:
        database.dispose()
