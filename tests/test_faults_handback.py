"""An item a worker hands back (storage or database down for longer than its retries) must be sent to a
worker again by the very next reconcile pass — not sit `queued` with no broker message until the
stale-message check (`--stale-after`, 300 s by default) notices it. Real SQLite status DB, real Redis
(a private queue)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from db import Database
from db import queries as q
from db.migrate import upgrade
from scheduler.reconcile import reconcile_once
from scheduler.submit import submit
from wgfpgan.broker import held_item_ids
from wgfpgan.config import Settings

pytestmark = pytest.mark.services


def test_a_handed_back_item_is_resent_by_the_next_reconcile_pass(
    sqlite_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = "wgf-handback-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("WGFPGAN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("WGFPGAN_BROKER_URL", redis_url)
    monkeypatch.setenv("WGFPGAN_QUEUE", queue)
    upgrade(sqlite_url)
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (source / name).write_bytes(b"the scheduler never decodes")
    settings = Settings.from_env()
    result = submit(settings, str(source), str(tmp_path / "out"), options={})
    database = Database(sqlite_url)
    broker = redis.Redis.from_url(redis_url)
    try:
        first, second = database.run(q.queued_ids, result.job_id)
        # A worker takes the chunk, hands `first` back after its storage retries ran out, finishes `second`,
        # and acks the message: no broker message holds `first` any more.
        assert broker.delete(queue) == 1
        claim = database.run(q.claim_item, first, worker_id="w:1", lease_seconds=900)
        assert database.run(q.release_item, claim, reason="storage unavailable: s3://x/y: EndpointConnectionError")
        done = database.run(q.claim_item, second, worker_id="w:1", lease_seconds=900)
        assert database.run(q.record_failure, done, code="corrupt", message="damaged")
        assert held_item_ids(settings) == set()

        report = reconcile_once(database, settings)  # the default stale_after (300 s)
        assert report.dispatched == 1, report
        assert held_item_ids(settings) == {first}
        assert database.run(q.counts, result.job_id)["queued"] == 1
    finally:
        broker.delete(queue)
        database.dispose()
