"""Workers dying and stopping, against the real services: S3 on SeaweedFS (bucket versioning counts every
PutObject), PostgreSQL, Redis, real `wgfpgan worker` Celery subprocesses, the tiny model.

- SIGKILL of a prefork pool child, then of the whole worker (process group): every item still ends
  `succeeded`, its attempts are counted, and no output is written more often than its item was attempted
  (an item attempted once is written exactly once).
- SIGTERM: the worker stops between items at once and hands the rest of its chunk back to the queue (no
  reconcile needed); a new worker finishes with every item attempted once.
- `cancel`: queued work stops at once, running items finish, counts add up, nothing cancelled is written.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest
from faults_services import (
    ReconcilerProcess,
    WorkerProcess,
    enable_write_counting,
    face_photos,
    job_counts,
    running_by_pid,
    upload,
    wait_for,
    wait_job_done,
    write_counts,
)
from PIL import Image

from db import Database, ItemState
from db import queries as q
from db.migrate import upgrade
from wgfpgan.broker import held_item_ids
from wgfpgan.cli import main
from wgfpgan.config import Settings

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def fault_env(tiny_model_path, redis_url, postgres_url, s3_env, s3_bucket, monkeypatch) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment for the CLI (in-process, via monkeypatch) and the worker subprocesses alike."""
    upgrade(postgres_url)
    env = {
        **s3_env.env(),
        "WGFPGAN_DATABASE_URL": postgres_url,
        "WGFPGAN_BROKER_URL": redis_url,
        "WGFPGAN_QUEUE": "wgf-faults-" + uuid.uuid4().hex[:8],
        "WGFPGAN_MODEL": str(tiny_model_path),
        "WGFPGAN_CHUNK_SIZE": "4",
        "WGFPGAN_LEASE_SECONDS": "12",
        "OMP_NUM_THREADS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = s3_env.client()
    enable_write_counting(client, s3_bucket)
    yield env
    import redis

    redis.Redis.from_url(redis_url).delete(env["WGFPGAN_QUEUE"])


def submit(capsys, bucket: str, files: dict[str, bytes], s3_env) -> int:  # type: ignore[no-untyped-def]
    upload(s3_env.client(), bucket, "scans/", files)
    assert main(["submit", f"s3://{bucket}/scans/", "--out", f"s3://{bucket}/restored/", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dispatched"] == len(files)
    return result["id"]


def check_outputs(client, bucket: str, items: list, expected_keys: set[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every succeeded item's output exists, is a complete image, and was written at most once per
    attempt (exactly once when attempted once). Returns the write count per output key."""
    writes = write_counts(client, bucket, "restored/")
    assert set(writes) == {f"restored/{key}" for key in expected_keys}
    for item in items:
        key = f"restored/{item.rel_key}"
        assert item.output_uri == f"s3://{bucket}/{key}"
        assert 1 <= writes[key] <= item.attempts, (item.rel_key, writes[key], item.attempts)
        if item.attempts == 1:
            assert writes[key] == 1, item.rel_key
        with Image.open(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read())) as out:
            out.load()
    return writes


def test_sigkill_of_a_pool_child_and_of_the_whole_worker_loses_nothing(
    fault_env, shared_dir: Path, s3_env, s3_bucket: str, capsys, tmp_path: Path
) -> None:
    files = face_photos(shared_dir, 48, size=192)
    job_id = submit(capsys, s3_bucket, files, s3_env)
    database = Database(fault_env["WGFPGAN_DATABASE_URL"])
    reconciler = ReconcilerProcess(fault_env, tmp_path / "reconcile.log", interval=2, stale_after=8).start()
    first = WorkerProcess(fault_env, tmp_path / "worker1.log", concurrency=2).start()
    second = WorkerProcess(fault_env, tmp_path / "worker2.log", concurrency=1)
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 4, 180, "the first outputs")

        # 1. SIGKILL a pool child while it holds an item.
        def child_holding_an_item() -> tuple[int, list[int]] | None:
            children = set(first.pool_children())
            held = running_by_pid(database, job_id)
            return next(((pid, ids) for pid, ids in held.items() if pid in children), None)

        child, child_items = wait_for(child_holding_an_item, 60, "a pool child holding an item", 0.05)
        import os
        import signal

        os.kill(child, signal.SIGKILL)
        done_at_kill = job_counts(database, job_id)["succeeded"]
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= done_at_kill + 6, 120, "progress after it")
        assert first.alive(), "the worker main process must survive a killed pool child"

        # 2. SIGKILL the whole worker (main process + children) while it holds items.
        wait_for(lambda: running_by_pid(database, job_id), 60, "an item in flight", 0.05)
        whole_items = [i for ids in running_by_pid(database, job_id).values() for i in ids]
        first.kill_all()
        assert job_counts(database, job_id)["succeeded"] < len(files), "the job must still be running"
        second.start()
        counts = wait_job_done(database, job_id, 240, second.alive)
    finally:
        first.kill_all()
        second.terminate()
        reconciler.stop()

    assert counts == {"queued": 0, "running": 0, "succeeded": len(files), "failed": 0, "cancelled": 0}
    assert database.run(q.get_job, job_id).state == "finished"
    items = database.run(q.list_items, job_id, limit=1000)
    by_id = {item.id: item for item in items}
    killed = set(child_items) | set(whole_items)
    assert all(by_id[i].attempts >= 2 for i in killed), [(i, by_id[i].attempts) for i in killed]
    writes = check_outputs(s3_env.client(), s3_bucket, items, set(files))
    duplicates = sum(n - 1 for n in writes.values())
    print(
        f"\nSIGKILL: {len(killed)} items in flight killed, attempts total {sum(i.attempts for i in items)} "
        f"for {len(items)} items, {duplicates} re-writes (all of items attempted more than once)"
    )
    database.dispose()


def test_sigterm_hands_the_rest_of_the_chunk_back_at_once(
    fault_env, shared_dir: Path, s3_env, s3_bucket: str, monkeypatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setenv("WGFPGAN_CHUNK_SIZE", "8")
    files = face_photos(shared_dir, 32, size=192)
    job_id = submit(capsys, s3_bucket, files, s3_env)
    database = Database(fault_env["WGFPGAN_DATABASE_URL"])
    first = WorkerProcess(fault_env, tmp_path / "worker1.log", concurrency=2).start()
    second = WorkerProcess(fault_env, tmp_path / "worker2.log", concurrency=1)
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 3, 180, "the first outputs")
        wait_for(lambda: running_by_pid(database, job_id), 60, "an item in flight", 0.05)
        seconds = first.terminate(timeout=60)
        after = job_counts(database, job_id)
        queued = {i.id for i in database.run(q.list_items, job_id, state=ItemState.QUEUED, limit=1000)}
        held = held_item_ids(Settings.from_env())
        second.start()
        counts = wait_job_done(database, job_id, 240, second.alive)
    finally:
        first.kill_all()
        second.terminate()

    assert seconds < 20, f"warm shutdown took {seconds:.1f}s: it must stop between items"
    assert after["running"] == 0, after  # the item in flight finished; nothing left claimed
    assert after["succeeded"] < len(files) and queued
    assert queued <= held, "items not started must be back in the broker queue without any reconcile"
    assert counts == {"queued": 0, "running": 0, "succeeded": len(files), "failed": 0, "cancelled": 0}
    items = database.run(q.list_items, job_id, limit=1000)
    assert all(item.attempts == 1 for item in items), "a graceful stop must not cost a re-run"
    check_outputs(s3_env.client(), s3_bucket, items, set(files))
    print(f"\nSIGTERM: worker exited in {seconds:.1f}s, handed back {len(queued)} queued items")
    database.dispose()


def test_cancel_stops_pending_work_and_running_items_end_cleanly(
    fault_env, shared_dir: Path, s3_env, s3_bucket: str, capsys, tmp_path: Path
) -> None:
    files = face_photos(shared_dir, 40, size=192)
    job_id = submit(capsys, s3_bucket, files, s3_env)
    database = Database(fault_env["WGFPGAN_DATABASE_URL"])
    worker = WorkerProcess(fault_env, tmp_path / "worker.log", concurrency=1).start()
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 3, 180, "the first outputs")
        cancelled_at = time.monotonic()
        assert main(["cancel", str(job_id)]) == 0
        assert "queued items will not run" in capsys.readouterr().out
        assert job_counts(database, job_id)["queued"] == 0  # at once, in the same transaction
        counts = wait_job_done(database, job_id, 30, worker.alive)
        settle = time.monotonic() - cancelled_at
        queue = fault_env["WGFPGAN_QUEUE"]
        import redis

        broker = redis.Redis.from_url(fault_env["WGFPGAN_BROKER_URL"])
        wait_for(lambda: broker.llen(queue) == 0, 60, "the worker to drain the cancelled messages")
        assert worker.alive()
    finally:
        worker.terminate()

    assert settle < 15, f"running items took {settle:.1f}s to end after cancel"
    assert counts["running"] == counts["queued"] == counts["failed"] == 0
    assert counts["succeeded"] + counts["cancelled"] == len(files) and counts["cancelled"] > 0
    assert database.run(q.get_job, job_id).state == "cancelled"
    assert main(["status", str(job_id), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["done"] and status["counts"] == counts
    items = database.run(q.list_items, job_id, limit=1000)
    assert {item.state for item in items} == {"succeeded", "cancelled"}
    written = write_counts(s3_env.client(), s3_bucket, "restored/")
    assert set(written) == {f"restored/{i.rel_key}" for i in items if i.state == "succeeded"}
    assert all(n == 1 for n in written.values())
    assert all(item.attempts == 0 for item in items if item.state == "cancelled")
    print(f"\ncancel: {counts['succeeded']} finished, {counts['cancelled']} cancelled, settled in {settle:.1f}s")
    database.dispose()
