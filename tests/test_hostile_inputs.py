"""Hostile inputs (tests/hostile_corpus.py, 200+ generated files) through both paths:

- `wgfpgan run` (SQLite status DB, local folders, 2 pool processes): the whole corpus;
- `wgfpgan submit` + a real Celery worker (S3 on SeaweedFS, PostgreSQL, Redis): a 60-file cross-section.

Every item must end terminal with the expected outcome — `succeeded` with an output of the right size at
the right key, or `failed` with the precise error code and a message naming the file — the worker must
never die, nothing but finished outputs may appear at the destination, and the peak RSS of every
worker process stays bounded (printed for the report).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from faults_services import MemorySampler, WorkerProcess, job_counts, upload, wait_job_done
from hostile_corpus import SUCCEEDED, Case, build_corpus
from PIL import Image

from db import Database
from db import queries as q
from db.migrate import upgrade
from wgfpgan import storage
from wgfpgan.cli import main

pytestmark = pytest.mark.slow
UPSCALE = 2
MAX_WORKER_RSS_MB = 2500  # torch + the tiny model is ~400 MB; a 30000x200 photo adds ~300 MB


@pytest.fixture(scope="module")
def corpus() -> list[Case]:
    cases = build_corpus()
    assert len(cases) >= 200
    assert len({case.name for case in cases}) == len(cases)
    assert all(storage.is_image_key(case.name) for case in cases)
    return cases


def check_items(cases: list[Case], items: list, read_output) -> None:  # type: ignore[no-untyped-def]
    """Each item's fate against its case; `read_output(uri)` returns the output bytes."""
    by_key = {item.rel_key: item for item in items}
    assert set(by_key) == {case.name for case in cases}
    wrong = []
    for case in cases:
        item = by_key[case.name]
        outcome = item.state if item.state == "succeeded" else item.error_code
        if item.state not in ("succeeded", "failed") or outcome not in case.expect:
            wrong.append((case.name, sorted(case.expect), item.state, item.error_code, item.error_message))
            continue
        if item.state == "failed":
            assert item.error_message and case.name in item.error_message, (case.name, item.error_message)
            assert item.output_uri is None
        elif case.size is not None:
            with Image.open(io.BytesIO(read_output(item.output_uri))) as output:
                expected = (case.size[0] * UPSCALE, case.size[1] * UPSCALE)
                assert output.size == expected, (case.name, output.size, expected)
    assert wrong == [], "\n".join(map(str, wrong))


def test_corpus_through_wgfpgan_run(corpus: list[Case], tiny_model_path: Path, tmp_path: Path) -> None:
    source, dest = tmp_path / "hostile", tmp_path / "restored"
    for case in corpus:
        (source / case.name).parent.mkdir(parents=True, exist_ok=True)
        (source / case.name).write_bytes(case.data)
    env = {**os.environ, "WGFPGAN_HOME": str(tmp_path / "home"), "WGFPGAN_MODEL": str(tiny_model_path),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("WGFPGAN_DATABASE_URL", None)
    run = subprocess.Popen(
        [sys.executable, "-m", "wgfpgan.cli", "run", str(source), "--out", str(dest), "--workers", "2",
         "--upscale", str(UPSCALE), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    memory = MemorySampler(run.pid).start()
    try:
        out, err = run.communicate(timeout=600)
    finally:
        memory.stop()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err[-3000:]
    assert "a worker process died" not in err, err[-3000:]
    result = json.loads(out)
    n_ok = sum(1 for case in corpus if case.expect == {SUCCEEDED})
    assert result["counts"]["queued"] == result["counts"]["running"] == 0
    assert result["counts"]["succeeded"] + result["counts"]["failed"] == len(corpus)
    assert result["counts"]["succeeded"] >= n_ok

    database = Database(f"sqlite:///{tmp_path / 'home' / 'wgfpgan.sqlite3'}")
    items = database.run(q.list_items, result["id"], limit=1000)
    database.dispose()
    check_items(corpus, items, lambda uri: Path(uri).read_bytes())
    written = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    expected = {Path(item.output_uri).relative_to(dest).as_posix() for item in items if item.state == "succeeded"}
    assert written == expected  # no temp files, no outputs for failed items
    assert all(item.attempts == 1 for item in items), "no pool process may have died on a photo"
    peak = memory.peak_mb()
    assert 0 < peak < MAX_WORKER_RSS_MB
    codes = sorted({item.error_code for item in items if item.error_code})
    print(f"\nrun: {len(corpus)} hostile files, {result['counts']}, codes {codes}, peak RSS {peak:.0f} MB")


def send_hostile_messages(env: dict[str, str]) -> None:
    """Well-formed messages no scheduler sends: bad item ids, wrong argument types, an unknown task. (Raw
    non-JSON bytes pushed into the queue are NOT survivable: kombu's Redis transport raises in the
    consumer loop and the worker exits with "Unrecoverable error" — celery/celery#4308 — so only
    broker-credentialed clients must be able to write to the queue, and workers run under a restart policy.)"""
    from wgfpgan.broker import ChunkSender
    from wgfpgan.config import Settings

    settings = Settings.from_env()
    with ChunkSender(settings) as sender:
        for ids in (["x", None], [-1, 2**62], ["1; DROP TABLE items"]):
            sender.send(ids)
        sender.app.send_task("os.system", args=["echo pwned"], queue=settings.queue)
        sender.app.send_task("wgfpgan.restore_chunk", args=["not a list"], queue=settings.queue)


@pytest.mark.services
def test_cross_section_through_submit_and_a_worker(
    corpus: list[Case], tiny_model_path, redis_url, postgres_url, s3_env, s3_bucket, monkeypatch, capsys, tmp_path
) -> None:
    subset = corpus[::4] + [case for case in corpus if case.family == "aspect" or "zeros" in case.name]
    subset = list({case.name: case for case in subset}.values())
    assert len(subset) >= 55
    upgrade(postgres_url)
    env = {
        **s3_env.env(),
        "WGFPGAN_DATABASE_URL": postgres_url,
        "WGFPGAN_BROKER_URL": redis_url,
        "WGFPGAN_QUEUE": "wgf-hostile-" + uuid.uuid4().hex[:8],
        "WGFPGAN_MODEL": str(tiny_model_path),
        "OMP_NUM_THREADS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = s3_env.client()
    upload(client, s3_bucket, "in/", {case.name: case.data for case in subset})
    argv = ["submit", f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out/", "--upscale", str(UPSCALE), "--json"]
    assert main(argv) == 0
    job_id = json.loads(capsys.readouterr().out)["id"]
    send_hostile_messages(env)
    database = Database(postgres_url)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        counts = wait_job_done(database, job_id, 300, worker.alive)
        assert worker.alive(), "the worker must survive every hostile file"
        peak = worker.peak_rss_mb()
    finally:
        worker.terminate()
    assert counts["succeeded"] + counts["failed"] == len(subset) and job_counts(database, job_id) == counts
    items = database.run(q.list_items, job_id, limit=1000)

    check_items(subset, items, storage.read_bytes)
    listed = {obj.uri for obj in storage.iter_objects(f"s3://{s3_bucket}/out/", images_only=False)}
    assert listed == {item.output_uri for item in items if item.state == "succeeded"}
    assert all(item.attempts == 1 for item in items)
    log = worker.log_text()
    assert "WorkerLostError" not in log and "wgfpgan.restore_chunk" in log
    assert redis.Redis.from_url(redis_url).llen(env["WGFPGAN_QUEUE"]) == 0  # every hostile message consumed
    assert 0 < peak < MAX_WORKER_RSS_MB
    print(f"\nsubmit+worker: {len(subset)} hostile files, {counts}, worker peak RSS {peak:.0f} MB")
    database.dispose()


def test_an_output_too_wide_for_jpeg_becomes_png_or_gets_a_precise_code(tiny_model_path: Path) -> None:
    from model import Restorer
    from model.imageio import ImageError

    photo = io.BytesIO()
    Image.new("RGB", (22_000, 8), (90, 120, 150)).save(photo, "JPEG")
    restorer = Restorer(str(tiny_model_path))
    restored = restorer.restore_bytes(photo.getvalue(), name="strip.jpg", upscale=3)  # 66000 x 24: no JPEG
    assert restored.ext == "png" and (restored.width, restored.height) == (66_000, 24)
    with Image.open(io.BytesIO(restored.data)) as out:
        assert out.format == "PNG" and out.size == (66_000, 24)
    with pytest.raises(ImageError) as raised:
        restorer.restore_bytes(photo.getvalue(), name="strip.jpg", upscale=3, out_ext="jpg")
    assert raised.value.code == "too_large_for_jpeg" and "strip.jpg" in str(raised.value)
