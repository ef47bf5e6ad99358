"""Fault injection under load: does the batch system lose or duplicate anything while workers die?

Everything runs on private, throw-away services (nothing shared is touched): a SeaweedFS (`weed mini`)
with bucket versioning (so every PutObject is counted), a redis-server, and a PostgreSQL cluster of
our own (initdb + pg_ctl; the machine's server with a scratch database if the binaries are missing).

1. chaos: one job of N small PNGs (default 10,000 32x32) through 2 `wgfpgan worker` processes while a
   worker is SIGKILLed (its whole process group) every ~K seconds (default 30) and restarted at once;
   `wgfpgan reconcile --loop` runs beside them. Reports throughput, attempts/retries, items in flight
   at each kill, S3 writes, re-writes of an output by a re-run attempt, and duplicate outputs (an output
   key written without an attempt to explain it, or a second output object for one item): must be 0.
2. S3 outage: a job of M photos through 2 workers with SeaweedFS stopped for ~30 s mid-job: reports
   failed items (must be 0), retries logged by the workers, and partial objects seen by a reader that
   polls the output prefix throughout (must be 0).

Prints a table and writes benchmarks/results/fault_injection.json.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/fault_injection.py [--items 10000] [--kill-every 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from faults_services import (  # noqa: E402
    OutputWatcher,
    PrivatePostgres,
    PrivateRedis,
    ReconcilerProcess,
    WorkerProcess,
    enable_write_counting,
    random_password,
    tiny_pngs,
    upload,
    wait_job_done,
    write_counts,
)

RESULTS = REPO / "benchmarks" / "results" / "fault_injection.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000, help="photos in the chaos job (0: skip)")
    parser.add_argument("--size", type=int, default=32, help="photo side in pixels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between worker kills")
    parser.add_argument("--outage-items", type=int, default=600, help="photos in the S3 outage job (0: skip)")
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--lease", type=float, default=30.0, help="WGFPGAN_LEASE_SECONDS for the workers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def tiny_model(folder: Path) -> Path:
    """The random-weight 64-px generator the tests use (tests/conftest.py TINY_CONFIG)."""
    import torch
    from conftest import TINY_CONFIG

    from model.checkpoint import save_generator
    from model.gfpgan_arch import GFPGANv1Clean

    torch.manual_seed(0)
    return save_generator(GFPGANv1Clean(**TINY_CONFIG), folder / "tiny.pth")


class Services:
    """SeaweedFS + Redis + PostgreSQL of our own, and the environment that points wgfpgan at them."""

    def __init__(self, root: Path, model: Path) -> None:
        from wgfpgan.seaweed import SeaweedServer

        self.root = root
        self.s3 = SeaweedServer(root / "seaweed").start()
        self.redis = PrivateRedis().start()
        self.postgres: PrivatePostgres | None = None
        if PrivatePostgres.missing() is None:
            self.postgres = PrivatePostgres().init().start()
            self.database_url = self.postgres.create_database("wgf_bench", random_password(), "wgf_faults")
        else:
            self.database_url = _scratch_database()
        from db.migrate import upgrade

        upgrade(self.database_url)
        self.env = {
            **self.s3.env(),
            "WGFPGAN_DATABASE_URL": self.database_url,
            "WGFPGAN_BROKER_URL": self.redis.url(),
            "WGFPGAN_MODEL": str(model),
            "OMP_NUM_THREADS": "1",
        }

    def close(self) -> None:
        self.s3.stop()
        self.redis.kill()
        if self.postgres is not None:
            self.postgres.destroy()


def _scratch_database() -> str:
    from sqlalchemy import create_engine

    admin_url = os.environ.get("WGFPGAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = "wgf_faults_" + uuid.uuid4().hex[:10]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return admin.url.set(database=name).render_as_string(hide_password=False)


def submit(env: dict[str, str], source: str, dest: str) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "wgfpgan.cli", "submit", source, "--out", dest, "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return json.loads(result.stdout)["id"]


def item_summary(database: Any, job_id: int, writes: dict[str, int], bucket: str, prefix: str) -> dict[str, Any]:
    """Attempts, retries, writes and duplicates of a finished job."""
    from db import queries

    items = []
    after = 0
    while batch := database.run(queries.list_items, job_id, after_id=after, limit=5000):
        items += batch
        after = batch[-1].id
    expected_keys = {f"{prefix}{item.rel_key}" for item in items}
    by_key = {f"{prefix}{item.rel_key}": item for item in items}
    unexplained = sum(max(0, n - by_key[key].attempts) for key, n in writes.items() if key in by_key)
    return {
        "items": len(items),
        "attempts": sum(item.attempts for item in items),
        "retried_items": sum(1 for item in items if item.attempts > 1),
        "writes": sum(writes.values()),
        "rewrites_by_reruns": sum(n - 1 for n in writes.values()),
        "unexplained_writes": unexplained,
        "stray_outputs": len(set(writes) - expected_keys),
        "missing_outputs": len(expected_keys - set(writes)),
        "duplicate_outputs": unexplained + len(set(writes) - expected_keys),
        "mean_total_seconds": sum(item.total_seconds or 0 for item in items) / max(1, len(items)),
    }


def chaos_run(args: argparse.Namespace, services: Services, work: Path) -> dict[str, Any]:
    from db import Database

    bucket = "chaos-" + uuid.uuid4().hex[:8]
    client = services.s3.client()
    client.create_bucket(Bucket=bucket)
    enable_write_counting(client, bucket)
    started = time.monotonic()
    upload(client, bucket, "in/", tiny_pngs(args.items, size=args.size), threads=16)
    env = {**services.env, "WGFPGAN_QUEUE": "chaos", "WGFPGAN_LEASE_SECONDS": str(args.lease),
           "WGFPGAN_CHUNK_SIZE": "8"}  # fmt: skip
    print(f"chaos: uploaded {args.items} photos in {time.monotonic() - started:.0f}s", flush=True)
    job_id = submit(env, f"s3://{bucket}/in/", f"s3://{bucket}/out/")
    database = Database(services.database_url)
    reconciler = ReconcilerProcess(env, work / "reconcile.log", interval=5, stale_after=args.lease).start()
    workers = [WorkerProcess(env, work / f"worker{i}.log").start() for i in range(args.workers)]
    peaks: list[float] = []
    kills: list[dict[str, Any]] = []
    started = time.monotonic()
    next_kill = started + args.kill_every
    try:
        while True:
            counts = _counts(database, job_id)
            if counts["queued"] == counts["running"] == 0:
                break
            if time.monotonic() >= next_kill:
                victim = len(kills) % len(workers)
                in_flight = counts["running"]
                peaks.append(workers[victim].peak_rss_mb())
                workers[victim].kill_all()
                workers[victim] = WorkerProcess(env, work / f"worker{victim}.log").start()
                kills.append({"at_seconds": round(time.monotonic() - started, 1), "worker": victim,
                              "running_items": in_flight, "done": counts["succeeded"]})  # fmt: skip
                print(f"chaos: t={kills[-1]['at_seconds']}s killed worker {victim} ({counts})", flush=True)
                next_kill += args.kill_every
            time.sleep(0.5)
        wall = time.monotonic() - started
        final = wait_job_done(database, job_id, 60)
    finally:
        peaks += [worker.peak_rss_mb() for worker in workers]
        for worker in workers:
            worker.terminate()
        reconciler.stop()
    writes = write_counts(client, bucket, "out/")
    summary = item_summary(database, job_id, writes, bucket, "out/")
    database.dispose()
    return {
        "items": args.items,
        "photo_size": args.size,
        "workers": args.workers,
        "kill_every_seconds": args.kill_every,
        "lease_seconds": args.lease,
        "counts": final,
        "wall_seconds": round(wall, 1),
        "throughput_items_per_s": round(args.items / wall, 2),
        "kills": kills,
        "worker_peak_rss_mb": round(max(peaks, default=0.0)),
        **summary,
    }


def outage_run(args: argparse.Namespace, services: Services, work: Path) -> dict[str, Any]:
    from db import Database

    bucket = "outage-" + uuid.uuid4().hex[:8]
    client = services.s3.client()
    client.create_bucket(Bucket=bucket)
    enable_write_counting(client, bucket)
    upload(client, bucket, "in/", tiny_pngs(args.outage_items, size=96, seed=1), threads=16)
    env = {**services.env, "WGFPGAN_QUEUE": "outage", "WGFPGAN_LEASE_SECONDS": "300", "WGFPGAN_CHUNK_SIZE": "8"}
    job_id = submit(env, f"s3://{bucket}/in/", f"s3://{bucket}/out/")
    database = Database(services.database_url)
    workers = [WorkerProcess(env, work / f"outage-worker{i}.log").start() for i in range(args.workers)]
    watcher = OutputWatcher(services.s3, bucket, "out/")
    started = time.monotonic()
    try:
        while _counts(database, job_id)["succeeded"] < args.outage_items // 4:
            time.sleep(0.2)
        watcher.start()
        before = _counts(database, job_id)
        services.s3.stop()
        down_at = time.monotonic()
        time.sleep(args.outage_seconds)
        during = _counts(database, job_id)
        services.s3.start()
        down = time.monotonic() - down_at
        print(f"outage: S3 down {down:.0f}s; done before {before['succeeded']}, during {during}", flush=True)
        final = wait_job_done(database, job_id, 900)
        wall = time.monotonic() - started
    finally:
        watcher.stop()
        for worker in workers:
            worker.terminate()
    logs = "".join(worker.log_text() for worker in workers)
    writes = write_counts(client, bucket, "out/")
    summary = item_summary(database, job_id, writes, bucket, "out/")
    database.dispose()
    return {
        "items": args.outage_items,
        "s3_down_seconds": round(down, 1),
        "counts": final,
        "failed_during_outage": during["failed"],
        "storage_retries_logged": logs.count("storage unavailable"),
        "items_handed_back": logs.count("handed back"),
        "outputs_checked_by_reader": watcher.checked,
        "partial_objects_seen": len(watcher.partial),
        "wall_seconds": round(wall, 1),
        **summary,
    }


def _counts(database: Any, job_id: int) -> dict[str, int]:
    from db import queries

    return database.run(queries.counts, job_id)


def table(results: dict[str, Any]) -> str:
    rows = []
    if chaos := results.get("chaos"):
        rows += [
            ("chaos: photos / workers / kill every", f"{chaos['items']} x {chaos['photo_size']}px / "
             f"{chaos['workers']} / {chaos['kill_every_seconds']:.0f}s"),
            ("chaos: succeeded / failed", f"{chaos['counts']['succeeded']} / {chaos['counts']['failed']}"),
            ("chaos: kills (items running then, all workers)", f"{len(chaos['kills'])} "
             f"({sum(k['running_items'] for k in chaos['kills'])})"),
            ("chaos: wall time, throughput", f"{chaos['wall_seconds']:.0f}s, {chaos['throughput_items_per_s']:.1f}/s"),
            ("chaos: attempts (retried items)", f"{chaos['attempts']} ({chaos['retried_items']})"),
            ("chaos: S3 writes (re-writes by re-runs)", f"{chaos['writes']} ({chaos['rewrites_by_reruns']})"),
            ("chaos: duplicate outputs / missing", f"{chaos['duplicate_outputs']} / {chaos['missing_outputs']}"),
            ("chaos: worker peak RSS", f"{chaos['worker_peak_rss_mb']} MB"),
        ]  # fmt: skip
    if outage := results.get("s3_outage"):
        rows += [
            ("S3 outage: photos, down for", f"{outage['items']}, {outage['s3_down_seconds']:.0f}s"),
            ("S3 outage: succeeded / failed", f"{outage['counts']['succeeded']} / {outage['counts']['failed']}"),
            ("S3 outage: retries logged / handed back", f"{outage['storage_retries_logged']} / "
             f"{outage['items_handed_back']}"),
            ("S3 outage: partial objects seen (reads)", f"{outage['partial_objects_seen']} "
             f"({outage['outputs_checked_by_reader']})"),
            ("S3 outage: duplicate outputs", str(outage["duplicate_outputs"])),
        ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="wgf-faults-"))
    services = Services(work, tiny_model(work))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }
    try:
        if args.items:
            results["chaos"] = chaos_run(args, services, work)
        if args.outage_items:
            results["s3_outage"] = outage_run(args, services, work)
    finally:
        services.close()
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    chaos, outage = results.get("chaos", {}), results.get("s3_outage", {})
    ok = all(
        [
            not chaos or (chaos["counts"]["succeeded"] == chaos["items"] and chaos["duplicate_outputs"] == 0),
            not outage or (outage["counts"]["failed"] == 0 and outage["partial_objects_seen"] == 0),
        ]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
