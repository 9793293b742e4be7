"""Run the ComfyUI double as a subprocess on a free loopback port, for tests of other parts.

    with start_double(tmp_path) as comfy:
        requests go to comfy.url; files land in comfy.output_dir; comfy.log_text() has its log

The process is started the way an image starts ComfyUI (``python main.py --listen 127.0.0.1
--port N --base-directory DIR ...``); its stdout and stderr go to ``DIR/comfyui-double.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support import free_port

MAIN_PY = Path(__file__).resolve().parent / "main.py"
LOG_NAME = "comfyui-double.log"


def _flag_value(args: tuple[str, ...], flag: str) -> str | None:
    value = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


@dataclass
class RunningDouble:
    """A started double. ``stop()`` (or leaving the ``with`` block) ends it."""

    url: str
    port: int
    base_dir: Path
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    models_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def ws_url(self, client_id: str | None = None) -> str:
        """The WebSocket URL, with ``?clientId=`` when given."""
        base = "ws" + self.url[len("http") :] + "/ws"
        return f"{base}?clientId={client_id}" if client_id else base

    def log_text(self) -> str:
        """Everything the double printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``GET /`` answers 200.

        Raises:
            RuntimeError: the process exited first (with its exit code and log), or it did not
                answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"the ComfyUI double exited with code {code} before answering:\n{self.log_text()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the ComfyUI double did not answer on {self.url} within {timeout:.0f} s:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (as a container stop sends), then SIGKILL if needed; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def __enter__(self) -> RunningDouble:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_double(
    base_dir: Path,
    *args: str,
    version: str = "0.26.0",
    wait: bool = True,
    timeout: float = 30.0,
    cwd: Path | None = None,
    python: str | None = None,
) -> RunningDouble:
    """Start ``main.py`` with ``--base-directory base_dir`` on a free 127.0.0.1 port.

    Args:
        base_dir: the ComfyUI base directory (``models/``, ``input/``, ``output/``, ``temp/``
            are made inside it unless ``args`` move them).
        *args: more command-line flags (``--extra-model-paths-config F``, ``--double-*``, ...).
        version: ``--double-version``.
        wait: wait until it answers HTTP (raises ``RuntimeError`` with the log if it exits).
        timeout: seconds to wait for it.
        cwd: working directory of the process (default ``base_dir``).
        python: interpreter (default the running one).
    """
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    port = int(_flag_value(args, "--port") or free_port())
    command = [python or sys.executable, str(MAIN_PY)]
    if _flag_value(args, "--listen") is None and "--listen" not in args:
        command += ["--listen", "127.0.0.1"]
    if _flag_value(args, "--port") is None:
        command += ["--port", str(port)]
    command += ["--base-directory", str(base_dir), "--double-version", version, *args]

    def directory(flag: str, default: Path) -> Path:
        value = _flag_value(args, flag)
        return Path(value).resolve() if value else default

    temp_parent = _flag_value(args, "--temp-directory")
    log_path = base_dir / LOG_NAME
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=str(cwd or base_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    running = RunningDouble(
        url=f"http://127.0.0.1:{port}",
        port=port,
        base_dir=base_dir,
        input_dir=directory("--input-directory", base_dir / "input"),
        output_dir=directory("--output-directory", base_dir / "output"),
        temp_dir=Path(temp_parent).resolve() / "temp" if temp_parent else base_dir / "temp",
        models_dir=base_dir / "models",
        log_path=log_path,
        process=process,
    )
    if wait:
        try:
            running.wait_ready(timeout)
        except BaseException:
            running.stop()
            raise
    return running
