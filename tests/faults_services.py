"""Throw-away services and worker processes for the fault-injection tests (tests/test_faults_*.py,
tests/test_secrets.py, tests/test_hostile_*.py) and benchmarks/fault_injection.py.

- `PrivateRedis`: a redis-server of our own on a free loopback port, killed and restarted EMPTY at will
  (the machine's Redis, which other engineers use, is never touched).
- `PrivatePostgres`: a PostgreSQL cluster of our own (initdb + pg_ctl run as the `postgres` user) on a
  free loopback port with password (SCRAM) authentication over TCP, restarted at will.
- `WorkerProcess`: a real `wgfpgan worker` (Celery) subprocess in its own session, so the whole worker
  (main process + pool children) can be killed like a machine dying; its memory is sampled from /proc.
- `ReconcilerProcess`: `wgfpgan reconcile --loop`.
- `enable_write_counting` / `write_counts`: S3 bucket versioning on SeaweedFS turns every PutObject into a
  version, so the number of times each output key was written is exact (duplicates are countable).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wgfpgan.seaweed import free_port

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------- Redis


class PrivateRedis:
    """`redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`: nothing survives a restart."""

    def __init__(self, port: int | None = None, password: str | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("redis-server") else "redis-server binary not found"

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 20, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url(), socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: every queued and unacked message is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart_empty(self, down_seconds: float = 0.0) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url())


# ---------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A throw-away cluster owned by the `postgres` OS user in a temp dir; TCP on 127.0.0.1 only with
    SCRAM passwords, the admin connection over a private Unix socket (trust)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="wgf-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    @staticmethod
    def missing() -> str | None:
        if postgres_bin_dir() is None:
            return "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
        if shutil.which("runuser") is None:
            return "runuser not found (initdb must run as the postgres user)"
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` OS user to own a throw-away cluster"
        return None

    def _as_postgres(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> PrivatePostgres:
        assert self.bin is not None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        return self

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c shared_buffers=16MB -c max_connections=60 -c full_page_writes=off"
        )
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                          "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds: float, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}&port={self.port}"

    def create_database(self, user: str, password: str, database: str) -> str:
        """A login role with a password owning a new database; returns its TCP URL (password inside)."""
        from sqlalchemy import create_engine

        admin = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                literal = password.replace("'", "''").replace("%", "%%")  # driver placeholders
                conn.exec_driver_sql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{literal}'")
                conn.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER "{user}"')
        finally:
            admin.dispose()
        from urllib.parse import quote

        return f"postgresql+psycopg://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def random_password() -> str:
    """A password with URL-special characters (they must be quoted in the URL and masked everywhere)."""
    return "Pw-" + secrets.token_hex(6) + "!#%&*" + secrets.token_hex(6)


# ------------------------------------------------------------------------------------------- workers


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, MB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemorySampler:
    """Samples the peak RSS (VmHWM) of a process and all its descendants every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set() and Path(f"/proc/{self.pid}").exists():
            for pid in process_tree(self.pid):
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak_rss_mb(pid))
            self._stop.wait(self.interval)

    def peak_mb(self) -> float:
        """The largest peak RSS of any single process of the tree seen so far."""
        return max(self.peaks.values(), default=0.0)


class WorkerProcess:
    """A `wgfpgan worker` subprocess in its own process group; its memory is sampled."""

    def __init__(self, env: dict[str, str], log_path: Path, *, concurrency: int = 1, loglevel: str = "INFO") -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.process: subprocess.Popen | None = None
        self.memory: MemorySampler | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wgfpgan.cli", "worker", "--concurrency", str(self.concurrency),
                 "--loglevel", self.loglevel],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            )  # fmt: skip
        self.memory = MemorySampler(self.process.pid).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool_children(self) -> list[int]:
        return process_tree(self.pid)[1:] if self.alive() else []

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of any process of this worker seen so far."""
        return self.memory.peak_mb() if self.memory else 0.0

    def kill_all(self) -> None:
        """SIGKILL the whole worker (main process and pool children), like the machine dying."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM (warm shutdown); returns the seconds until the worker exited."""
        started = time.monotonic()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
                raise
        with contextlib.suppress(ProcessLookupError, PermissionError):  # orphaned pool children, if any
            os.killpg(self.pid, signal.SIGKILL)
        return time.monotonic() - started

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ReconcilerProcess:
    """`wgfpgan reconcile --loop INTERVAL --stale-after S` as a service."""

    def __init__(self, env: dict[str, str], log_path: Path, *, interval: float = 2, stale_after: float = 8) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.args = ["--loop", str(interval), "--stale-after", str(stale_after)]
        self.process: subprocess.Popen | None = None

    def start(self) -> ReconcilerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wgfpgan.cli", "reconcile", *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ------------------------------------------------------------------------------------------------ S3


def enable_write_counting(client: Any, bucket: str) -> None:
    """Turn on versioning: from now on every PutObject on the bucket leaves a version behind."""
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def write_counts(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    """How many times each key under `prefix` was written (versions per key)."""
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


# ------------------------------------------------------------------------------------ jobs and photos


def face_photos(shared_dir: Path, n: int, size: int = 160) -> dict[str, bytes]:
    """`n` JPEG face photos (real faces from the shared validation set, resized), keyed `faces/NNNN.jpg`."""
    import io

    from PIL import Image

    sources = sorted((shared_dir / "data/faces/val-512").glob("*.jpg"))
    photos = {}
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as img:
            small = img.convert("RGB").resize((size, size), Image.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=85 + i % 10)  # distinct bytes per item
        photos[f"faces/{i:04d}.jpg"] = buffer.getvalue()
    return photos


def tiny_pngs(n: int, size: int = 32, seed: int = 0) -> dict[str, bytes]:
    """`n` small random PNGs keyed `tiny/NNNNN.png` (no faces: the cheapest real item)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = {}
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
        photos[f"tiny/{i:05d}.png"] = buffer.getvalue()
    return photos


def upload(client: Any, bucket: str, prefix: str, files: dict[str, bytes], threads: int = 8) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=prefix + kv[0], Body=kv[1]), files.items()))


def job_counts(database: Any, job_id: int) -> dict[str, int]:
    from db import queries

    return database.run(queries.counts, job_id)


def wait_job_done(database: Any, job_id: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> dict:
    """Wait until no item of the job is queued or running; returns the counts. Fails early if `alive()`
    turns False (e.g. the worker died)."""
    from db import queries

    deadline = time.monotonic() + timeout
    while True:
        job = database.run(queries.get_job, job_id)
        counts = database.run(queries.counts, job_id)
        if queries.is_done(job, counts):
            return counts
        if not alive():
            raise AssertionError(f"a process died before job {job_id} was done: {counts}")
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not done after {timeout:.0f}s: {counts}")
        time.sleep(0.5)


def running_by_pid(database: Any, job_id: int) -> dict[int, list[int]]:
    """{pid: [item ids it holds running]} from the items' worker ids (host:pid)."""
    from db import ItemState, queries

    held: dict[int, list[int]] = {}
    for item in database.run(queries.list_items, job_id, state=ItemState.RUNNING, limit=10_000):
        pid = (item.worker_id or "").rpartition(":")[2]
        if pid.isdigit():
            held.setdefault(int(pid), []).append(item.id)
    return held


class OutputWatcher:
    """Reads every object under a prefix over and over; any that is not a complete image (or whose bytes
    do not match their ETag) is recorded as partial."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        import boto3
        from botocore.config import Config

        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                        connect_timeout=1, read_timeout=5)  # fmt: skip
        self.client = boto3.client(
            "s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key, region_name=s3.region, config=config,
        )  # fmt: skip
        self.bucket, self.prefix = bucket, prefix
        self.checked = 0
        self.partial: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for obj in self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", []):
                    self._check(obj["Key"])
            except Exception:  # the store is down: nothing is visible, nothing to check
                self._stop.wait(0.3)

    def _check(self, key: str) -> None:
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        data = response["Body"].read()
        etag = response["ETag"].strip('"')
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
            complete = "-" in etag or hashlib.md5(data).hexdigest() == etag
        except Exception:
            complete = False
        self.checked += 1
        if not complete:
            self.partial.append(key)
