"""worker/process.py: one item's trip with the real (tiny) model, a real SQLite status DB and real
storage — outcomes, output keys, hand-back on storage outages, stopping between items."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from db import Database, ItemState
from db import queries as q
from db.migrate import upgrade
from scheduler.submit import iter_new_items, job_options, open_job, register_items
from wgfpgan.config import Settings
from worker.process import ItemProcessor


@pytest.fixture(scope="module")
def restorer(tiny_model_path: Path):  # type: ignore[no-untyped-def]
    from model import Restorer

    return Restorer(str(tiny_model_path))


@pytest.fixture
def database(sqlite_url: str) -> Database:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()


def png_bytes(size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def make_job(database: Database, source: str, dest: str, **options: object) -> int:
    job, _ = open_job(database, source, dest, name="t", options=job_options(**options))
    register_items(database, job.id, iter_new_items(job.source))
    database.run(q.finish_submission, job.id)
    return job.id


def items_by_key(database: Database, job_id: int) -> dict[str, object]:
    return {item.rel_key: item for item in database.run(q.list_items, job_id)}


@pytest.mark.parametrize("overlap_store", [False, True], ids=["inline-store", "background-store"])
def test_outcomes_outputs_and_records(
    database: Database, restorer, tmp_path: Path, shared_dir: Path, overlap_store: bool
) -> None:
    source, dest = tmp_path / "in", tmp_path / "out"
    (source / "nested").mkdir(parents=True)
    face = (shared_dir / "data/faces/val-512/04500.jpg").read_bytes()
    (source / "nested" / "face.jpg").write_bytes(face)
    (source / "texture.png").write_bytes(png_bytes())
    (source / "scan.tif").write_bytes(png_bytes(fmt="TIFF"))
    (source / "empty.jpg").write_bytes(b"")
    (source / "text.jpg").write_text("hello, not a photo")
    job_id = make_job(database, str(source), str(dest))
    settings = dataclasses.replace(Settings.from_env(), overlap_store=overlap_store)
    processor = ItemProcessor(database, settings, restorer=restorer)

    outcomes = processor.process_chunk(database.run(q.queued_ids, job_id))
    assert sorted(o.status for o in outcomes) == ["failed", "failed", "succeeded", "succeeded", "succeeded"]
    items = items_by_key(database, job_id)
    assert items["empty.jpg"].error_code == "empty"
    assert items["text.jpg"].error_code == "not_an_image" and "text.jpg" in items["text.jpg"].error_message
    face_item = items["nested/face.jpg"]
    assert face_item.state == ItemState.SUCCEEDED and face_item.faces is not None
    assert face_item.output_uri == str(dest / "nested" / "face.jpg")
    assert face_item.input_sha256 == hashlib.sha256(face).hexdigest()
    assert face_item.model_version == restorer.model_version and face_item.attempts == 1
    assert face_item.restore_seconds > 0 and face_item.total_seconds >= face_item.restore_seconds
    assert items["texture.png"].faces == 0  # no face is still a success
    assert items["scan.tif"].output_uri == str(dest / "scan.tif.png")
    with Image.open(dest / "texture.png") as out:
        assert out.size == (80, 60)  # upscale 2
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [
        "face.jpg",
        "scan.tif.png",
        "texture.png",
    ]
    assert database.run(q.get_job, job_id).state == "finished"

    # a second delivery of the same chunk does nothing
    assert {o.status for o in processor.process_chunk(list(items_id(items)))} == {"skipped"}


def items_id(items: dict[str, object]) -> list[int]:
    return [item.id for item in items.values()]


def test_missing_source_fails_and_cancelled_items_are_skipped(database: Database, restorer, tmp_path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (source / name).write_bytes(png_bytes())
    job_id = make_job(database, str(source), str(tmp_path / "out"))
    (source / "a.png").unlink()
    processor = ItemProcessor(database, Settings.from_env(), restorer=restorer)
    ids = database.run(q.queued_ids, job_id)
    assert processor.process_item(ids[0]).code == "source_missing"
    database.run(q.cancel_job, job_id)
    assert [o.status for o in processor.process_chunk(ids[1:])] == ["skipped", "skipped"]
    assert not (tmp_path / "out" / "b.png").exists()


def test_should_stop_leaves_the_rest_queued(database: Database, restorer, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        (source / f"{i}.png").write_bytes(png_bytes())
    job_id = make_job(database, str(source), str(tmp_path / "out"))
    processor = ItemProcessor(database, Settings.from_env(), restorer=restorer)
    calls = iter([False, True, True])
    outcomes = processor.process_chunk(database.run(q.queued_ids, job_id), lambda: next(calls))
    assert len(outcomes) == 1
    assert database.run(q.counts, job_id)["queued"] == 2


@pytest.mark.services
def test_unreachable_storage_hands_items_back_not_failed(
    database: Database, restorer, s3_env, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_env.client()
    client.put_object(Bucket=s3_bucket, Key="in/a.png", Body=png_bytes())
    job_id = make_job(database, f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out/")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    monkeypatch.setenv("WGFPGAN_S3_ENDPOINT_URL", f"http://127.0.0.1:{dead_port}")
    monkeypatch.setenv("WGFPGAN_S3_MAX_ATTEMPTS", "1")
    processor = ItemProcessor(database, Settings.from_env(), restorer=restorer, transient_retry_seconds=1.0)
    [item_id] = database.run(q.queued_ids, job_id)
    outcome = processor.process_item(item_id)
    assert outcome.status == "released"
    counts = database.run(q.counts, job_id)
    assert counts["queued"] == 1 and counts["failed"] == 0
    monkeypatch.setenv("WGFPGAN_S3_ENDPOINT_URL", s3_env.endpoint_url)  # storage is back
    assert processor.process_item(item_id).status == "succeeded"
    assert client.get_object(Bucket=s3_bucket, Key="out/a.png")["Body"].read()[:4] == b"\x89PNG"
    [item] = database.run(q.list_items, job_id)
    assert item.attempts == 2 and item.output_uri == f"s3://{s3_bucket}/out/a.png"


def test_a_symlink_in_the_source_cannot_lead_outside_it(database: Database, restorer, tmp_path: Path) -> None:
    source, outside = tmp_path / "in", tmp_path / "private"
    source.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes())
    (source / "link").symlink_to(outside, target_is_directory=True)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("link/secret.png\n")
    job, _ = open_job(database, str(source), str(tmp_path / "out"), name="t", options=job_options())
    register_items(database, job.id, iter_new_items(job.source, manifest=str(manifest)))
    [item_id] = database.run(q.queued_ids, job.id)
    outcome = ItemProcessor(database, Settings.from_env(), restorer=restorer).process_item(item_id)
    assert outcome.status == "failed" and outcome.code == "unsafe_key"
    assert not (tmp_path / "out").exists()
