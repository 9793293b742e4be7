"""`release.py smoke`, the check CI runs on the real slim image it just built, run here against the
test rig's slim image (the real Dockerfile, handler and entrypoint; the ComfyUI double in place of
ComfyUI): it passes on a worker that serves the job, and fails, with the worker's log, on one that
cannot start or on an image of another variant."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container import rig
from tests.release.script import SCRIPT

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def rig_slim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (rig.COMFYUI_DOUBLE / "main.py").is_file():
        pytest.fail(f"the ComfyUI double has no main.py at {rig.COMFYUI_DOUBLE}")
    rig_dir = tmp_path_factory.mktemp("release-rig")
    # slim bakes no models, so its build never contacts the Hub: point the endpoint at the discard
    # port, where any attempt would fail loudly.
    setup = rig.prepare(rig_dir, "http://127.0.0.1:9")
    try:
        rig.bake(setup, ["slim"], log_path=rig_dir / "bake.log")
        yield setup.image_ref("slim")
    finally:
        setup.remove_images()


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "smoke", *args], capture_output=True, text=True, check=False
    )


def containers_of(image: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"ancestor={image}"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_smoke_passes_on_a_worker_that_serves_the_job(rig_slim: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"

    result = smoke("--variant", "slim", "--ref", rig_slim, "--timeout", "180", "--logs", str(log))

    assert result.returncode == 0, result.stderr
    assert f"smoke test passed: {rig_slim} served a job" in result.stdout
    assert "job done" in log.read_text()  # the handler ran the job, not just the API
    assert containers_of(rig_slim) == []


def test_smoke_fails_with_the_log_when_the_worker_cannot_start(rig_slim: str) -> None:
    result = smoke(
        "--variant", "slim", "--ref", rig_slim, "--timeout", "120", "--env", "COMFYUI_PATH=/nonexistent"
    )

    assert result.returncode == 1
    assert "the worker exited during startup" in result.stderr
    assert "last lines of the worker's log" in result.stderr
    assert "/nonexistent" in result.stderr  # the worker's own explanation is in the report
    assert containers_of(rig_slim) == []


def test_smoke_refuses_an_image_of_another_variant(rig_slim: str) -> None:
    result = smoke("--variant", "fp8", "--ref", rig_slim)

    assert result.returncode == 1
    assert (
        f"{rig_slim} is not the fp8 image: label ltx2.worker.variant is 'slim', expected 'fp8'"
        in result.stderr
    )
