"""Session fixtures for the container tests: the rig, one bake of all three variants, running workers.

`baked_images` runs ``docker buildx bake`` once per session for baked, slim and fp8 with the
rig's override (tests/container/rig.py): the Hub double serves the test lock's files on
127.0.0.1, a recognisable fake token goes in as the `hf_token` secret (one rig repo is gated, so
the build proves the token reached `fetch`), and the tests then look at what came out.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testcontainers.core.container import DockerContainer

from tests.container import rig
from tests.doubles.hf import RemoteHfDouble, start_subprocess
from tests.support import free_port

# Recognisable in any byte stream, so the scan can tell it never reached an image.
FAKE_TOKEN = "hf_RIGSECRETtokenNeverInAnyLayer7c1d9e"
READY_TIMEOUT = 180.0
JOB_TIMEOUT = 180.0


@dataclass(frozen=True)
class BakedImages:
    refs: Mapping[str, str]  # variant -> image reference
    hub: RemoteHfDouble
    token: str
    setup: rig.BakeSetup
    log: str
    seconds: float


@pytest.fixture(scope="session")
def rig_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rig")


@pytest.fixture(scope="session")
def hub(rig_dir: Path) -> Iterator[RemoteHfDouble]:
    with start_subprocess(rig.hub_spec(FAKE_TOKEN), rig_dir / "hub") as double:
        yield double


@pytest.fixture(scope="session")
def baked_images(rig_dir: Path, hub: RemoteHfDouble) -> Iterator[BakedImages]:
    if not (rig.COMFYUI_DOUBLE / "main.py").is_file():
        pytest.fail(
            f"the ComfyUI double has no main.py at {rig.COMFYUI_DOUBLE}: nothing to put in the images"
        )
    setup = rig.prepare(rig_dir, hub.endpoint)
    try:
        result = rig.bake(setup, rig.VARIANTS, token=FAKE_TOKEN, log_path=rig_dir / "bake.log")
        yield BakedImages(
            refs={v: setup.image_ref(v) for v in rig.VARIANTS},
            hub=hub,
            token=FAKE_TOKEN,
            setup=setup,
            log=result.log,
            seconds=result.seconds,
        )
    finally:
        setup.remove_images()


# --------------------------------------------------------------------------------------------
# Running a worker image and sending it jobs
# --------------------------------------------------------------------------------------------


def smoke_workflow(color: int) -> dict[str, Any]:
    """A zero-model graph: ComfyUI (or its double) makes a 64x64 image and saves it."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "smoke"}},
    }


@dataclass
class RunningWorker:
    container: DockerContainer
    base_url: str

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")

    def runsync(self, job_input: Mapping[str, Any], timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url}/runsync",
            data=json.dumps({"input": job_input}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())


def _wait_ready(worker: RunningWorker, timeout: float = READY_TIMEOUT) -> None:
    """The SDK's local API answers once the worker has started (it has no health route; / is docs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.container.reload()
        if worker.container.status in ("exited", "dead"):
            raise AssertionError(f"the worker exited during startup:\n{worker.logs()[-6000:]}")
        try:
            with urllib.request.urlopen(f"{worker.base_url}/", timeout=2) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"the worker's local API did not answer within {timeout} s:\n{worker.logs()[-6000:]}"
    )


def start_worker(
    image: str,
    env: Mapping[str, str] | None = None,
    volume: Path | None = None,
    host_network: bool = False,
) -> RunningWorker:
    """Start an image as a local-API worker on CPU. Host networking (to reach the rig's servers)
    keeps everything on 127.0.0.1; otherwise the API port is published on 127.0.0.1 only."""
    container = DockerContainer(image)
    environment = {"SERVE_API": "true", "COMFYUI_CPU": "true", "LOG_LEVEL": "DEBUG", **(env or {})}
    if host_network:
        port = free_port()
        environment |= {
            "SERVE_API_HOST": "127.0.0.1",
            "SERVE_API_PORT": str(port),
            "COMFYUI_PORT": str(free_port()),
        }
        container.with_kwargs(network_mode="host")
    else:
        container.ports["8000/tcp"] = ("127.0.0.1", None)
    container.with_envs(**environment)
    if volume is not None:
        container.with_volume_mapping(str(volume), "/runpod-volume", mode="rw")
    container.start()
    try:
        if not host_network:
            port = int(container.get_exposed_port(8000))
        worker = RunningWorker(container, f"http://127.0.0.1:{port}")
        _wait_ready(worker)
    except BaseException:
        container.stop()
        raise
    return worker


@pytest.fixture
def worker_factory() -> Iterator[Any]:
    started: list[RunningWorker] = []

    def factory(*args: Any, **kwargs: Any) -> RunningWorker:
        worker = start_worker(*args, **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.container.stop()


def decode_output_file(item: Mapping[str, Any]) -> bytes:
    """The bytes of one output entry returned inline."""
    assert "data" in item, f"expected the output inline (base64), got {sorted(item)}"
    return base64.b64decode(item["data"])
