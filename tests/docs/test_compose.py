"""compose.yaml: serves the default image with the local API on loopback only, a models volume
where RunPod mounts network volumes, a GPU, and only settings the worker reads.

The shape is checked from the YAML itself (always), and from `docker compose config` (Compose's
own normalised model, with variable interpolation) when the Compose plugin is installed. That it
really serves jobs is tests/container/test_compose.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from handler.settings import Settings
from tests.integration.harness import REPO
from tests.support import skip_unless_required

COMPOSE_FILE = REPO / "compose.yaml"


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin), or None when it is not installed."""
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
    return ["docker", "compose"] if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def worker(compose: dict[str, Any]) -> dict[str, Any]:
    assert list(compose["services"]) == ["worker"], "compose.yaml serves one image"
    return compose["services"]["worker"]


def bake_default(name: str) -> str:
    bake = (REPO / "docker-bake.hcl").read_text(encoding="utf-8")
    match = re.search(rf'variable "{name}"\s*\{{[^}}]*?default\s*=\s*"([^"]*)"', bake, re.S)
    assert match, f"docker-bake.hcl has no default for {name}"
    return match.group(1)


def interpolation_default(value: str) -> str:
    """The default of a `${VAR:-default}` value (or the value itself)."""
    match = re.fullmatch(r"\$\{(?P<var>[A-Z_][A-Z0-9_]*)(:-(?P<default>[^}]*))?\}", value)
    return (match.group("default") or "") if match else value


def test_default_image_is_the_fp8_tag_bake_builds(worker: dict[str, Any]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert bake_default("VERSION") == version
    expected = f"{bake_default('IMAGE')}:{bake_default('VERSION')}-fp8"
    assert interpolation_default(worker["image"]) == expected


def test_it_serves_the_local_api_on_loopback_only(worker: dict[str, Any]) -> None:
    env = worker["environment"]
    assert env["SERVE_API"] == "true"
    container_port = int(env["SERVE_API_PORT"])
    published = []
    for port in worker["ports"]:
        match = re.fullmatch(r"(?P<ip>[0-9.]+):(?P<host>\$\{[^}]*\}|\d+):(?P<target>\d+)", port)
        assert match, f"{port}: expected HOST_IP:HOST_PORT:CONTAINER_PORT"
        assert match.group("ip") == "127.0.0.1", f"{port}: publish on loopback only"
        assert interpolation_default(match.group("host")).isdigit()
        published.append(int(match.group("target")))
    assert published == [container_port]
    # the API listens on every interface inside the container, or the published port reaches nothing
    assert env["SERVE_API_HOST"] == "0.0.0.0"


def test_every_variable_is_a_worker_setting(worker: dict[str, Any]) -> None:
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert sorted(set(worker["environment"]) - aliases) == []


def test_the_default_environment_is_a_valid_configuration(worker: dict[str, Any]) -> None:
    defaults = {key: interpolation_default(str(value)) for key, value in worker["environment"].items()}
    settings = Settings.from_env(defaults)
    assert settings.serve_api is True and settings.allow_downloads is False
    assert settings.model_set is None, "baked images know their set; MODEL_SET stays empty by default"


def test_models_volume_is_mounted_where_runpod_mounts_network_volumes(worker: dict[str, Any]) -> None:
    volume_path = str(Settings.from_env({}).runpod_volume)
    [volume] = worker["volumes"]
    source, target = volume.rsplit(":", 1)
    assert target == volume_path
    assert interpolation_default(source).startswith("./"), "a host folder next to compose.yaml by default"


def test_it_reserves_a_gpu(worker: dict[str, Any]) -> None:
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_the_healthcheck_asks_the_api_port(worker: dict[str, Any]) -> None:
    command = " ".join(worker["healthcheck"]["test"])
    port = worker["environment"]["SERVE_API_PORT"]
    assert f"http://127.0.0.1:{port}/" in command
    assert command.split()[1] == "/opt/worker/venv/bin/python", "the image's own Python, no curl needed"


def test_no_secret_has_a_value_in_the_file(worker: dict[str, Any]) -> None:
    for key in ("HF_TOKEN", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY"):
        assert interpolation_default(worker["environment"][key]) == "", f"{key} comes from the shell or .env"


def test_docker_compose_reads_it_as_intended(tmp_path: Path) -> None:
    """Compose's normalised model, with the variables a user sets for the slim image."""
    command = compose_command()
    if command is None:
        skip_unless_required("the Docker Compose plugin is not installed (.ci/install-docker.sh installs it)")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "WORKER_IMAGE": "registry.example/ltx2-runpod-worker:0.1.0-slim",
        "MODEL_SET": "fp8",
        "WORKER_PORT": "18000",
        "MODELS_VOLUME": str(tmp_path / "volume"),
        "HF_TOKEN": "hf_fromtheshell",
    }
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["worker"]
    assert service["image"] == env["WORKER_IMAGE"]
    assert service["environment"]["MODEL_SET"] == "fp8"
    assert service["environment"]["HF_TOKEN"] == "hf_fromtheshell"
    [port] = service["ports"]
    assert (port["host_ip"], str(port["published"]), port["target"]) == ("127.0.0.1", "18000", 8000)
    [volume] = service["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == (
        "bind",
        env["MODELS_VOLUME"],
        "/runpod-volume",
    )
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
