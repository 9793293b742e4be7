"""Shared test configuration.

Container tests (marker `container`) need a Docker engine with buildx. Without one they skip
with a message, unless REQUIRE_CONTAINER_TESTS=1 (set by .ci/run), which makes them fail instead:
CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# testcontainers: no reaper image (nothing can be pulled) and talk to mapped ports on localhost,
# never through the Docker bridge's private addresses.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


def docker_unavailable_reason() -> str | None:
    """Why container tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if info.returncode != 0:
        return "no Docker engine answers (`docker info` failed); run .ci/install-docker.sh"
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, timeout=20)
    if buildx.returncode != 0:
        return "docker buildx is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    container_items = [item for item in items if item.get_closest_marker("container")]
    if not container_items:
        return
    reason = docker_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
        raise pytest.UsageError(f"container tests are required (REQUIRE_CONTAINER_TESTS=1) but {reason}")
    skip = pytest.mark.skip(reason=f"container tests skipped: {reason}")
    for item in container_items:
        item.add_marker(skip)
