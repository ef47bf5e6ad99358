"""How fast the dashboard's pages and API stay with a million items in one job.

Builds a status DB (SQLite file by default, or --database-url for PostgreSQL) with a big job whose ids are
interleaved with a small second job (as with two concurrent submissions), items in realistic states,
consistent `job_counts`, then times each request through the real FastAPI app (TestClient, no network).

    python benchmarks/bench_web.py --items 1000000            # ~1 min to build on SQLite, then timings
    python benchmarks/bench_web.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench_web

Setup writes rows with bulk INSERTs (not through db/queries.py transitions: that would take hours); the
counters are then recomputed from the items table so the API sees a consistent database.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete, insert, select

from db import Database, Item, Job, JobCount
from db.migrate import upgrade
from db.models import utcnow
from db.queries import count_by_scan
from wgfpgan.config import Settings

ERROR_CODES = ("truncated", "not_an_image", "too_large", "worker_lost")


def pick_state(rng: random.Random) -> dict:
    roll = rng.random()
    if roll < 0.90:
        return {"state": "succeeded", "faces": 0 if rng.random() < 0.05 else rng.randint(1, 3),
                "total_seconds": rng.uniform(0.5, 3.0), "restore_seconds": rng.uniform(0.3, 2.0)}  # fmt: skip
    if roll < 0.92:
        code = rng.choice(ERROR_CODES)
        return {"state": "failed", "error_code": code, "error_message": f"{code}: details"}
    if roll < 0.97:
        return {"state": "queued"}
    return {"state": "cancelled"}


def build(database: Database, items: int, batch: int = 20_000) -> tuple[int, int]:
    rng = random.Random(0)
    now = utcnow()

    def create_jobs(session) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        ids = []
        for name in ("big", "small"):
            job = Job(name=name, source=f"s3://archive/{name}/", dest=f"s3://restored/{name}/", options={})
            session.add(job)
            session.flush()
            ids.append(job.id)
        return ids[0], ids[1]

    big, small = database.run(create_jobs)
    written = 0
    while written < items:
        rows = []
        for i in range(written, min(items, written + batch)):
            rows.append({"job_id": big, "rel_key": f"{i // 1000:04d}/{i:07d}.jpg",
                         "source_uri": f"s3://archive/big/{i // 1000:04d}/{i:07d}.jpg", "created_at": now,
                         "output_uri": None, **pick_state(rng)})  # fmt: skip
            if i % 1000 == 0:  # the other job's items land in between
                rows.append({"job_id": small, "rel_key": f"{i:07d}.png", "source_uri": f"s3://archive/small/{i}.png",
                             "created_at": now, "state": "queued"})  # fmt: skip
        for row in rows:
            row.setdefault("faces", None)
            row.setdefault("error_code", None)
            row.setdefault("error_message", None)
            row.setdefault("total_seconds", None)
            row.setdefault("restore_seconds", None)
        database.run(lambda session, rows=rows: session.execute(insert(Item), rows))
        written += batch

    def recount(session) -> None:  # type: ignore[no-untyped-def]
        session.execute(delete(JobCount))
        for job_id in (big, small):
            counts = count_by_scan(session, job_id)
            session.execute(insert(JobCount), [{"job_id": job_id, "state": s, "n": n} for s, n in counts.items()])

    database.run(recount)
    return big, small


def time_requests(client, paths: list[str], repeat: int = 5) -> list[tuple[str, float, int]]:  # type: ignore[no-untyped-def]
    results = []
    for path in paths:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(path)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
        results.append((path, statistics.median(samples), len(response.content)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(url)
        database = Database(url)
        started = time.perf_counter()
        big, small = build(database, args.items)
        print(f"built in {time.perf_counter() - started:.0f} s")
        deep = database.run(lambda s: s.scalar(select(Item.id).where(Item.job_id == big).order_by(Item.id.desc())))
        settings = dataclasses.replace(Settings.from_env(), database_url=url, api_token=None)
        with TestClient(create_app(settings, database=database)) as client:
            paths = [
                "/api/jobs",
                f"/api/jobs/{big}",
                f"/api/jobs/{big}/items?limit=50",
                f"/api/jobs/{big}/items?limit=50&after={deep - 500}",
                f"/api/jobs/{big}/items?limit=50&before={deep // 2}",
                f"/api/jobs/{big}/items?limit=50&state=failed",
                f"/api/jobs/{big}/items?limit=50&has_error=true&after={deep // 2}",
                f"/api/jobs/{big}/items?limit=50&faces=none",
                f"/api/jobs/{big}/items?limit=50&faces=some&after={deep // 2}",
                f"/api/jobs/{small}/items?limit=50",
                f"/api/jobs/{small}/items?limit=50&state=queued&after=0",
                f"/jobs/{big}",
                "/metrics",
            ]
            print(f"{'request':<70} {'median ms':>10} {'bytes':>8}")
            for path, seconds, size in time_requests(client, paths):
                print(f"{path:<70} {seconds * 1000:>10.1f} {size:>8}")
        database.dispose()


if __name__ == "__main__":
    main()
