"""Secrets never leak: a PostgreSQL password (a role of a throw-away cluster with SCRAM auth), a Redis
password (a throw-away redis-server with requirepass) and the S3 secret key are given only through the
environment or an AWS credentials file; then every command — db upgrade, submit, worker (DEBUG logs),
status/jobs/watch, cancel, retry, reconcile (once and --loop), and the same commands while a service is
down — runs as a real subprocess. Every byte they print or log, the process command lines, every row of
every table and every Redis value is searched for the secrets: zero hits. The database URL must show
up masked (`:***@`) where it is shown at all."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from faults_services import (
    PrivatePostgres,
    PrivateRedis,
    ReconcilerProcess,
    WorkerProcess,
    random_password,
    tiny_pngs,
    upload,
    wait_for,
    wait_job_done,
)

from db import Database
from db import queries as q

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Transcript:
    """Runs CLI commands as subprocesses and keeps everything they print."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []

    def run(self, *argv: str, expect: int | None = 0, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "wgfpgan.cli", *argv], env=env or self.env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        text = result.stdout + result.stderr
        self.outputs.append(f"$ wgfpgan {' '.join(argv)}\n{text}")
        if expect is not None:
            assert result.returncode == expect, text[-3000:]
        return text


def dump_tables(url: str) -> str:
    """Every row of every table of the database, as text."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = []
            for table in inspect(conn).get_table_names():
                rows += [f"{table}: {row}" for row in conn.exec_driver_sql(f'SELECT t::text FROM "{table}" t')]
            return "\n".join(rows)
    finally:
        engine.dispose()


def dump_redis(broker: PrivateRedis) -> str:
    client = broker.client()
    values = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"list":
            values += client.lrange(key, 0, -1)
        elif kind == b"hash":
            values += [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == b"zset":
            values += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"string":
            values.append(client.get(key))
        values.append(key)
    return b"\n".join(values).decode("utf-8", "replace")


def test_no_secret_is_printed_logged_or_stored(tiny_model_path, seaweedfs, s3_bucket, tmp_path: Path) -> None:
    for reason in (PrivatePostgres.missing(), PrivateRedis.missing()):
        if reason:
            pytest.skip(reason)
    db_password, redis_password = random_password(), "Rds-" + uuid.uuid4().hex
    s3_secret = seaweedfs.secret_key
    secrets = {db_password, quote(db_password, safe=""), redis_password, s3_secret}
    cluster = PrivatePostgres().init().start()
    broker = PrivateRedis(password=redis_password).start()
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {seaweedfs.access_key}\naws_secret_access_key = {s3_secret}\n"
    )
    credentials.chmod(0o600)
    try:
        url = cluster.create_database("wgf_secret_role", db_password, "wgf_secrets")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WGFPGAN_"))},
            "WGFPGAN_DATABASE_URL": url,
            "WGFPGAN_BROKER_URL": broker.url(),
            "WGFPGAN_S3_ENDPOINT_URL": seaweedfs.endpoint_url,
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),  # S3 keys from a config file, not the env
            "AWS_DEFAULT_REGION": seaweedfs.region,
            "WGFPGAN_QUEUE": "wgf-secrets",
            "WGFPGAN_MODEL": str(tiny_model_path),
            "WGFPGAN_LEASE_SECONDS": "5",
            "OMP_NUM_THREADS": "1",
        }
        worker_env = {**env, "AWS_ACCESS_KEY_ID": seaweedfs.access_key, "AWS_SECRET_ACCESS_KEY": s3_secret}
        worker_env.pop("AWS_SHARED_CREDENTIALS_FILE")  # the worker takes them from the environment
        files = tiny_pngs(12, size=24)
        files["broken.jpg"] = b"<html>not a photo</html>"
        upload(seaweedfs.client(), s3_bucket, "in/", files)
        source, dest = f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out/"
        cli = Transcript(env)

        cli.run("status", "1", expect=2)  # not migrated: the message names the database
        cli.run("db", "upgrade")
        cli.run("db", "current", expect=None)
        cli.run("submit", source, "--out", dest, "--name", "secrets")
        worker = WorkerProcess(worker_env, tmp_path / "worker.log", loglevel="DEBUG").start()
        reconciler = ReconcilerProcess(env, tmp_path / "reconcile.log", interval=1, stale_after=1).start()
        database = Database(url)
        try:
            counts = wait_job_done(database, 1, 240, worker.alive)
            assert counts["succeeded"] == 12 and counts["failed"] == 1
            command_lines = [
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                for pid in [worker.pid, *worker.pool_children(), reconciler.process.pid]
            ]
            for argv in (("status", "1"), ("status", "1", "--json", "--failed"), ("status", "1", "--failed"),
                         ("jobs",), ("jobs", "--json"), ("watch", "1", "--interval", "0.2"), ("reconcile",),
                         ("retry", "1", "--failed"), ("cancel", "1")):  # fmt: skip
                cli.run(*argv)
            wait_for(lambda: database.run(q.counts, 1)["running"] == 0, 60, "the retried item to settle")
            # Outages: the commands report them, with the URLs masked.
            broker.kill()
            cli.run("submit", source, "--out", dest, expect=None)
            cli.run("retry", "1", expect=None)
            broker.start()
            cluster.stop()  # commands wait for the database (retrying, logging masked warnings)
            waiting = [threading.Thread(target=cli.run, args=argv) for argv in (("status", "1"), ("jobs",))]
            for thread in waiting:
                thread.start()
            reconcile_log = tmp_path / "reconcile.log"
            wait_for(lambda: "database unavailable" in reconcile_log.read_text(), 60, "the reconciler to retry")
            time.sleep(3)  # the waiting commands meet the outage too
            cluster.start()
            for thread in waiting:
                thread.join(timeout=120)
            cli.run("status", "1")
        finally:
            worker.terminate()
            reconciler.stop()
            database.dispose()
        rows = dump_tables(url)
        stored = dump_redis(broker)
    finally:
        broker.kill()
        cluster.destroy()

    logs = worker.log_text() + (tmp_path / "reconcile.log").read_text()
    printed = "\n".join(cli.outputs)
    haystacks = {"command output": printed, "worker/reconciler logs": logs, "database rows": rows,
                 "redis contents": stored, "process command lines": "\n".join(command_lines)}  # fmt: skip
    leaks = [(where, secret[:6] + "...") for where, text in haystacks.items() for secret in secrets if secret in text]
    assert leaks == [], leaks
    # The URLs were really shown (masked), and the database really holds the job: the search was not vacuous.
    assert "wgf_secret_role:***@127.0.0.1" in logs and "wgf_secret_role:***@" in printed
    assert "service unavailable" in printed and "database unavailable" in logs
    assert "items:" in rows and f"s3://{s3_bucket}/out/" in rows and len(logs) > 5000
    print(f"\nsecrets: searched {len(printed) + len(logs)} chars of output/logs, {rows.count(chr(10)) + 1} rows")
