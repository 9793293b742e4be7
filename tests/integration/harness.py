"""Starting the real worker (`python -m handler serve`) against the ComfyUI double, for tests.

The worker runs as a subprocess exactly as in an image: it starts the double as its ComfyUI
child (the double's main.py takes ComfyUI's flags), then serves the RunPod SDK's local API, or,
with the job-API stand-in's environment, polls it like RunPod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
DOUBLE_DIR = REPO / "tests" / "doubles" / "comfyui"


def zero_time_workflow(color: int, prefix: str = "smoke") -> dict[str, Any]:
    """EmptyImage -> SaveImage: runs in milliseconds, with a colour that defeats ComfyUI's cache."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


@dataclass
class WorkerProcess:
    root: Path
    env: dict[str, str]
    api_port: int | None
    comfy_port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "worker.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def comfy(self) -> str:
        return f"http://127.0.0.1:{self.comfy_port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["COMFYUI_DATA_DIR"])

    def start(self, *extra_args: str, wait: bool = True) -> WorkerProcess:
        args = [sys.executable, "-m", "handler", "serve", *extra_args]
        if self.api_port is not None:
            args += ["--rp_serve_api", "--api-port", str(self.api_port)]
        self.process = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )
        if wait and self.api_port is not None:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                urllib.request.urlopen(self.api + "/openapi.json", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"worker's local API did not answer within {timeout} s:\n{self.log_text()}")

    def runsync(self, job_input: Any, timeout: float = 60) -> dict[str, Any]:
        body = json.dumps({"input": job_input}).encode()
        request = urllib.request.Request(
            self.api + "/runsync", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return {"http_status": exc.code, "body": exc.read().decode(errors="replace")}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def leftover_files(self) -> list[str]:
        """Files the jobs left in ComfyUI's input, output and temp folders."""
        found = []
        for folder in ("input", "output", "temp"):
            base = self.data_dir / folder
            if base.is_dir():
                found += [str(p.relative_to(self.data_dir)) for p in base.rglob("*") if p.is_file()]
        return sorted(found)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def worker_env(root: Path, comfy_port: int, **overrides: str) -> dict[str, str]:
    """Environment for a worker whose ComfyUI is the double, with every folder under ``root``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RUNPOD_", "BUCKET_", "COMFYUI_", "MODEL", "HF_", "SERVE_API"))
    }
    env.update(
        {
            "COMFYUI_PATH": str(DOUBLE_DIR),
            "COMFYUI_PYTHON": sys.executable,
            "COMFYUI_PORT": str(comfy_port),
            "COMFYUI_DATA_DIR": str(root / "comfy"),
            "COMFYUI_STARTUP_TIMEOUT": "30",
            "WORKER_HOME": str(root / "home"),
            "BAKED_MODELS_DIR": str(root / "baked"),
            "RUNPOD_VOLUME_PATH": str(root / "volume"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def make_worker(root: Path, *, api: bool = True, **overrides: str) -> WorkerProcess:
    root.mkdir(parents=True, exist_ok=True)
    comfy_port = free_port()
    return WorkerProcess(
        root=root,
        env=worker_env(root, comfy_port, **overrides),
        api_port=free_port() if api else None,
        comfy_port=comfy_port,
    )


def write_small_model_set(root: Path, file_size: int = 4096) -> tuple[Path, Path]:
    """A lock like the real one (same entries, folders and file names) over small generated files.

    Returns (lock path, models dir): point MODELS_LOCK and MODELS_DIR at them and the worker finds
    a complete set, so templates render with the real file names.
    """
    import hashlib

    from handler.models.lock import DEFAULT_LOCK_PATH, dump_yaml, load_document

    document = load_document(DEFAULT_LOCK_PATH.read_text())
    models = root / "models"
    for entry_id, entry in document["entries"].items():
        content = hashlib.sha256(entry_id.encode()).digest() * (file_size // 32)
        path = models / entry["folder"] / entry["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        entry["sha256"] = hashlib.sha256(content).hexdigest()
        entry["size"] = len(content)
    for license_id, license_file in (document.get("licenses") or {}).items():
        content = f"test licence text for {license_id}\n".encode()
        path = models / "licenses" / license_file["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        license_file["sha256"] = hashlib.sha256(content).hexdigest()
        license_file["size"] = len(content)
    lock_path = root / "models.lock.yaml"
    lock_path.write_text(dump_yaml(document))
    return lock_path, models
