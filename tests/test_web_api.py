"""The web dashboard's JSON API, auth, upload checks, paging and metrics (web/), against a real SQLite status
DB built through db/queries.py, real files read through wgfpgan/storage.py, the tiny generator checkpoint for
the try endpoint and the test Redis as broker for submit/retry.

`build_archive` is also used by tests/test_web_browser.py."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from db import Database, queries
from db.migrate import upgrade
from wgfpgan.config import Settings

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-for-tests"


# ------------------------------------------------------------------------------------------ the archive


def synthetic_photo(width: int, height: int, seed: int, *, sharp: bool = True) -> np.ndarray:
    """A colourful BGR picture (gradient, circles, text) so before/after differ visibly."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), 255 - (x + y) / 2], -1)
    img = np.ascontiguousarray(img.astype(np.uint8))
    for _ in range(4):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.circle(img, center, int(rng.integers(height // 8, height // 3)), color, -1)
    cv2.putText(img, f"#{seed}", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, height / 120, (255, 255, 255), 2)
    return img if sharp else cv2.GaussianBlur(img, (0, 0), 3)


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


@dataclass
class Archive:
    url: str
    database: Database
    source: Path
    dest: Path
    job_id: int
    succeeded: list[int]  # item ids, faces 2, 0, 1
    failed: int
    queued: list[int]


def build_archive(root: Path, url: str) -> Archive:
    """A job over a local folder with 3 succeeded items (outputs written), 1 failed, 2 queued; all the
    transitions go through db/queries.py."""
    upgrade(url)
    database = Database(url)
    source, dest = root / "photos", root / "restored"
    source.mkdir()
    dest.mkdir()
    keys = [f"album/p{i}.png" for i in range(6)]
    (source / "album").mkdir()
    for i, key in enumerate(keys):
        (source / key).write_bytes(png(synthetic_photo(96, 64, i, sharp=False)))
    job, _ = database.run(queries.get_or_create_job, name="family album", source=str(source), dest=str(dest),
                          options={"upscale": 2, "weight": None, "ext": "auto"})  # fmt: skip
    database.run(queries.add_items, job.id, [queries.NewItem(key, str(source / key)) for key in keys])
    database.run(queries.finish_submission, job.id)
    page = database.run(queries.list_items, job.id, limit=10)
    ids = [item.id for item in page]
    for item_id, key, faces in zip(ids[:3], keys[:3], (2, 0, 1), strict=True):
        claim = database.run(queries.claim_item, item_id, worker_id="w1", lease_seconds=60)
        out = dest / key
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png(synthetic_photo(192, 128, ids.index(item_id), sharp=True)))
        database.run(queries.record_success, claim, output_uri=str(out), faces=faces, restore_seconds=0.5,
                     total_seconds=0.8 + faces, input_sha256="0" * 64, model_version="tiny")  # fmt: skip
    claim = database.run(queries.claim_item, ids[3], worker_id="w1", lease_seconds=60)
    database.run(queries.record_failure, claim, code="truncated",
                 message=f"{source / keys[3]}: the pixel data ends early")  # fmt: skip
    return Archive(url, database, source, dest, job.id, ids[:3], ids[3], ids[4:])


def web_settings(url: str, **overrides: object) -> Settings:
    base = dataclasses.replace(Settings.from_env(), database_url=url, api_token=None)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def archive(tmp_path: Path, sqlite_url: str) -> Archive:
    built = build_archive(tmp_path, sqlite_url)
    yield built
    built.database.dispose()


@pytest.fixture
def client(archive: Archive, tiny_model_path: Path) -> TestClient:
    from web.app import create_app

    app = create_app(web_settings(archive.url, model_path=str(tiny_model_path), web_max_upload_bytes=200_000))
    with TestClient(app) as test_client:
        yield test_client


def assert_no_internal_paths(text: str, archive: Archive) -> None:
    for secret in (str(archive.source.parent), archive.url, "sqlite"):
        assert secret not in text, f"{secret!r} leaked into a response"


# ------------------------------------------------------------------------------------------------ jobs


def test_jobs_and_job_show_counts_progress_and_no_paths(client, archive):
    response = client.get("/api/jobs")
    assert response.status_code == 200
    [job] = response.json()
    assert job["id"] == archive.job_id and job["name"] == "family album"
    assert job["counts"] == {"queued": 2, "running": 0, "succeeded": 3, "failed": 1, "cancelled": 0}
    assert (job["total"], job["finished"], job["progress"]) == (6, 4, pytest.approx(4 / 6))
    assert job["source"] == "folder …/photos" and job["dest"] == "folder …/restored"
    assert job["speed_measured"] == "average" and job["items_per_second"] > 0 and job["eta_seconds"] > 0
    assert_no_internal_paths(response.text, archive)

    one = client.get(f"/api/jobs/{archive.job_id}")
    assert one.status_code == 200 and one.json()["counts"] == job["counts"]
    missing = client.get("/api/jobs/999")
    assert missing.status_code == 404 and missing.json() == {"detail": "no job 999", "code": "no_job"}


def test_rate_tracker_measures_live_throughput_and_eta():
    from web.progress import RateTracker, job_speed

    rates = RateTracker(window=60)
    assert rates.observe(1, 10, now=100.0) is None  # one reading is no rate
    assert rates.observe(1, 20, now=102.0) is None  # shorter than MIN_WINDOW
    assert rates.observe(1, 40, now=110.0) == pytest.approx(3.0)  # 30 items in 10 s
    assert rates.observe(1, 5, now=111.0) is None  # a retry moved items back: start again

    job = type("JobStub", (), {"state": "active", "created_at": None, "finished_at": None})()
    speed = job_speed(job, {"queued": 90, "running": 0, "succeeded": 10, "failed": 0, "cancelled": 0}, 3.0)
    assert (speed.items_per_second, speed.eta_seconds, speed.measured) == (3.0, 30.0, "live")


# ----------------------------------------------------------------------------------------------- items


def test_items_keyset_paging_forward_and_back(client, archive):
    url = f"/api/jobs/{archive.job_id}/items"
    seen, after, pages = [], 0, 0
    while True:
        body = client.get(url, params={"limit": 4, "after": after}).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        assert body["matching"] == 6  # from the counters
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert pages == 2 and seen == sorted(seen) and len(seen) == 6
    back = client.get(url, params={"limit": 4, "before": seen[4]}).json()
    assert [item["id"] for item in back["items"]] == seen[:4]
    assert back["prev_before"] is None and back["next_after"] == seen[3]


def test_items_filters(client, archive):
    url = f"/api/jobs/{archive.job_id}/items"

    def ids(**params: object) -> list[int]:
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(state="queued") == archive.queued
    assert ids(has_error=True) == [archive.failed]
    assert ids(faces="some") == [archive.succeeded[0], archive.succeeded[2]]
    assert ids(faces="none") == [archive.succeeded[1]]
    assert client.get(url, params={"state": "succeeded"}).json()["matching"] == 3
    failed = client.get(url, params={"has_error": True}).json()["items"][0]
    assert failed["error_code"] == "truncated"
    assert failed["error_message"] == "SOURCE/album/p3.png: the pixel data ends early"  # no server path
    conflict = client.get(url, params={"state": "queued", "faces": "some"})
    assert conflict.status_code == 400 and conflict.json()["code"] == "filter_conflict"


def test_item_page_query_is_an_index_range_scan(archive):
    """Keyset paging never scans the items table: SQLite's plan must use an index for every filter."""
    from sqlalchemy import text

    from db.models import ItemState
    from web.items import ItemFilter, page_queries

    filters = [ItemFilter(), ItemFilter(ItemState.FAILED), ItemFilter(has_error=False), ItemFilter(faces="some")]
    with archive.database.engine.connect() as conn:
        for item_filter in filters:
            for kwargs in ({"after": 1000}, {"before": 1000}):
                for query in page_queries(archive.job_id, item_filter, limit=50, **kwargs):
                    compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
                    plan = " | ".join(row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
                    # an ordered range read: SEARCH items USING INDEX ix_items_job_state_id (job_id=? AND state=?
                    # AND id>?), no sort of the job's rows, no OFFSET, no COUNT
                    assert "ix_items_job_state_id (job_id=? AND state=? AND id" in plan, plan
                    assert "TEMP B-TREE" not in plan, plan
                    sql = str(compiled).upper().replace("LIMIT 51 OFFSET 0", "LIMIT 51")  # SQLite's literal LIMIT
                    assert "OFFSET" not in sql and "COUNT" not in sql, sql


def test_item_and_images_through_storage_with_cache(client, archive):
    item_id = archive.succeeded[0]
    body = client.get(f"/api/items/{item_id}").json()
    assert body["key"] == "album/p0.png" and body["has_output"] and body["faces"] == 2
    ctx = client.app.state.ctx
    for which, size in (("source", (96, 64)), ("output", (192, 128))):
        response = client.get(f"/api/items/{item_id}/image/{which}", params={"size": 100})
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        longest = 320 if max(size) > 320 else max(size)  # rounded up to a cached size, never upscaled
        assert max(decoded.shape[:2]) == longest
    misses = ctx.thumbnails.misses
    assert client.get(f"/api/items/{item_id}/image/output", params={"size": 200}).status_code == 200
    assert ctx.thumbnails.misses == misses and ctx.thumbnails.hits >= 1  # same 320-px entry

    no_output = client.get(f"/api/items/{archive.queued[0]}/image/output")
    assert no_output.status_code == 404 and no_output.json()["code"] == "no_output"
    (archive.source / "album" / "p4.png").unlink()
    gone = client.get(f"/api/items/{archive.queued[0]}/image/source")
    assert gone.status_code == 404 and gone.json()["code"] == "image_missing"
    assert_no_internal_paths(gone.text, archive)
    (archive.source / "album" / "p5.png").write_text("not a picture")
    bad = client.get(f"/api/items/{archive.queued[1]}/image/source")
    assert bad.status_code == 422 and bad.json()["code"] == "not_an_image"


@pytest.mark.services
def test_item_images_from_s3(s3_env, s3_bucket, sqlite_url):
    """Source and output objects on S3 (the test SeaweedFS), read through wgfpgan/storage.py."""
    from web.app import create_app

    upgrade(sqlite_url)
    database = Database(sqlite_url)
    source, dest = f"s3://{s3_bucket}/scans/", f"s3://{s3_bucket}/restored/"
    s3_env.client().put_object(Bucket=s3_bucket, Key="scans/a.png", Body=png(synthetic_photo(90, 60, 1)))
    s3_env.client().put_object(Bucket=s3_bucket, Key="restored/a.png", Body=png(synthetic_photo(180, 120, 1)))
    job, _ = database.run(queries.get_or_create_job, name="s3", source=source, dest=dest, options={})
    database.run(queries.add_items, job.id, [queries.NewItem("a.png", source + "a.png")])
    database.run(queries.finish_submission, job.id)
    [item] = database.run(queries.list_items, job.id)
    claim = database.run(queries.claim_item, item.id, worker_id="w", lease_seconds=60)
    database.run(queries.record_success, claim, output_uri=dest + "a.png", faces=1, restore_seconds=0.1,
                 total_seconds=0.2, input_sha256="0" * 64, model_version="tiny")  # fmt: skip
    with TestClient(create_app(web_settings(sqlite_url))) as client:
        assert client.get(f"/api/jobs/{job.id}").json()["source"] == source
        for which, width in (("source", 90), ("output", 180)):
            response = client.get(f"/api/items/{item.id}/image/{which}")
            assert response.status_code == 200, response.text
            assert cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR).shape[1] == width
        s3_env.client().delete_object(Bucket=s3_bucket, Key="scans/a.png")
        assert client.get(f"/api/items/{item.id}/image/source?size=2048").json()["code"] == "image_missing"
    database.dispose()


def test_thumbnail_cache_stays_within_its_byte_budget(tmp_path):
    from web.images import ThumbnailCache

    cache = ThumbnailCache(max_bytes=20_000)
    for i in range(8):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(synthetic_photo(300, 200, i)))
        cache.get(str(path), 320)
        assert cache.bytes <= 20_000
    assert 0 < len(cache) < 8


# ------------------------------------------------------------------------------------ submit/cancel/retry


def test_cancel_moves_queued_items(client, archive):
    response = client.post(f"/api/jobs/{archive.job_id}/cancel")
    assert response.status_code == 200 and response.json() == {"id": archive.job_id, "cancelled": 2}
    job = client.get(f"/api/jobs/{archive.job_id}").json()
    assert job["state"] == "cancelled" and job["counts"]["cancelled"] == 2 and job["counts"]["queued"] == 0
    assert client.post("/api/jobs/999/cancel").status_code == 404


@pytest.fixture
def broker_settings(redis_url: str) -> dict[str, object]:
    return {"broker_url": redis_url, "queue": "web-test-" + uuid.uuid4().hex[:8]}


def queue_length(redis_url: str, queue: str) -> int:
    import redis

    return int(redis.Redis.from_url(redis_url).llen(queue))


def test_retry_requeues_and_dispatches(archive, broker_settings, redis_url):
    from web.app import create_app

    with TestClient(create_app(web_settings(archive.url, **broker_settings))) as client:
        client.post(f"/api/jobs/{archive.job_id}/cancel")
        only_failed = client.post(f"/api/jobs/{archive.job_id}/retry", params={"failed_only": True})
        assert only_failed.status_code == 200
        assert only_failed.json() == {"id": archive.job_id, "requeued": 1, "dispatched": 1}
        everything = client.post(f"/api/jobs/{archive.job_id}/retry").json()
        assert everything["requeued"] == 2 and everything["dispatched"] == 2
        job = client.get(f"/api/jobs/{archive.job_id}").json()
        assert job["state"] == "active" and job["counts"]["queued"] == 3 and job["counts"]["failed"] == 0
    assert queue_length(redis_url, str(broker_settings["queue"])) >= 1  # chunks of ids wait for workers


def test_retry_with_the_broker_down_says_what_happened(archive):
    from web.app import create_app

    settings = web_settings(archive.url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/api/jobs/{archive.job_id}/retry")
    assert response.status_code == 503 and response.json()["code"] == "broker_unavailable"
    assert "1 items are queued again" in response.json()["detail"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_submit_lists_a_folder_and_refuses_bad_requests(archive, broker_settings, redis_url, tmp_path):
    from web.app import create_app

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"{i}.png").write_bytes(png(synthetic_photo(32, 32, i)))
    with TestClient(create_app(web_settings(archive.url, **broker_settings))) as client:
        response = client.post("/api/jobs", json={"source": str(inbox), "dest": str(tmp_path / "out"), "upscale": 1})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["created"] and body["listed"] == 3 and body["new_items"] == 3 and body["dispatched"] == 3
        assert client.get(f"/api/jobs/{body['id']}").json()["counts"]["queued"] == 3

        nested = client.post("/api/jobs", json={"source": str(inbox), "dest": str(inbox / "out")})
        assert nested.status_code == 400 and "must not contain each other" in nested.json()["detail"]
        missing = client.post("/api/jobs", json={"source": str(tmp_path / "nope"), "dest": str(tmp_path / "o2")})
        assert missing.status_code == 400 and missing.json()["code"] == "source_missing"
        invalid = client.post("/api/jobs", json={"source": str(inbox), "dest": "x", "weight": 3})
        assert invalid.status_code == 422
    assert queue_length(redis_url, str(broker_settings["queue"])) >= 1


# ---------------------------------------------------------------------------------------------- try


def test_try_restore_returns_the_restored_photo(client):
    photo = png(synthetic_photo(80, 60, 7))
    response = client.post("/api/try/restore", files={"photo": ("x.png", photo, "image/png")}, data={"upscale": "2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["input_width"], body["input_height"], body["width"], body["height"]) == (80, 60, 160, 120)
    assert body["faces"] == 0 and body["boxes"] == [] and body["ext"] == "png"
    import base64

    restored = cv2.imdecode(np.frombuffer(base64.b64decode(body["image_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert restored.shape == (120, 160, 3)
    assert "wgfpgan_try_seconds_count 1.0" in client.get("/metrics").text


def test_try_restore_boxes_real_faces(client, shared_dir):
    photo = (shared_dir / "data" / "realworld" / "CodeFormer/inputs/whole_imgs/01.jpg").read_bytes()  # 4 faces
    response = client.post("/api/try/restore", files={"photo": ("group.jpg", photo, "image/jpeg")},
                           data={"upscale": "1", "weight": "0.5"})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["faces"] >= 3 and len(body["boxes"]) == body["faces"] and body["ext"] == "jpg"
    for box in body["boxes"]:
        assert 0 <= box["left"] < box["right"] <= body["input_width"] + 5
        assert 0 <= box["top"] < box["bottom"] <= body["input_height"] + 5


def huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, then a tiny IDAT: a decompression bomb's
    header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "payload", "status", "code", "says"),
    [
        ("empty.png", b"", 422, "empty", "empty"),
        ("notes.png", b"this is a text file, honest\n", 415, "not_an_image", "text"),
        ("page.jpg", b"<!doctype html><html><body>hi</body></html>", 415, "not_an_image", "HTML"),
        ("bomb.png", huge_png_header(100_000, 100_000), 413, "too_large", "pixels"),
        ("cut.png", png(synthetic_photo(64, 64, 1))[:300], 422, "truncated", ""),
    ],
)
def test_hostile_uploads_are_refused_with_a_reason(client, name, payload, status, code, says):
    response = client.post("/api/try/restore", files={"photo": (name, payload, "image/png")})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and name in body["detail"] and says.lower() in body["detail"].lower()


def test_too_many_bytes_are_refused_before_decoding(client):
    big = b"\x89PNG" + b"\0" * 400_000  # the client fixture's limit is 200 kB
    response = client.post("/api/try/restore", files={"photo": ("big.png", big, "image/png")})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert "0.2 MB" in response.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(50):
            yield b"x" * 10_000

    huge_json = client.post("/api/jobs", content=b'{"source": "' + b"a" * 2_000_000 + b'"}',
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert huge_json.status_code == 413 and huge_json.json()["code"] == "too_large"

    streamed = client.post(
        "/api/try/restore", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"


def test_missing_model_is_a_clear_503_without_paths(archive, tmp_path):
    from web.app import create_app

    settings = web_settings(archive.url, model_path=str(tmp_path / "no-such-model.pth"))
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/try/restore", files={"photo": ("a.png", png(synthetic_photo(40, 40, 1)))})
    assert response.status_code == 503 and response.json()["code"] == "model_unavailable"
    assert str(tmp_path) not in response.text


# --------------------------------------------------------------------------------------------- auth


def test_token_protects_everything_but_healthz(archive):
    from web.app import create_app

    with TestClient(create_app(web_settings(archive.url, api_token=TOKEN))) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/api/jobs", f"/api/jobs/{archive.job_id}/items", "/metrics", "/openapi.json", "/api/docs"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["code"] == "unauthorized" and refused.headers["www-authenticate"] == "Bearer"
        assert client.post(f"/api/jobs/{archive.job_id}/cancel").status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "<form" in page.text and TOKEN not in page.text
        assert client.get("/?token=wrong", headers={"Accept": "text/html"}).status_code == 401
        login = client.get(f"/jobs/{archive.job_id}?state=failed&token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == f"/jobs/{archive.job_id}?state=failed"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get(f"/jobs/{archive.job_id}").status_code == 200  # the cookie now rides along
        assert client.get("/api/jobs").status_code == 200  # and the pages' fetch() calls too


# -------------------------------------------------------------------------------------- metrics, pages


def test_metrics_from_the_status_database(client):
    text = client.get("/metrics").text
    assert 'wgfpgan_items{state="succeeded"} 3.0' in text
    assert 'wgfpgan_items{state="failed"} 1.0' in text
    assert "wgfpgan_queue_depth 2.0" in text and "wgfpgan_items_processed 4.0" in text
    assert 'wgfpgan_item_failures{reason="truncated"} 1.0' in text
    assert 'wgfpgan_jobs{state="active"} 1.0' in text
    assert 'wgfpgan_recent_item_seconds{kind="total",quantile="0.5"} 1.8' in text  # 0.8, 1.8, 2.8


def test_pages_render(client, archive):
    jobs = client.get("/")
    assert jobs.status_code == 200 and "family album" in jobs.text  # in the embedded initial JSON
    job = client.get(f"/jobs/{archive.job_id}", params={"has_error": "yes"})
    assert job.status_code == 200 and "truncated" in job.text and "album/p0.png" not in job.text
    item = client.get(f"/items/{archive.succeeded[0]}")
    assert item.status_code == 200 and "compare-range" in item.text
    assert client.get("/try").status_code == 200
    for page in (jobs, job, item):
        assert_no_internal_paths(page.text, archive)
    missing = client.get("/jobs/999", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "no job 999" in missing.text and "<html" in missing.text
    spec = client.get("/openapi.json").json()
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/items", "/api/jobs/{job_id}/cancel",
                 "/api/jobs/{job_id}/retry", "/api/items/{item_id}", "/api/try/restore"):  # fmt: skip
        assert path in spec["paths"], path


@pytest.mark.services
def test_paging_filters_cancel_and_metrics_on_postgresql(tmp_path, postgres_url):
    from web.app import create_app

    archive = build_archive(tmp_path, postgres_url)
    try:
        with TestClient(create_app(web_settings(postgres_url))) as client:
            url = f"/api/jobs/{archive.job_id}/items"
            first = client.get(url, params={"limit": 4}).json()
            rest = client.get(url, params={"limit": 4, "after": first["next_after"]}).json()
            everything = sorted([*archive.succeeded, archive.failed, *archive.queued])
            assert [i["id"] for i in first["items"] + rest["items"]] == everything
            assert rest["next_after"] is None
            assert [i["id"] for i in client.get(url, params={"faces": "none"}).json()["items"]] == [
                archive.succeeded[1]
            ]
            assert client.get(url, params={"has_error": True}).json()["items"][0]["error_code"] == "truncated"
            assert client.post(f"/api/jobs/{archive.job_id}/cancel").json()["cancelled"] == 2
            text = client.get("/metrics").text
            assert 'wgfpgan_items{state="cancelled"} 2.0' in text and "wgfpgan_queue_depth 0.0" in text
            assert_no_internal_paths(client.get("/api/jobs").text.replace("sqlite", ""), archive)
    finally:
        archive.database.dispose()


# ------------------------------------------------------------------------------------------------ cli


def test_serve_verb_is_light_and_refuses_an_open_bind_without_token(monkeypatch, capsys):
    code = (
        "import sys, web.cli; "
        "heavy = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'uvicorn', 'celery') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"

    from wgfpgan.cli import main

    monkeypatch.delenv("WGFPGAN_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "refusing to bind 0.0.0.0 without a token" in capsys.readouterr().err
