"""Fixtures for the release tests: a real registry on loopback and a tiny image the real bake file
builds.

The registry is Debian's `docker-registry` (distribution 2.8, installed by .ci/install-docker.sh),
started with its own configuration: 127.0.0.1 only, a free port, storage in a temporary directory,
no auth. Docker pushes to a loopback registry over plain HTTP without any daemon setting.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.release.script import REPO_ROOT, release
from tests.support import free_port, skip_unless_required

# One scratch stage per variant: the real docker-bake.hcl (variables, labels, matrix) builds it in
# well under a second, so the tests exercise the bake file and the registry, not a 40 GB build.
PROBE_DOCKERFILE = "".join(
    f"FROM scratch AS {variant}\nCOPY pyproject.toml /release-probe/{variant}/pyproject.toml\n"
    for variant in release.VARIANTS
)


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    root: Path

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def tags(self, name: str) -> list[str]:
        """The tags the registry holds for repository ``name`` ([] when it has none)."""
        try:
            with urllib.request.urlopen(self.url(f"/v2/{name}/tags/list"), timeout=10) as response:
                return list(json.loads(response.read()).get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise


def _registry_binary() -> str:
    binary = shutil.which("docker-registry")
    if binary is None:
        skip_unless_required("Debian's docker-registry is not installed (run .ci/install-docker.sh)")
    return binary


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = _registry_binary()
    root = tmp_path_factory.mktemp("registry")
    host = f"127.0.0.1:{free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {host}\n  secret: release-tests-{uuid.uuid4().hex}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    local = LocalRegistry(host, root)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"docker-registry exited ({process.returncode}):\n{(root / 'registry.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(local.url("/v2/"), timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"docker-registry did not answer on {host}:\n{(root / 'registry.log').read_text()}"
                )
            time.sleep(0.1)
        yield local
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def probe_bake_file(tmp_path: Path) -> Path:
    """A second bake file that swaps the Dockerfile for the probe; everything else is docker-bake.hcl's."""
    path = tmp_path / "docker-bake.probe.hcl"
    path.write_text(f'target "_common" {{\n  dockerfile-inline = {json.dumps(PROBE_DOCKERFILE)}\n}}\n')
    return path


@pytest.fixture
def namespace(registry: LocalRegistry) -> Iterator[str]:
    """A registry path no other test (or concurrent test run) uses; local images under it are removed."""
    path = f"{registry.host}/release-test-{uuid.uuid4().hex[:10]}"
    yield path
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    refs = [line for line in listed.stdout.split() if line.startswith(f"{path}/")]
    if refs:
        subprocess.run(["docker", "image", "rm", "--force", *refs], capture_output=True, check=False)


@pytest.fixture
def project_version() -> str:
    return release.read_project_version(REPO_ROOT / "pyproject.toml")
