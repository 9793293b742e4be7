"""compose.yaml really serves an image that `docker buildx bake` built: `docker compose up --wait`
becomes healthy, `/runsync` on the published loopback port completes a job, and the slim image
finds its models in the host folder compose mounts as the network volume.

The only change for this machine is an override file that drops the GPU reservation and runs
ComfyUI on the CPU (no GPU here); everything else is compose.yaml as users run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.container import rig
from tests.container.conftest import JOB_TIMEOUT, BakedImages, smoke_workflow
from tests.docs.test_compose import COMPOSE_FILE, compose_command
from tests.support import free_port, skip_unless_required

pytestmark = [pytest.mark.container, pytest.mark.slow]

CPU_OVERRIDE = """\
services:
  worker:
    deploy: !reset {}
    environment:
      COMFYUI_CPU: "true"
    healthcheck:
      interval: 1s
"""
UP_TIMEOUT = 300


def compose_env(image: str, port: int, volume: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}
    return {**keep, "WORKER_IMAGE": image, "WORKER_PORT": str(port), "MODELS_VOLUME": str(volume), **extra}


class ComposeProject:
    def __init__(self, directory: Path, name: str, env: dict[str, str]) -> None:
        command = compose_command()
        assert command is not None
        override = directory / "compose.cpu.yaml"
        override.write_text(CPU_OVERRIDE)
        self.base = [*command, "-p", name, "-f", str(COMPOSE_FILE), "-f", str(override)]
        self.env = env
        self.directory = directory

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.directory,
        )

    def logs(self) -> str:
        return self.run("logs", "--no-color").stdout[-6000:]

    def runsync(self, job_input: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.env['WORKER_PORT']}/runsync",
            data=json.dumps({"input": job_input}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=JOB_TIMEOUT) as response:
            return json.loads(response.read())


@pytest.fixture
def project_factory(tmp_path: Path) -> Iterator[Any]:
    if compose_command() is None:
        skip_unless_required(
            "the Docker Compose plugin is not installed (Debian: docker-compose from trixie, "
            "which provides `docker compose`; .ci/install-docker.sh installs it)"
        )
    started: list[ComposeProject] = []

    def start(image: str, volume: Path, **extra: str) -> ComposeProject:
        name = f"ltx2-compose-test-{os.getpid()}-{len(started)}"
        project = ComposeProject(tmp_path, name, compose_env(image, free_port(), volume, **extra))
        started.append(project)
        up = project.run(
            "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT), timeout=UP_TIMEOUT + 60
        )
        assert up.returncode == 0, f"docker compose up failed:\n{up.stderr}\n{project.logs()}"
        return project

    yield start
    for project in started:
        project.run("down", "--volumes", "--timeout", "30")


def sources(output: dict[str, Any]) -> dict[str, str]:
    return {f["file"]: f["source"] for f in output["models"]["files"]}


def test_compose_serves_the_fp8_image_on_loopback(
    baked_images: BakedImages, project_factory: Any, tmp_path: Path
) -> None:
    project = project_factory(baked_images.refs["fp8"], tmp_path / "volume")

    answer = project.runsync({"workflow": smoke_workflow(color=0x2468AC)})

    assert answer["status"] == "COMPLETED", f"{answer}\n{project.logs()}"
    output = answer["output"]
    assert [item["mime"] for item in output["outputs"]] == ["image/png"]
    assert sources(output) == {f.relpath: "baked" for f in rig.set_files("fp8")}
    ports = project.run("port", "worker", "8000").stdout.strip()
    assert ports.startswith("127.0.0.1:"), ports


def test_compose_gives_the_slim_image_its_models_from_the_host_folder(
    baked_images: BakedImages, project_factory: Any, tmp_path: Path
) -> None:
    volume = tmp_path / "runpod-volume"
    for f in rig.set_files("fp8"):
        path = volume / "models" / f.folder / f.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
    project = project_factory(baked_images.refs["slim"], volume, MODEL_SET="fp8")

    answer = project.runsync({"workflow": smoke_workflow(color=0x13579B)})

    assert answer["status"] == "COMPLETED", f"{answer}\n{project.logs()}"
    output = answer["output"]
    assert output["models"]["model_set"] == "fp8" and output["models"]["complete"] is True
    assert sources(output) == {f.relpath: "volume" for f in rig.set_files("fp8")}
