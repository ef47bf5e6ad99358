"""Deployment files: docker-compose.yml and infra/k8s are valid and keep their promises (loopback-only
ports, secrets only from the environment, AOF Redis, healthchecks, a GPU variant, queue-length scaling).
No Docker engine runs here; `docker compose config` (or docker-compose v1) validates when installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wgfpgan.config import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DUMMY_SECRETS = {
    "POSTGRES_PASSWORD": "pw-for-test",
    "S3_ACCESS_KEY": "ak-for-test",
    "S3_SECRET_KEY": "sk-for-test",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_whole_stack(compose: dict) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "seaweedfs", "migrate", "worker", "worker-gpu", "reconciler", "cli"} <= set(services)
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    for name in ("redis", "postgres", "seaweedfs", "worker", "worker-gpu"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["wgfpgan", "db", "upgrade"]
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    [device] = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "cuda" in services["worker-gpu"]["command"]


def test_compose_publishes_only_on_loopback_and_holds_no_secrets(compose: dict) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    text = COMPOSE.read_text()
    for variable in DUMMY_SECRETS:
        assert f"${{{variable}:?" in text  # required from the environment, no default value
    weed = " ".join(compose["services"]["seaweedfs"]["command"])
    assert "-s3.config=" in weed and "$$S3_SECRET_KEY" in weed


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env = {**os.environ, **DUMMY_SECRETS}
    ok = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bare = {k: v for k, v in os.environ.items() if k not in DUMMY_SECRETS}
    missing = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=bare, capture_output=True, text=True)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr + missing.stdout


def test_kubernetes_manifests() -> None:
    documents = [
        doc for path in sorted((REPO / "infra/k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
    ]
    by_kind: dict[str, list[dict]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert {"Namespace", "ConfigMap", "Job", "Deployment", "ScaledObject"} <= set(by_kind)
    workers = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "wgfpgan-worker-gpu"]
    [container] = workers[0]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert workers[0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    [scaled] = by_kind["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "wgfpgan-worker-gpu"
    [trigger] = scaled["spec"]["triggers"]
    assert (
        trigger["type"] == "redis" and trigger["metadata"]["listName"] == Settings.__dataclass_fields__["queue"].default
    )
    [config] = by_kind["ConfigMap"]
    assert not any("PASSWORD" in key or "SECRET" in key for key in config["data"])
