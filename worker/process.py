"""Processing items: the single implementation shared by the Celery task and the embedded runner.

For each item id: claim it (queued -> running with a lease), read the source, restore it with the
`Restorer` (loaded once per process), write the output atomically at DEST/relative-key (extension per
the result), and record `succeeded` (faces, timings, input sha256, model version) or `failed` (a stable
error code + a readable message). One item's failure never stops the others.

While an item is being processed a heartbeat thread renews its lease every third of
`WGFPGAN_LEASE_SECONDS`, so a photo slower than the lease is never requeued under a live worker; only a
worker that died (or lost the database for longer than its lease) lets the lease run out. A renewal
that finds the row no longer ours is logged and the item's result is then neither written nor recorded.

Transient trouble (storage unreachable, an outage longer than the DB layer's own retries) is retried
with backoff and, if it persists, the item is handed back (running -> queued) rather than failed: an
archive item must never be marked failed because a server blinked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from db import Database, queries
from db.queries import ClaimedItem
from wgfpgan import storage
from wgfpgan.config import Settings, mask_url

log = logging.getLogger(__name__)

_restorer: Any = None
_restorer_lock = threading.Lock()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def get_restorer(settings: Settings) -> Any:
    """The process-wide Restorer, loaded on first use (after a fork, never before)."""
    global _restorer
    with _restorer_lock:
        if _restorer is None:
            from model import Restorer

            _restorer = Restorer(settings.model_path, device=settings.device, batch_size=settings.face_batch)
            log.info("model %s loaded on %s", _restorer.model_version, settings.device)
        return _restorer


@dataclass(frozen=True)
class Outcome:
    item_id: int
    status: str  # succeeded | failed | skipped (not queued) | released (handed back) | lost (claim expired)
    code: str | None = None
    message: str | None = None


class LeaseKeeper:
    """Renews one claim's lease every `lease_seconds / 3` in a daemon thread until `stop()`.

    `lost` becomes True once a renewal finds the row no longer ours (reconcile requeued it, another
    worker re-claimed it); the caller must then drop the result. A database error during a renewal is
    logged and retried at the next tick: the lease only runs out if the trouble outlasts it."""

    def __init__(self, database: Database, claim: ClaimedItem, lease_seconds: float) -> None:
        self.database = database
        self.claim = claim
        self.lease_seconds = lease_seconds
        self.lost = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name=f"wgfpgan-lease-{claim.id}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)  # a renewal stuck on a dead DB must not hold up the chunk

    def _renew_until_stopped(self) -> None:
        interval = max(self.lease_seconds / 3, 0.1)  # a zero lease must not turn into a busy loop
        while not self._stopped.wait(interval):
            try:
                renewed = self.database.run(queries.renew_lease, self.claim, lease_seconds=self.lease_seconds)
            except Exception as exc:  # keep beating: the lease still has 2/3 of its time left
                log.warning("item %s: lease renewal failed (%s); retrying", self.claim.id, mask_url(str(exc))[:200])
                continue
            if not renewed and not self._stopped.is_set():
                self.lost = True
                log.warning(
                    "item %s: lease lost (attempt %s requeued or re-claimed elsewhere); its result is dropped",
                    self.claim.id,
                    self.claim.attempt,
                )
                return


@dataclass(frozen=True)
class Restored:
    """An item restored in memory, waiting to be written and recorded."""

    claim: ClaimedItem
    started: float
    sha256: str
    output_uri: str
    data: bytes
    faces: int
    restore_seconds: float
    lease: LeaseKeeper


class Transient(Exception):
    """Storage or DB trouble that outlasted the retries: hand the item back."""


class ItemProcessor:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        restorer: Any = None,
        transient_retry_seconds: float = 60.0,
    ) -> None:
        self.database = database
        self.settings = settings
        self._restorer = restorer
        self.transient_retry_seconds = transient_retry_seconds
        self._jobs: dict[int, tuple[str, str, dict[str, Any]]] = {}

    @property
    def restorer(self) -> Any:
        if self._restorer is None:
            self._restorer = get_restorer(self.settings)
        return self._restorer

    def warm_up(self) -> None:
        """Load the model and create the S3 client before the first message (both cost seconds)."""
        self.restorer  # noqa: B018
        storage.s3_client()

    def process_chunk(self, item_ids: Sequence[int], should_stop: Callable[[], bool] = bool) -> list[Outcome]:
        """Process items in order; stop early (leaving the rest queued) when `should_stop()` says so.

        Storing one item (S3 write + recording the outcome, network waits) runs in a helper thread while
        the next item is restored, with at most one item in flight, so the I/O hides behind the model.
        The model is loaded before the first claim: a model that cannot load is the worker's problem
        (it raises), never a failure recorded against a photo."""
        self.restorer  # noqa: B018
        outcomes: list[Outcome] = []
        storing: Future[Outcome] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="wgfpgan-store") as store:
            for item_id in item_ids:
                if should_stop():
                    break
                step = self._claim_and_restore(item_id)
                if isinstance(step, Outcome):
                    outcomes.append(step)
                    continue
                if storing is not None:
                    outcomes.append(storing.result())
                    storing = None
                if self.settings.overlap_store:
                    storing = store.submit(self._store, step)
                else:
                    outcomes.append(self._store(step))
            if storing is not None:
                outcomes.append(storing.result())
        return outcomes

    def process_item(self, item_id: int) -> Outcome:
        step = self._claim_and_restore(item_id)
        return step if isinstance(step, Outcome) else self._store(step)

    def _claim_and_restore(self, item_id: int) -> Outcome | Restored:
        started = time.perf_counter()  # total_seconds covers claim -> recorded
        claim = self.database.run(
            queries.claim_item, item_id, worker_id=worker_id(), lease_seconds=self.settings.lease_seconds
        )
        if claim is None:
            return Outcome(item_id, "skipped")  # done, cancelled, or being processed elsewhere
        lease = LeaseKeeper(self.database, claim, self.settings.lease_seconds).start()
        try:
            step = self._restore(claim, started, lease)
        except Transient as exc:
            step = self._hand_back(claim, exc)
        except BaseException:
            lease.stop()
            raise
        if isinstance(step, Outcome):
            lease.stop()  # recorded (failed / handed back) or lost
        return step

    def _hand_back(self, claim: ClaimedItem, exc: Transient) -> Outcome:
        reason = mask_url(str(exc))
        log.warning("item %s handed back: %s", claim.id, reason)
        self.database.run(queries.release_item, claim, reason=reason)
        return Outcome(claim.id, "released", "transient", reason)

    def _restore(self, claim: ClaimedItem, started: float, lease: LeaseKeeper) -> Outcome | Restored:
        from model.imageio import ImageError

        source, dest, options = self._job(claim.job_id)
        try:  # re-derived and checked: a symlink inside a local SOURCE must not lead outside it
            source_uri = storage.safe_join(source, claim.rel_key)
        except storage.UnsafeKey as exc:
            return self._fail(claim, exc.code, str(exc), started)
        try:
            data = self._with_retries(storage.read_bytes, source_uri)
        except storage.StorageError as exc:
            return self._fail(claim, exc.code, str(exc), started)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            result = self.restorer.restore_bytes(
                data,
                name=claim.rel_key,
                out_ext=options.get("ext", "auto"),
                weight=options.get("weight"),
                upscale=options.get("upscale"),
            )
        except ImageError as exc:
            return self._fail(claim, exc.code, str(exc), started, sha256)
        except MemoryError:
            return self._fail(claim, "out_of_memory", "not enough memory for this photo", started, sha256)
        except Exception as exc:  # a model bug must not stop the chunk; keep the reason visible
            log.exception("item %s: unexpected error", claim.id)
            return self._fail(claim, "internal_error", f"{type(exc).__name__}: {exc}", started, sha256)
        try:
            output_uri = storage.safe_join(dest, storage.with_extension(claim.rel_key, result.ext))
        except storage.UnsafeKey as exc:
            return self._fail(claim, exc.code, str(exc), started, sha256)
        return Restored(claim, started, sha256, output_uri, result.data, result.faces, result.seconds, lease)

    def _store(self, restored: Restored) -> Outcome:
        """Write the output atomically, then record the success (in that order: a recorded success always
        has its output). Nothing is written or recorded once the lease was lost; the heartbeat stops
        when the outcome is recorded."""
        try:
            return self._write_and_record(restored)
        finally:
            restored.lease.stop()

    def _write_and_record(self, restored: Restored) -> Outcome:
        claim = restored.claim
        if restored.lease.lost:
            return Outcome(claim.id, "lost")
        try:
            self._with_retries(storage.write_bytes_atomic, restored.output_uri, restored.data)
        except Transient as exc:
            return self._hand_back(claim, exc)
        except storage.StorageError as exc:
            return self._fail(claim, "write_failed", str(exc), restored.started, restored.sha256)
        recorded = self.database.run(
            queries.record_success,
            claim,
            output_uri=restored.output_uri,
            faces=restored.faces,
            restore_seconds=restored.restore_seconds,
            total_seconds=time.perf_counter() - restored.started,
            input_sha256=restored.sha256,
            model_version=self.restorer.model_version,
        )
        return Outcome(claim.id, "succeeded" if recorded else "lost")

    def _fail(self, claim: ClaimedItem, code: str, message: str, started: float, sha256: str | None = None) -> Outcome:
        recorded = self.database.run(
            queries.record_failure,
            claim,
            code=code,
            message=message,
            total_seconds=time.perf_counter() - started,
            input_sha256=sha256,
        )
        return Outcome(claim.id, "failed" if recorded else "lost", code, message)

    def _job(self, job_id: int) -> tuple[str, str, dict[str, Any]]:
        """(source, dest, options) of a job, cached: they never change after creation."""
        if job_id not in self._jobs:
            job = self.database.run(queries.get_job, job_id)
            self._jobs[job_id] = (job.source, job.dest, dict(job.options or {}))
        return self._jobs[job_id]

    def _with_retries(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a storage function, retrying TransientStorageError with backoff; Transient at the end."""
        deadline = time.monotonic() + self.transient_retry_seconds
        delay = 0.5
        while True:
            try:
                return fn(*args)
            except storage.TransientStorageError as exc:
                if time.monotonic() + delay > deadline:
                    raise Transient(str(exc)) from exc
                log.warning("storage unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, 10.0)
