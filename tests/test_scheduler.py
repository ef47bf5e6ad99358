"""scheduler/: submit/status/jobs/cancel/retry/reconcile through the real CLI, SQLite or PostgreSQL, and a
real Redis broker (a unique queue per test)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from db import Database, ItemState
from db import queries as q
from db.migrate import upgrade
from wgfpgan.broker import held_item_ids, queue_length
from wgfpgan.cli import main
from wgfpgan.config import Settings

pytestmark = pytest.mark.services


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, redis_url: str) -> Settings:
    queue = "wgf-test-" + uuid.uuid4().hex[:10]
    monkeypatch.setenv("WGFPGAN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("WGFPGAN_BROKER_URL", redis_url)
    monkeypatch.setenv("WGFPGAN_QUEUE", queue)
    monkeypatch.setenv("WGFPGAN_CHUNK_SIZE", "3")
    upgrade(sqlite_url)
    yield Settings.from_env()
    redis.Redis.from_url(redis_url).delete(queue)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for i in range(7):
        (source / f"p{i}.jpg").write_bytes(b"not decoded by the scheduler")
    (source / "sub" / "x.png").write_bytes(b"png?")
    (source / "notes.txt").write_text("not an image: not listed")
    return source


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def submit(capsys, source: Path, dest: Path, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    code, out, err = cli(capsys, "submit", str(source), "--out", str(dest), "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_submit_registers_images_and_sends_chunks(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    result = submit(capsys, photos, tmp_path / "out")
    assert result["created"] and result["listed"] == 8 and result["new_items"] == 8 and result["dispatched"] == 8
    assert queue_length(env) == 3  # 8 ids in chunks of 3
    database = Database(env.database_url)
    ids = {item.id for item in database.run(q.list_items, result["id"])}
    assert held_item_ids(env) == ids
    keys = {item.rel_key for item in database.run(q.list_items, result["id"])}
    assert keys == {f"p{i}.jpg" for i in range(7)} | {"sub/x.png"}

    code, out, _ = cli(capsys, "status", str(result["id"]), "--json")
    status = json.loads(out)
    assert code == 0 and status["id"] == result["id"] and status["state"] == "active"
    assert status["done"] is False and status["counts"]["queued"] == 8 and status["counts"]["failed"] == 0

    again = submit(capsys, photos, tmp_path / "out")
    assert again["id"] == result["id"] and not again["created"]
    assert again["new_items"] == 0 and again["dispatched"] == 0 and queue_length(env) == 3


def test_manifest_with_unsafe_entries(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(f"# comment\np1.jpg\n{photos}/p2.jpg\n../../etc/passwd\n/abs.jpg\n\nsub/x.png\n")
    result = submit(capsys, photos, tmp_path / "out", "--manifest", str(manifest))
    assert result["listed"] == 5 and result["dispatched"] == 3
    _, out, _ = cli(capsys, "status", str(result["id"]), "--json", "--failed")
    status = json.loads(out)
    assert status["counts"]["failed"] == 2 and status["counts"]["queued"] == 3
    assert {f["rel_key"] for f in status["failed"]} == {"../../etc/passwd", "/abs.jpg"}
    assert {f["error_code"] for f in status["failed"]} == {"unsafe_key"}


def test_cancel_and_retry(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    job_id = submit(capsys, photos, tmp_path / "out")["id"]
    code, out, _ = cli(capsys, "cancel", str(job_id))
    assert code == 0 and "8 queued" in out
    database = Database(env.database_url)
    [first, *_] = database.run(q.list_items, job_id)
    assert database.run(q.claim_item, first.id, worker_id="w", lease_seconds=60) is None
    redis.Redis.from_url(env.broker_url).delete(env.queue)
    code, out, _ = cli(capsys, "retry", str(job_id))
    assert code == 0 and "8 items queued again, 8 sent" in out
    assert queue_length(env) == 3
    assert database.run(q.counts, job_id)["queued"] == 8


def test_reconcile_resends_what_the_broker_lost_and_expired_leases(
    env: Settings, photos: Path, tmp_path: Path, capsys
) -> None:
    job_id = submit(capsys, photos, tmp_path / "out")["id"]
    database = Database(env.database_url)
    items = database.run(q.list_items, job_id)
    claim = database.run(q.claim_item, items[0].id, worker_id="gone", lease_seconds=-1)
    assert claim is not None
    code, out, _ = cli(capsys, "reconcile", "--stale-after", "0")
    assert "1 expired leases requeued, 0 lost messages, 1 items sent" in out  # the others are held
    redis.Redis.from_url(env.broker_url).delete(env.queue)  # Redis restarted empty
    code, out, _ = cli(capsys, "reconcile", "--stale-after", "0")
    assert code == 0 and "8 lost messages, 8 items sent" in out
    assert held_item_ids(env) == {item.id for item in items}
    assert database.run(q.counts, job_id)[ItemState.QUEUED] == 8


def test_jobs_table_is_plain_text_when_piped(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    submit(capsys, photos, tmp_path / "out", "--name", "family-album")
    code, out, _ = cli(capsys, "jobs")
    assert code == 0 and "family-album" in out and "\x1b[" not in out
    code, out, _ = cli(capsys, "status", "1")
    assert code == 0 and "queued" in out and "\x1b[" not in out


def test_refusals_are_clear(env: Settings, photos: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = cli(capsys, "submit", str(photos), "--out", str(photos / "restored"))
    assert code == 2 and "must not contain each other" in err
    code, _, err = cli(capsys, "status", "999")
    assert code == 2 and "no job 999" in err
    code, _, err = cli(capsys, "submit", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert code == 2 and "not a folder" in err
    monkeypatch.setenv("WGFPGAN_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    code, _, err = cli(capsys, "status", "1")
    assert code == 2 and "run `wgfpgan db upgrade`" in err


def test_status_never_imports_torch_or_the_worker(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    job_id = submit(capsys, photos, tmp_path / "out")["id"]
    heavy = ["torch", "cv2", "celery", "boto3", "model.restorer", "worker.app", "worker.process"]
    probe = (
        "import json, sys\n"
        "from wgfpgan.cli import main\n"
        f"code = main(['status', '{job_id}', '--json'])\n"
        f"print('HEAVY=' + json.dumps(sorted(set(sys.modules) & set({heavy!r}))))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY=[]"


def test_reconcile_resends_chunks_delivered_to_a_worker_that_died(
    env: Settings, photos: Path, tmp_path: Path, capsys
) -> None:
    from datetime import timedelta

    from db.models import utcnow

    job_id = submit(capsys, photos, tmp_path / "out")["id"]
    database = Database(env.database_url)
    ids = [item.id for item in database.run(q.list_items, job_id)]
    database.run(q.mark_enqueued, ids, utcnow() - timedelta(hours=1))
    client = redis.Redis.from_url(env.broker_url)
    # Deliver two of the three chunk messages the way kombu does, to workers that then vanish: one
    # long ago (its worker is gone), one just now (its worker is busy with it).
    stale_tag, fresh_tag = f"dead-{uuid.uuid4().hex}", f"busy-{uuid.uuid4().hex}"
    stale_raw, fresh_raw = client.rpop(env.queue), client.rpop(env.queue)
    now = time.time()
    for tag, raw, delivered in ((stale_tag, stale_raw, now - 3600), (fresh_tag, fresh_raw, now)):
        client.hset("unacked", tag, json.dumps([json.loads(raw), "", env.queue]))
        client.zadd("unacked_index", {tag: delivered})
    try:
        stale_ids = {i for i in ids if i not in held_item_ids(env, delivered_within=300)}
        assert len(stale_ids) == 3  # the first chunk of 3 (chunk size 3)
        code, out, _ = cli(capsys, "reconcile", "--stale-after", "300")
        assert code == 0 and "3 lost messages, 3 items sent" in out
        assert held_item_ids(env, delivered_within=300) == set(ids)
    finally:
        client.hdel("unacked", stale_tag, fresh_tag)
        client.zrem("unacked_index", stale_tag, fresh_tag)


def test_resubmit_with_other_options_is_refused(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    submit(capsys, photos, tmp_path / "out", "--upscale", "2")
    code, _, err = cli(capsys, "submit", str(photos), "--out", str(tmp_path / "out"), "--upscale", "4")
    assert code == 2 and "'upscale': 2" in err and "another --out" in err
    _, out, _ = cli(capsys, "status", "1", "--json")
    assert json.loads(out)["state"] == "active"  # the refused re-submission left the job untouched


def test_watch_returns_when_the_job_is_done(env: Settings, photos: Path, tmp_path: Path, capsys) -> None:
    job_id = submit(capsys, photos, tmp_path / "out")["id"]
    cli(capsys, "cancel", str(job_id))
    code, out, _ = cli(capsys, "watch", str(job_id), "--interval", "0.1")
    assert code == 0 and "8/8" in out and "cancelled 8" in out and "\x1b[" not in out
