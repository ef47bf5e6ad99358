"""Settings read from the environment (12-factor); no torch, no database imports.

Every layer reads its configuration through `Settings.from_env()` so there is one place that knows
the variable names and their defaults.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "wgfpgan"


def default_data_dir() -> Path:
    """Folder for the embedded default's SQLite file and other per-user state."""
    return Path(os.environ.get("WGFPGAN_HOME") or user_data_dir(APP_NAME))


def default_database_url() -> str:
    return f"sqlite:///{default_data_dir() / 'wgfpgan.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    s3_endpoint_url: str | None
    model_path: str | None
    device: str
    # batch system (db/, scheduler/, worker/)
    queue: str = "wgfpgan"  # the Celery queue the scheduler sends chunks to
    chunk_size: int = 8  # item ids per Celery message
    lease_seconds: float = 900.0  # how long a claimed item stays reserved for its worker
    s3_max_attempts: int = 5  # botocore "standard" retry mode attempts per S3 request
    face_batch: int = 8  # faces per generator forward pass in a worker
    max_attempts: int = 3  # an item whose worker died this many times fails with `worker_lost`
    overlap_store: bool = False  # write + record one photo while restoring the next (GPU + remote S3)
    # web dashboard (web/)
    api_token: str | None = field(default=None, repr=False)  # protects everything but /healthz when set
    web_max_upload_bytes: int = 20_000_000  # the try page refuses bigger uploads before decoding

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("WGFPGAN_DATABASE_URL") or default_database_url(),
            broker_url=env.get("WGFPGAN_BROKER_URL") or "redis://127.0.0.1:6379/0",
            s3_endpoint_url=env.get("WGFPGAN_S3_ENDPOINT_URL") or None,
            model_path=env.get("WGFPGAN_MODEL") or None,
            device=env.get("WGFPGAN_DEVICE") or "cpu",
            queue=env.get("WGFPGAN_QUEUE") or "wgfpgan",
            chunk_size=int(env.get("WGFPGAN_CHUNK_SIZE") or 8),
            lease_seconds=float(env.get("WGFPGAN_LEASE_SECONDS") or 900),
            s3_max_attempts=int(env.get("WGFPGAN_S3_MAX_ATTEMPTS") or 5),
            face_batch=int(env.get("WGFPGAN_FACE_BATCH") or 8),
            max_attempts=int(env.get("WGFPGAN_MAX_ATTEMPTS") or 3),
            overlap_store=(env.get("WGFPGAN_OVERLAP_STORE") or "0").lower() in ("1", "true", "yes"),
            api_token=env.get("WGFPGAN_API_TOKEN") or None,
            web_max_upload_bytes=int(env.get("WGFPGAN_WEB_MAX_UPLOAD_BYTES") or 20_000_000),
        )


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")


def mask_url(text: str) -> str:
    """Hide the password of every `scheme://user:password@host` URL in `text`."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
