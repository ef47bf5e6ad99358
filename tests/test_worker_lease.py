"""worker/process.py lease heartbeat: a photo slower than WGFPGAN_LEASE_SECONDS keeps its lease while a
live worker restores it (reconcile running meanwhile requeues nothing), and a worker whose claim was
taken away drops its result — against real SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from db import Database, ItemState
from db import queries as q
from db.migrate import downgrade, upgrade
from scheduler.submit import iter_new_items, job_options, open_job, register_items
from wgfpgan.config import Settings
from worker.process import ItemProcessor, worker_id

LEASE_SECONDS = 2.0
RESTORE_SECONDS = 5.0  # 2.5 leases: without renewal the lease expires mid-restore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest) -> Database:
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("postgres_url")
        downgrade(url)  # the module shares one PostgreSQL database: start every test from empty
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def restorer(tiny_model_path: Path):  # type: ignore[no-untyped-def]
    from model import Restorer

    return Restorer(str(tiny_model_path))


class SlowRestorer:
    """The real restorer, plus a delay and a hook run while the photo is 'being restored'."""

    def __init__(self, restorer: Any, seconds: float, during: Any = None) -> None:
        self._restorer = restorer
        self.model_version = restorer.model_version
        self.seconds = seconds
        self.during = during

    def restore_bytes(self, data: bytes, **kwargs: Any) -> Any:
        if self.during is not None:
            time.sleep(LEASE_SECONDS / 2)
            self.during()
        time.sleep(self.seconds)
        return self._restorer.restore_bytes(data, **kwargs)


def one_item_job(database: Database, tmp_path: Path) -> tuple[int, int]:
    source = tmp_path / "in"
    source.mkdir()
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    (source / "a.png").write_bytes(buffer.getvalue())
    job, _ = open_job(database, str(source), str(tmp_path / "out"), name="t", options=job_options())
    register_items(database, job.id, iter_new_items(job.source))
    database.run(q.finish_submission, job.id)
    [item_id] = database.run(q.queued_ids, job.id)
    return job.id, item_id


def settings_with_short_lease() -> Settings:
    return dataclasses.replace(Settings.from_env(), lease_seconds=LEASE_SECONDS, overlap_store=False)


def test_a_photo_slower_than_the_lease_keeps_it(database: Database, restorer, tmp_path: Path) -> None:
    job_id, item_id = one_item_job(database, tmp_path)
    processor = ItemProcessor(database, settings_with_short_lease(), restorer=SlowRestorer(restorer, RESTORE_SECONDS))
    requeued: list[int] = []
    done = threading.Event()

    def reconcile_loop() -> None:  # what `wgfpgan reconcile --loop` does, only much more often
        while not done.wait(0.25):
            requeued.extend(database.run(q.requeue_expired_leases, max_attempts=1))

    reconciler = threading.Thread(target=reconcile_loop)
    reconciler.start()
    try:
        outcome = processor.process_item(item_id)
    finally:
        done.set()
        reconciler.join()

    assert outcome.status == "succeeded"
    assert requeued == []
    [item] = database.run(q.list_items, job_id)
    assert item.state == ItemState.SUCCEEDED and item.attempts == 1 and item.error_code is None
    assert item.lease_until is None  # cleared when recorded
    assert (tmp_path / "out" / "a.png").exists()


def test_a_lost_claim_drops_the_result(database: Database, restorer, tmp_path: Path) -> None:
    job_id, item_id = one_item_job(database, tmp_path)

    def take_the_claim_away() -> None:  # e.g. the embedded runner believed this worker dead
        assert database.run(q.requeue_workers, job_id, [worker_id()]) == [item_id]

    slow = SlowRestorer(restorer, LEASE_SECONDS, during=take_the_claim_away)  # > one renewal interval
    outcome = ItemProcessor(database, settings_with_short_lease(), restorer=slow).process_item(item_id)

    assert outcome.status == "lost"
    assert not (tmp_path / "out").exists()  # nothing written for a claim that is no longer ours
    [item] = database.run(q.list_items, job_id)
    assert item.state == ItemState.QUEUED and item.attempts == 1


def test_renew_lease_is_compare_and_set(database: Database, tmp_path: Path) -> None:
    job_id, item_id = one_item_job(database, tmp_path)
    claim = database.run(q.claim_item, item_id, worker_id="w", lease_seconds=1)
    assert database.run(q.renew_lease, claim, lease_seconds=600)
    [item] = database.run(q.list_items, job_id)
    assert (item.lease_until - item.started_at).total_seconds() > 500
    stale = dataclasses.replace(claim, attempt=claim.attempt + 1)
    assert not database.run(q.renew_lease, stale, lease_seconds=600)
    database.run(q.release_item, claim, reason="test")
    assert not database.run(q.renew_lease, claim, lease_seconds=600)
