"""End to end, against real services: photos in a SeaweedFS bucket -> `wgfpgan submit` -> a real Celery
worker subprocess (Redis broker, PostgreSQL status DB, tiny random-weight model) -> every item terminal
with the right outcome and its output at the expected key; and the same through `wgfpgan run` on local
folders with SQLite, including a resume after a crash."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from db import Database
from db import queries as q
from db.migrate import upgrade
from wgfpgan.cli import main

pytestmark = [pytest.mark.services, pytest.mark.slow]


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def build_corpus(shared_dir: Path, n_faces: int, n_plain: int) -> tuple[dict[str, bytes], set, set, dict]:
    """{rel_key: bytes}, the keys with real faces, the generated non-face keys, and {bad key: code}."""
    files: dict[str, bytes] = {}
    faces = sorted((shared_dir / "data/faces/val-512").glob("*.jpg"))[: n_faces - 2]
    faces += sorted((shared_dir / "data/realworld/GFPGAN/inputs/cropped_faces").glob("*.png"))[:2]
    face_keys = set()
    for i, path in enumerate(faces):
        key = f"faces/{'real' if path.suffix == '.png' else 'celeb'}/{i:03d}{path.suffix}"
        with Image.open(path) as img:
            small = img.convert("RGB").resize((192, 192), Image.LANCZOS)
        files[key] = jpeg(small) if path.suffix == ".jpg" else png(np.asarray(small))
        face_keys.add(key)
    rng = np.random.default_rng(7)
    plain_keys = set()
    for i in range(n_plain):
        if i % 2:
            array = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        else:
            ramp = np.linspace(0, 255, 64, dtype=np.uint8)
            array = np.stack([np.tile(ramp, (48, 1))] * 3, axis=-1)
        key = f"scenery/plain{i:02d}.png"
        files[key] = png(array)
        plain_keys.add(key)
    good_jpeg = files[sorted(face_keys)[0]]
    bad = {
        "broken/empty.jpg": (b"", "empty"),
        "broken/letter.jpg": (b"Dear archive, this is a letter, not a photo.\n" * 4, "not_an_image"),
        "broken/page.png": (b"<!DOCTYPE html><html><body>404</body></html>", "not_an_image"),
        "broken/truncated.jpg": (good_jpeg[: len(good_jpeg) // 3], None),
        "broken/archive.jpg": (b"PK\x03\x04" + bytes(200), None),
        "broken/noise.webp": (rng.integers(0, 255, 300, dtype=np.uint8).tobytes(), None),
    }
    files.update({key: data for key, (data, _) in bad.items()})
    return files, face_keys, plain_keys, {key: code for key, (_, code) in bad.items()}


def status_json(capsys: pytest.CaptureFixture[str], job_id: int) -> dict:
    assert main(["status", str(job_id), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def wait_until_done(capsys, job_id: int, timeout: float, worker: subprocess.Popen | None = None) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        status = status_json(capsys, job_id)
        if status["done"]:
            return status
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"the worker exited early with {worker.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"job not done after {timeout}s: {status['counts']}")
        time.sleep(1.0)


def check_outcomes(items: list, face_keys: set, plain_keys: set, bad: dict) -> None:
    by_key = {item.rel_key: item for item in items}
    assert set(by_key) == face_keys | plain_keys | set(bad)
    for key in face_keys | plain_keys:
        assert by_key[key].state == "succeeded", (key, by_key[key].error_code, by_key[key].error_message)
        assert by_key[key].attempts == 1 and by_key[key].model_version
    for key, code in bad.items():
        item = by_key[key]
        assert item.state == "failed" and item.error_code and item.error_message, key
        if code:
            assert item.error_code == code, (key, item.error_code)
    with_faces = sum(1 for key in face_keys if by_key[key].faces >= 1)
    assert with_faces >= 0.8 * len(face_keys)
    assert all(by_key[key].faces == 0 for key in plain_keys)


@pytest.fixture
def worker_env(tiny_model_path: Path, redis_url: str, postgres_url: str, s3_env) -> dict[str, str]:  # type: ignore[no-untyped-def]
    upgrade(postgres_url)
    return {
        **s3_env.env(),
        "WGFPGAN_DATABASE_URL": postgres_url,
        "WGFPGAN_BROKER_URL": redis_url,
        "WGFPGAN_QUEUE": "wgf-e2e-" + uuid.uuid4().hex[:8],
        "WGFPGAN_MODEL": str(tiny_model_path),
        "WGFPGAN_CHUNK_SIZE": "4",
        "OMP_NUM_THREADS": "1",
    }


def test_submit_to_celery_worker_on_seaweedfs_and_postgres(
    shared_dir: Path, worker_env: dict, s3_env, s3_bucket: str, monkeypatch, capsys, tmp_path: Path
) -> None:
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    client = s3_env.client()
    files, face_keys, plain_keys, bad = build_corpus(shared_dir, n_faces=24, n_plain=18)
    for key, data in files.items():
        client.put_object(Bucket=s3_bucket, Key=f"scans/{key}", Body=data)
    client.put_object(Bucket=s3_bucket, Key="scans/README.txt", Body=b"not an image: never an item")

    assert main(["submit", f"s3://{s3_bucket}/scans", "--out", f"s3://{s3_bucket}/restored/", "--json"]) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert submitted["listed"] == len(files) == 48 and submitted["dispatched"] == 48

    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "wgfpgan.cli", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
        env={**os.environ, **worker_env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        status = wait_until_done(capsys, submitted["id"], timeout=300, worker=worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    n_good = len(face_keys) + len(plain_keys)
    assert status["state"] == "finished"
    assert status["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": n_good,
        "failed": len(bad),
        "cancelled": 0,
    }

    database = Database(worker_env["WGFPGAN_DATABASE_URL"])
    items = database.run(q.list_items, submitted["id"], limit=1000)
    check_outcomes(items, face_keys, plain_keys, bad)
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="restored/")["Contents"]
    assert {obj["Key"] for obj in listed} == {f"restored/{key}" for key in face_keys | plain_keys}
    assert all(
        item.output_uri == f"s3://{s3_bucket}/restored/{item.rel_key}" for item in items if item.faces is not None
    )

    # Re-submitting the same source and destination does no work.
    assert main(["submit", f"s3://{s3_bucket}/scans/", "--out", f"s3://{s3_bucket}/restored", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["id"] == submitted["id"] and again["new_items"] == 0 and again["dispatched"] == 0
    assert redis.Redis.from_url(worker_env["WGFPGAN_BROKER_URL"]).llen(worker_env["WGFPGAN_QUEUE"]) == 0
    assert status_json(capsys, submitted["id"])["counts"] == status["counts"]
    database.dispose()


def test_embedded_run_on_folders_with_sqlite_and_resume(
    shared_dir: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("WGFPGAN_HOME", str(tmp_path / "home"))  # the embedded default SQLite file
    monkeypatch.delenv("WGFPGAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("WGFPGAN_MODEL", str(tiny_model_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    files, face_keys, plain_keys, bad = build_corpus(shared_dir, n_faces=6, n_plain=4)
    source, dest = tmp_path / "album", tmp_path / "restored"
    for key, data in files.items():
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(data)

    assert main(["run", str(source), "--out", str(dest), "--workers", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    n_good = len(face_keys) + len(plain_keys)
    assert result["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": n_good,
        "failed": len(bad),
        "cancelled": 0,
    }
    status = status_json(capsys, result["id"])  # the same status command reads the embedded DB
    assert status["done"] and status["counts"] == result["counts"]
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == face_keys | plain_keys
    database = Database.from_settings()
    check_outcomes(database.run(q.list_items, result["id"], limit=1000), face_keys, plain_keys, bad)

    # A crash mid-run: new photos arrive, a previous run died holding two of them.
    for i in range(3):
        (source / "late" / f"new{i}.png").parent.mkdir(exist_ok=True)
        (source / "late" / f"new{i}.png").write_bytes(files[sorted(plain_keys)[i]])
    dead = subprocess.Popen(["true"])
    dead.wait()
    dead_worker = f"{socket.gethostname()}:{dead.pid}"
    from scheduler.submit import iter_new_items, register_items

    register_items(database, result["id"], iter_new_items(str(source)))
    for item_id in database.run(q.queued_ids, result["id"])[:2]:
        assert database.run(q.claim_item, item_id, worker_id=dead_worker, lease_seconds=3600)

    assert main(["run", str(source), "--out", str(dest), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["id"] == result["id"] and resumed["requeued"] == 2
    assert resumed["counts"]["succeeded"] == n_good + 3 and resumed["counts"]["running"] == 0
    items = database.run(q.list_items, result["id"], limit=1000)
    late = [item for item in items if item.rel_key.startswith("late/")]
    assert sorted(item.attempts for item in late) == [1, 2, 2]
    assert all(item.attempts == 1 for item in items if not item.rel_key.startswith("late/"))
    assert all((dest / "late" / f"new{i}.png").is_file() for i in range(3))
    database.dispose()


def _child_workers(pid: int) -> list[int]:
    """Pids of the spawned pool processes of `pid` (not its resource tracker)."""
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            children.append(int(proc.name))
    return children


def test_embedded_run_survives_a_killed_worker_process(shared_dir: Path, tiny_model_path: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WGFPGAN_HOME": str(tmp_path / "home"),
        "WGFPGAN_MODEL": str(tiny_model_path),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("WGFPGAN_DATABASE_URL", None)
    files, face_keys, plain_keys, _ = build_corpus(shared_dir, n_faces=14, n_plain=2)
    source, dest = tmp_path / "album", tmp_path / "restored"
    for key in face_keys | plain_keys:
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(files[key])
    run = subprocess.Popen(
        [sys.executable, "-m", "wgfpgan.cli", "run", str(source), "--out", str(dest), "--workers", "2", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(dest.rglob("*.jpg")):  # the pool is working
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.poll() else ""
            time.sleep(0.2)
        victims = _child_workers(run.pid)
        assert victims, "no pool process found"
        os.kill(victims[0], signal.SIGKILL)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "a worker process died" in err  # the pool was rebuilt, not silently hung or restarted
    result = json.loads(out)
    assert result["counts"]["succeeded"] == len(face_keys | plain_keys) and result["counts"]["running"] == 0
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == face_keys | plain_keys
    database = Database(f"sqlite:///{tmp_path / 'home' / 'wgfpgan.sqlite3'}")
    attempts = [item.attempts for item in database.run(q.list_items, result["id"], limit=1000)]
    database.dispose()
    assert max(attempts) <= 2 and min(attempts) == 1
