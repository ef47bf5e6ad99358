"""The reconciler: makes the broker agree with the status DB again.

One pass:
1. items whose lease expired (their worker vanished) go running -> queued;
2. items queued and sent more than `stale_after` seconds ago that no broker message holds any more
   (Redis restarted empty, a message was dropped), or that only a message delivered more than
   `stale_after` seconds ago holds (its worker died without acking: kombu would wait for the
   visibility timeout), are marked undispatched;
3. every job's undispatched queued items are sent again.
A duplicate message is harmless (a claim is compare-and-set), so the reconciler errs on re-sending.
For brokers that cannot be inspected (not Redis), step 2 trusts age alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from db import Database, queries
from db.models import utcnow
from scheduler.submit import Dispatcher
from wgfpgan.config import Settings, mask_url

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    expired_leases: int = 0
    lost_messages: int = 0
    dispatched: int = 0


def reconcile_once(database: Database, settings: Settings, *, stale_after: float = 300.0) -> ReconcileReport:
    from wgfpgan.broker import ChunkSender, held_item_ids

    report = ReconcileReport()
    report.expired_leases = len(database.run(queries.requeue_expired_leases, max_attempts=settings.max_attempts))
    candidates = database.run(queries.stale_queued, enqueued_before=utcnow() - timedelta(seconds=stale_after))
    if candidates:
        held = held_item_ids(settings, delivered_within=stale_after)
        lost = [item_id for item_id, _job in candidates if held is None or item_id not in held]
        report.lost_messages = database.run(queries.forget_enqueued, lost)
    job_ids = database.run(queries.jobs_with_undispatched)
    if job_ids:
        with ChunkSender(settings) as sender:
            dispatcher = Dispatcher(database, settings, sender)
            for job_id in job_ids:
                dispatcher.dispatch(job_id)
            report.dispatched = dispatcher.sent
    return report


def reconcile_loop(settings: Settings, *, interval: float, stale_after: float, passes: int | None = None) -> None:
    """Run `reconcile_once` every `interval` seconds (forever, or `passes` times); survive outages."""
    database = Database.from_settings(settings)
    done = 0
    try:
        while passes is None or done < passes:
            started = time.monotonic()
            try:
                report = reconcile_once(database, settings, stale_after=stale_after)
                if report.expired_leases or report.lost_messages or report.dispatched:
                    log.info("reconcile: %s", report)
            except Exception as exc:  # a broker/DB outage must not kill the loop
                log.warning("reconcile pass failed: %s", mask_url(str(exc)))
            done += 1
            if passes is None or done < passes:
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        database.dispose()
