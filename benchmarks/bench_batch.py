"""Throughput and overhead of the batch system against the bare model.

Measures, on this machine, with real services (a private SeaweedFS on loopback, a scratch PostgreSQL
database, Redis with a private queue):
  1. the Restorer in a plain loop over N photos (bytes in memory -> restore_bytes): seconds per photo;
  2. the whole system: `submit` of the same photos from S3 -> 1 and 2 Celery worker processes -> outputs
     in S3 and outcomes in PostgreSQL: photos/s, and the per-item overhead
       - end to end: wall seconds per photo with 1 worker minus the plain-loop seconds per photo (and
         minus the model seconds measured inside that same run, which a shared machine's load drift
         does not skew),
       - inside the worker: mean(total_seconds - restore_seconds) from the items table (claim, S3 read,
         S3 write, recording). Workers store one photo while restoring the next, so this is the latency
         a photo spends beyond the model, not its throughput cost (the end-to-end figures are that);
  3. the time to submit 20,000 S3 objects (listing + bulk insert + dispatching chunk messages).
Prints a table and writes benchmarks/results/bench_batch.json.

Model: --model, else WGFPGAN_MODEL, else the shipped default, else a random-weight generator with the
default model's configuration (configs/l1_pretrain.yaml: the same compute per face).

    OMP_NUM_THREADS=1 python benchmarks/bench_batch.py [--images 40] [--objects 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "bench_batch.json"
SHARED = Path(os.environ.get("WGFPGAN_SHARED", REPO.parent / "shared"))
POSTGRES_ADMIN_URL = os.environ.get("WGFPGAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WGFPGAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="photos per throughput run")
    parser.add_argument("--objects", type=int, default=20_000, help="S3 objects for the submit timing (0: skip)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--model", help="generator checkpoint (default: see module docstring)")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument(
        "--status-items", type=int, default=1_000_000, help="items in one job for the status timing (0: skip)"
    )
    parser.add_argument("--skip-system", action="store_true", help="only the submit and status timings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------- services


@contextmanager
def scratch_postgres():
    from sqlalchemy import create_engine

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = "wgf_bench_" + uuid.uuid4().hex[:10]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def model_path(args: argparse.Namespace, workdir: Path) -> tuple[str, str]:
    """(checkpoint path, description)."""
    if args.model or os.environ.get("WGFPGAN_MODEL"):
        path = args.model or os.environ["WGFPGAN_MODEL"]
        return path, f"given: {Path(path).name}"
    from model.checkpoint import DEFAULT_MODEL_PATH

    if DEFAULT_MODEL_PATH.is_file():
        return str(DEFAULT_MODEL_PATH), "shipped default"
    import torch
    import yaml

    from model.checkpoint import save_generator
    from model.gfpgan_arch import GFPGANv1Clean

    config = yaml.safe_load((REPO / "configs/l1_pretrain.yaml").read_text())["generator"]
    torch.manual_seed(0)
    path = save_generator(GFPGANv1Clean(**config), workdir / "default-config-random.pth")
    return str(path), f"random weights, default config {config['out_size']}px narrow {config['narrow']}"


def photos(n: int) -> dict[str, bytes]:
    faces = sorted((SHARED / "data/faces/val-512").glob("*.jpg"))
    if len(faces) < n:
        raise SystemExit(f"need {n} photos in {SHARED}/data/faces/val-512 (set WGFPGAN_SHARED)")
    return {f"batch/{path.name}": path.read_bytes() for path in faces[:n]}


# ------------------------------------------------------------------------------------------ measures


def plain_loop(model: str, files: dict[str, bytes]) -> dict[str, float]:
    from model import Restorer

    restorer = Restorer(model)
    restorer.restore_bytes(next(iter(files.values())))  # warm-up
    started = time.perf_counter()
    for key, data in files.items():
        restorer.restore_bytes(data, name=key)
    seconds = time.perf_counter() - started
    return {"seconds_per_image": seconds / len(files), "images_per_second": len(files) / seconds}


def start_workers(n: int, env: dict[str, str], logdir: Path) -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "wgfpgan.cli", "worker", "--concurrency", "1", "--loglevel", "WARNING"]
    return [
        subprocess.Popen(command, env=env, stdout=(logdir / f"worker{i}.log").open("wb"), stderr=subprocess.STDOUT)
        for i in range(n)
    ]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


def wait_done(database: Any, job_id: int, timeout: float = 1800) -> None:
    from db import queries

    deadline = time.monotonic() + timeout
    while True:
        job = database.run(queries.get_job, job_id)
        if queries.is_done(job, database.run(queries.counts, job_id)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not done after {timeout}s")
        time.sleep(0.05)  # fine-grained: the poll interval is part of the measured wall time


def system_run(settings: Any, bucket: str, files: dict[str, bytes], n_workers: int, env: dict, logdir: Path) -> dict:
    from db import Database, queries
    from scheduler.submit import job_options, submit

    database = Database(settings.database_url)
    workers = start_workers(n_workers, env, logdir)
    try:
        # warm-up: one small job so that every worker has loaded the model before timing
        warm = submit(settings, f"s3://{bucket}/warmup/", f"s3://{bucket}/warm-out-{n_workers}/", options=job_options())
        wait_done(database, warm.job_id)
        started = time.perf_counter()
        result = submit(settings, f"s3://{bucket}/batch/", f"s3://{bucket}/out-{n_workers}w/", options=job_options())
        submitted = time.perf_counter() - started
        wait_done(database, result.job_id)
        wall = time.perf_counter() - started
    finally:
        stop_workers(workers)
    items = database.run(queries.list_items, result.job_id, limit=100_000)
    counts = database.run(queries.counts, result.job_id)
    database.dispose()
    overheads = [i.total_seconds - i.restore_seconds for i in items if i.restore_seconds is not None]
    return {
        "workers": n_workers,
        "images": len(files),
        "counts": counts,
        "submit_seconds": submitted,
        "wall_seconds": wall,
        "images_per_second": len(files) / wall,
        "restore_seconds_mean": statistics.mean(i.restore_seconds for i in items if i.restore_seconds),
        "in_worker_overhead_ms_mean": 1000 * statistics.mean(overheads),
        "in_worker_overhead_ms_median": 1000 * statistics.median(overheads),
        "in_worker_overhead_ms_max": 1000 * max(overheads),
        "in_worker_overhead_ms_p95": 1000 * sorted(overheads)[int(0.95 * (len(overheads) - 1))],
    }


def submit_many(settings: Any, client: Any, bucket: str, n: int) -> dict:
    import redis

    from db import Database, queries
    from scheduler.submit import job_options, submit

    keys = [f"many/{i // 1000:03d}/img{i:06d}.jpg" for i in range(n)]
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    upload = time.perf_counter() - started
    started = time.perf_counter()
    result = submit(settings, f"s3://{bucket}/many/", f"s3://{bucket}/many-out/", options=job_options())
    seconds = time.perf_counter() - started
    database = Database(settings.database_url)
    counts = database.run(queries.counts, result.job_id)
    database.run(queries.cancel_job, result.job_id)  # nobody processes these
    database.dispose()
    messages = redis.Redis.from_url(settings.broker_url).delete(settings.queue)
    return {
        "objects": n,
        "upload_seconds": upload,
        "submit_seconds": seconds,
        "items_registered": counts["queued"],
        "items_dispatched": result.dispatched,
        "chunk_size": settings.chunk_size,
        "queue_keys_deleted": messages,
    }


def status_at_scale(database_url: str, n: int) -> dict:
    """`wgfpgan status --json` on a job of `n` items (rows generated server-side; the timed part is
    the status command and a few transitions through the normal queries)."""
    from sqlalchemy import text

    from db import Database, queries

    database = Database(database_url)
    job, _ = database.run(queries.get_or_create_job, name="scale", source="s3://x/in/", dest="s3://x/out/", options={})
    started = time.perf_counter()
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (job_id, rel_key, source_uri, state, attempts, created_at) "
                "SELECT :job, 'k' || g, 's3://x/in/k' || g, 'queued', 0, now() FROM generate_series(1, :n) g"
            ),
            {"job": job.id, "n": n},
        )
        conn.execute(
            text("UPDATE job_counts SET n = :n WHERE job_id = :job AND state = 'queued'"), {"job": job.id, "n": n}
        )
        conn.exec_driver_sql("ANALYZE items")
    generate = time.perf_counter() - started
    database.run(queries.finish_submission, job.id)
    first = database.run(queries.queued_ids, job.id, limit=5)
    transition = []
    for item_id in first:
        t0 = time.perf_counter()
        claim = database.run(queries.claim_item, item_id, worker_id="bench", lease_seconds=60)
        database.run(queries.record_failure, claim, code="bench", message="scale probe")
        transition.append(time.perf_counter() - t0)
    timings = []
    env = {**os.environ, "WGFPGAN_DATABASE_URL": database_url}
    for _ in range(3):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "wgfpgan.cli", "status", str(job.id), "--json"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        timings.append(time.perf_counter() - t0)
    counts = json.loads(out.stdout)["counts"]
    t0 = time.perf_counter()
    database.run(queries.counts, job.id)
    counts_query = time.perf_counter() - t0
    t0 = time.perf_counter()
    scanned = database.run(queries.count_by_scan, job.id)
    scan = time.perf_counter() - t0
    database.dispose()
    assert scanned == counts, (scanned, counts)
    return {
        "items": n,
        "generate_seconds": generate,
        "status_cli_seconds_median": statistics.median(timings),
        "counts_query_ms": 1000 * counts_query,
        "count_by_full_scan_ms": 1000 * scan,
        "claim_plus_record_ms_median": 1000 * statistics.median(transition),
        "counts": counts,
    }


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from db.migrate import upgrade
    from wgfpgan.config import Settings
    from wgfpgan.seaweed import SeaweedServer

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "omp_num_threads": os.environ["OMP_NUM_THREADS"],
    }
    with tempfile.TemporaryDirectory(prefix="wgf-bench-") as tmp, scratch_postgres() as database_url:
        workdir = Path(tmp)
        model, model_note = model_path(args, workdir)
        report["model"] = model_note
        files = photos(args.images)
        if not args.skip_system:
            print(f"model: {model_note}; {len(files)} photos; plain loop...", flush=True)
            report["plain_loop"] = plain_loop(model, files)

        server = SeaweedServer(workdir / "seaweedfs").start()
        try:
            upgrade(database_url)
            env = {
                **os.environ,
                **server.env(),
                "WGFPGAN_DATABASE_URL": database_url,
                "WGFPGAN_BROKER_URL": REDIS_URL,
                "WGFPGAN_QUEUE": "wgf-bench-" + uuid.uuid4().hex[:8],
                "WGFPGAN_MODEL": model,
                "WGFPGAN_CHUNK_SIZE": str(args.chunk_size),
            }
            os.environ.update(env)
            settings = Settings.from_env()
            client = server.client()
            bucket = "bench"
            client.create_bucket(Bucket=bucket)
            for key, data in files.items():
                client.put_object(Bucket=bucket, Key=key, Body=data)
            for i, data in enumerate(list(files.values())[:4]):
                client.put_object(Bucket=bucket, Key=f"warmup/w{i}.jpg", Body=data)

            report["system"] = []
            for n_workers in (int(n) for n in args.workers.split(",") if not args.skip_system):
                print(f"system with {n_workers} worker(s)...", flush=True)
                report["system"].append(system_run(settings, bucket, files, n_workers, env, workdir))
            if report["system"]:  # again: on a shared machine the load drifts; use the mean of both
                print("plain loop again...", flush=True)
                before, after = report["plain_loop"], plain_loop(model, files)
                mean = (before["seconds_per_image"] + after["seconds_per_image"]) / 2
                report["plain_loop"] = {
                    "seconds_per_image": mean,
                    "images_per_second": 1 / mean,
                    "seconds_per_image_before_after": [before["seconds_per_image"], after["seconds_per_image"]],
                }
            one = next((run for run in report["system"] if run["workers"] == 1), None)
            if one:
                per_image = one["wall_seconds"] / one["images"]
                plain = report["plain_loop"]["seconds_per_image"]
                same_run_model = one["restore_seconds_mean"]
                report["overhead"] = {
                    "end_to_end_ms_per_item": 1000 * (per_image - plain),
                    "end_to_end_percent_of_model": 100 * (per_image - plain) / plain,
                    # the same difference against the model time measured inside the system run, which
                    # removes the drift of a shared machine's load between the two measurements
                    "end_to_end_vs_same_run_model_ms": 1000 * (per_image - same_run_model),
                    "end_to_end_vs_same_run_model_percent": 100 * (per_image - same_run_model) / same_run_model,
                    "in_worker_ms_per_item": one["in_worker_overhead_ms_mean"],
                    "in_worker_percent_of_model": 100 * one["in_worker_overhead_ms_mean"] / 1000 / plain,
                }
            if args.objects:
                print(f"submit of {args.objects} S3 objects...", flush=True)
                report["submit_many"] = submit_many(
                    dataclasses.replace(settings, chunk_size=args.chunk_size), client, bucket, args.objects
                )
            if args.status_items:
                print(f"status of a job with {args.status_items} items...", flush=True)
                report["status_at_scale"] = status_at_scale(database_url, args.status_items)
        finally:
            server.stop()

    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    rows: list[tuple[str, str]] = []
    if "plain_loop" in report:
        plain = report["plain_loop"]
        spread = " / ".join(f"{x:.3f}" for x in plain.get("seconds_per_image_before_after", []))
        rows.append(("plain loop: s / photo (before / after)", f"{plain['seconds_per_image']:.3f} ({spread})"))
        rows.append(("plain loop: photos / s", f"{plain['images_per_second']:.2f}"))
    for run in report.get("system", []):
        label = f"system, {run['workers']} worker(s)"
        rows.append((f"{label}: photos / s", f"{run['images_per_second']:.2f}"))
        overhead = " / ".join(
            f"{run[f'in_worker_overhead_ms_{stat}']:.1f}" for stat in ("mean", "median", "p95", "max")
        )
        rows.append((f"{label}: in-worker overhead ms (mean / median / p95 / max)", overhead))
    if "overhead" in report:
        o = report["overhead"]
        for label, ms, percent in (
            ("per-item overhead end to end, 1 worker", "end_to_end_ms_per_item", "end_to_end_percent_of_model"),
            (
                "per-item overhead end to end vs model time in the same run",
                "end_to_end_vs_same_run_model_ms",
                "end_to_end_vs_same_run_model_percent",
            ),
            ("per-item overhead in worker", "in_worker_ms_per_item", "in_worker_percent_of_model"),
        ):
            rows.append((f"{label} (ms, % of model)", f"{o[ms]:.1f} ({o[percent]:.1f}%)"))
    if "submit_many" in report:
        many = report["submit_many"]
        rows.append((f"submit {many['objects']} S3 objects (s)", f"{many['submit_seconds']:.1f}"))
    if "status_at_scale" in report:
        scale = report["status_at_scale"]
        label = f"job of {scale['items']:,} items"
        rows.append((f"{label}: `wgfpgan status --json` (s, whole CLI)", f"{scale['status_cli_seconds_median']:.2f}"))
        rows.append((f"{label}: counts query / full count scan (ms)",
                     f"{scale['counts_query_ms']:.1f} / {scale['count_by_full_scan_ms']:.0f}"))  # fmt: skip
        rows.append((f"{label}: claim + record one item (ms)", f"{scale['claim_plus_record_ms_median']:.1f}"))
    table = Table(title=f"batch system vs plain loop ({report['model']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
