"""Run the Hub double as a subprocess and drive it over its ``/_double/`` control routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.doubles.hf.server import LoggedRequest

REPO_ROOT = Path(__file__).resolve().parents[3]


class RemoteHfDouble:
    """A double running in another process: its addresses and its control routes."""

    def __init__(self, endpoint: str, cdn_url: str, process: subprocess.Popen[str]) -> None:
        self.endpoint = endpoint
        self.cdn_url = cdn_url
        self.process = process

    def _call(self, method: str, route: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.endpoint}/_double/{route}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=130) as response:
            return json.loads(response.read())

    def requests(self) -> list[LoggedRequest]:
        return [LoggedRequest(**item) for item in self._call("GET", "requests")]

    def body_requests(self, repo_id: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        return [
            r
            for r in self.requests()
            if r.is_body_download
            and (repo_id is None or r.repo == repo_id)
            and (path is None or r.path == path)
        ]

    def clear_requests(self) -> None:
        self._call("POST", "clear", {})

    def add_fault(self, repo_id: str, path: str, **fault: Any) -> None:
        self._call("POST", "faults", {"repo": repo_id, "path": path, **fault})

    def release(self, repo_id: str, path: str) -> None:
        self._call("POST", "release", {"repo": repo_id, "path": path})

    def wait_held(self, repo_id: str, path: str, timeout: float = 10.0) -> bool:
        return bool(self._call("POST", "held", {"repo": repo_id, "path": path, "timeout": timeout})["held"])

    def files(self) -> dict[str, Any]:
        """repo -> {commits, main, files: path -> {sha256, size, lfs}} at main."""
        return self._call("GET", "files")


@contextmanager
def start_subprocess(
    spec: Mapping[str, Any] | Path,
    root: Path,
    *,
    port: int = 0,
    cdn_port: int = 0,
    python: str = sys.executable,
    startup_timeout: float = 600.0,
) -> Iterator[RemoteHfDouble]:
    """Start ``python -m tests.doubles.hf`` and stop it on exit.

    ``spec`` is a mapping (written to ``root/spec.json``) or a spec file. Generating large
    files happens before the double listens, hence the generous ``startup_timeout``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, Mapping):
        spec_path = root / "spec.json"
        spec_path.write_text(json.dumps(spec))
    else:
        spec_path = Path(spec)
    ready = root / f"ready.{os.getpid()}.json"
    ready.unlink(missing_ok=True)
    command = [
        python, "-m", "tests.doubles.hf", "--spec", str(spec_path), "--root", str(root),
        "--port", str(port), "--cdn-port", str(cdn_port), "--ready-file", str(ready),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = (root / "double.log").open("w")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True
    )
    try:
        info = _wait_ready(process, ready, startup_timeout, root / "double.log")
        yield RemoteHfDouble(info["endpoint"], info["cdn_url"], process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        ready.unlink(missing_ok=True)


def _wait_ready(process: subprocess.Popen[str], ready: Path, timeout: float, log: Path) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return json.loads(ready.read_text())
        if process.poll() is not None:
            raise RuntimeError(f"the Hub double exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"the Hub double did not start within {timeout} s; log: {log}")
