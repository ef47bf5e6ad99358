"""Interactive CLI commands (status, jobs, submit, cancel, retry, watch) give up on an unreachable status
database within seconds and name it (password masked), instead of retrying for two minutes; workers and
`reconcile` keep the long retry."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from db import DEFAULT_RETRY_SECONDS, INTERACTIVE_RETRY_SECONDS, Database
from wgfpgan.config import Settings

GIVE_UP_WITHIN_SECONDS = 10.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_interactive_commands_report_a_down_database_within_seconds(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://archivist:s3cret@127.0.0.1:{port}/status"
    env = {**os.environ, "WGFPGAN_DATABASE_URL": url, "OMP_NUM_THREADS": "1"}
    (tmp_path / "in").mkdir()
    commands = {
        "status": ["status", "1"],
        "jobs": ["jobs"],
        "submit": ["submit", str(tmp_path / "in"), "--out", str(tmp_path / "out")],
        "cancel": ["cancel", "1"],
        "retry": ["retry", "1"],
        "watch": ["watch", "1"],
    }
    started = time.monotonic()
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "wgfpgan.cli", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in commands.items()
    }
    results = {}
    for name, process in running.items():
        try:
            _, stderr = process.communicate(timeout=GIVE_UP_WITHIN_SECONDS + 20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        results[name] = (process.returncode, stderr, time.monotonic() - started)

    for name, (code, stderr, elapsed) in results.items():
        assert code not in (0, None), f"{name}: exit {code}"
        assert elapsed < GIVE_UP_WITHIN_SECONDS, f"{name} took {elapsed:.1f} s to give up"
        assert f"the status database postgresql+psycopg://archivist:***@127.0.0.1:{port}/status is unreachable" in (
            stderr
        ), f"{name}: {stderr}"
        assert "s3cret" not in stderr and "Traceback" not in stderr


def test_workers_and_services_keep_the_long_retry(tmp_path: Path) -> None:
    assert INTERACTIVE_RETRY_SECONDS <= 5 < DEFAULT_RETRY_SECONDS
    settings = dataclasses.replace(Settings.from_env(), database_url=f"sqlite:///{tmp_path / 's.sqlite3'}")
    database = Database.from_settings(settings, check=False)
    assert database.retry_seconds == DEFAULT_RETRY_SECONDS
    database.dispose()
