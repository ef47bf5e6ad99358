"""The Celery app and its one task, `wgfpgan.restore_chunk(item_ids)`.

At-least-once delivery (settings in wgfpgan/broker.py): messages are acknowledged after the chunk's items
are recorded (acks_late), requeued if the worker process dies (reject_on_worker_lost), one message
prefetched per process, and a visibility timeout longer than any chunk. Duplicate deliveries are harmless
because every item is claimed by compare-and-set.

Shutdown: on a warm shutdown (SIGTERM) the task stops between items and rejects its message with
requeue, so the items it did not start go straight back to the queue. With the prefork pool the main
process forwards the request to its children (they would otherwise finish the whole chunk).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from celery import signals
from celery.exceptions import Reject

from wgfpgan.broker import RESTORE_CHUNK_TASK, make_celery
from wgfpgan.config import Settings

log = logging.getLogger(__name__)

app = make_celery(Settings.from_env())

_processor: Any = None
_stop_requested = False
_in_task = False
_worker_controller: Any = None


def processor() -> Any:
    """This process's ItemProcessor (DB engine + lazily loaded Restorer), built on first use."""
    global _processor
    if _processor is None:
        from db import Database
        from worker.process import ItemProcessor

        settings = Settings.from_env()
        _processor = ItemProcessor(Database.from_settings(settings, durable_commits=False), settings)
    return _processor


def should_stop() -> bool:
    from celery.worker import state

    return bool(_stop_requested or state.should_stop is not None or state.should_terminate is not None)


@app.task(name=RESTORE_CHUNK_TASK, bind=True, max_retries=20)
def restore_chunk(self: Any, item_ids: list[int]) -> dict[str, int]:
    from sqlalchemy.exc import OperationalError

    global _in_task
    _in_task = True
    _install_child_stop_handler()
    try:
        outcomes = processor().process_chunk(item_ids, should_stop)
    except OperationalError as exc:  # the DB stayed down longer than the DB layer's own retries
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
    finally:
        _in_task = False
    if len(outcomes) < len(item_ids):
        log.info("shutdown requested: handing back %d items", len(item_ids) - len(outcomes))
        raise Reject("worker shutting down", requeue=True)
    summary: dict[str, int] = {}
    for outcome in outcomes:
        summary[outcome.status] = summary.get(outcome.status, 0) + 1
    return summary


@signals.worker_init.connect
def _remember_worker(sender: Any = None, **_: Any) -> None:
    global _worker_controller
    _worker_controller = sender


@signals.worker_process_init.connect
def _preload_in_child(**_: Any) -> None:
    """Prefork: each child loads the model (and opens the DB) before it takes a message."""
    processor().warm_up()


@signals.worker_ready.connect
def _preload_in_solo(**_: Any) -> None:
    """Solo pool: the main process is the one that restores; load the model before the first message."""
    from billiard.process import current_process

    pool = getattr(_worker_controller, "pool", None)
    if current_process()._name == "MainProcess" and type(pool).__module__.endswith(".solo"):
        processor().warm_up()


def _install_child_stop_handler() -> None:
    """In a prefork child, a SIGTERM only asks the running chunk to stop between items (installed at
    task start: billiard resets signal handlers after worker_process_init)."""
    from billiard.process import current_process

    if current_process()._name == "MainProcess":  # solo pool: Celery's own warm-shutdown flag applies
        return
    if not _stop_requested and signal.getsignal(signal.SIGTERM) is not _request_stop:
        signal.signal(signal.SIGTERM, _request_stop)


def _request_stop(signum: int, frame: Any) -> None:
    global _stop_requested
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates
    if not _in_task:
        os.kill(os.getpid(), signal.SIGTERM)  # idle: die the default way
    _stop_requested = True


@signals.worker_shutting_down.connect
def _forward_shutdown(how: str = "", **_: Any) -> None:
    pool = getattr(getattr(_worker_controller, "pool", None), "_pool", None)
    for child in getattr(pool, "_pool", None) or []:
        with contextlib.suppress(ProcessLookupError, AttributeError, TypeError):
            os.kill(child.pid, signal.SIGTERM)
