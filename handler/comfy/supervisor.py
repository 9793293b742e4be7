"""ComfyUI as a supervised child process on loopback.

The process is started with ``subprocess`` and watched by one thread that pumps its output into
a ring buffer (and the log) and notices the moment it exits. Nothing here depends on an event
loop: the RunPod SDK runs jobs on loops it creates and closes itself, and the supervisor must
outlive all of them. Async code asks for an ``exit_future()`` on its own loop.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from handler.settings import Settings

log = logging.getLogger("handler.comfyui")
comfy_output = logging.getLogger("comfyui")

DEFAULT_COMFYUI_VENV_PYTHON = Path("/opt/venv/bin/python")
READY_PATH = "/prompt"  # cheap on every ComfyUI version: the queue's exec_info


class ComfyStartupError(RuntimeError):
    """ComfyUI did not come up; the message carries its last log lines."""


def comfyui_python(settings: Settings) -> str:
    if settings.comfyui_python:
        return settings.comfyui_python
    if DEFAULT_COMFYUI_VENV_PYTHON.exists():
        return str(DEFAULT_COMFYUI_VENV_PYTHON)
    return sys.executable


def comfyui_command(settings: Settings, extra_args: list[str], python: str) -> list[str]:
    """The command line that starts ComfyUI (pure).

    Input, output and temp folders are passed explicitly so the worker knows where files are:
    ComfyUI appends ``/temp`` to ``--temp-directory`` itself.
    """
    data_root = str(settings.comfyui_data_root)
    command = [
        python,
        str(settings.comfyui_path / "main.py"),
        "--listen",
        settings.comfyui_host,
        "--port",
        str(settings.comfyui_port),
        "--input-directory",
        str(settings.input_dir),
        "--output-directory",
        str(settings.output_dir),
        "--temp-directory",
        data_root,
        "--disable-auto-launch",
    ]
    if settings.comfyui_cpu:
        command.append("--cpu")
    return command + list(extra_args) + settings.comfyui_extra_args


class ComfyProcess:
    """One ComfyUI child process at a time: start, readiness, log tail, death, restart."""

    def __init__(self, settings: Settings, extra_args: list[str] | None = None) -> None:
        self.settings = settings
        self.extra_args = list(extra_args or [])
        self._lines: collections.deque[str] = collections.deque(maxlen=max(settings.comfyui_log_lines, 10))
        self._proc: subprocess.Popen[bytes] | None = None
        self._exit_code: int | None = None
        self._exited = threading.Event()
        self._callbacks: set[Callable[[int], None]] = set()
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("ComfyUI is already running")
        for folder in (self.settings.input_dir, self.settings.output_dir):
            folder.mkdir(parents=True, exist_ok=True)
        command = comfyui_command(self.settings, self.extra_args, comfyui_python(self.settings))
        log.info("starting ComfyUI: %s", " ".join(command))
        self._exited.clear()
        self._exit_code = None
        try:
            self._proc = subprocess.Popen(
                command,
                cwd=str(self.settings.comfyui_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # our signals stay ours; we stop its whole group
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as exc:
            raise ComfyStartupError(f"could not start ComfyUI ({command[0]} {command[1]}): {exc}") from None
        threading.Thread(target=self._pump, args=(self._proc,), name="comfyui-output", daemon=True).start()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._lines.append(line)
            comfy_output.info("%s", line)
        code = proc.wait()
        with self._lock:
            if proc is not self._proc:
                return
            self._exit_code = code
            self._exited.set()
            callbacks = list(self._callbacks)
        log.warning("ComfyUI exited with code %s", code)
        for callback in callbacks:
            callback(code)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll until ComfyUI answers; fail at once if it exits. Returns the seconds waited."""
        deadline_s = self.settings.comfyui_startup_timeout if timeout is None else timeout
        started = time.monotonic()
        delay = 0.02
        while True:
            if self._exited.is_set():
                raise ComfyStartupError(
                    f"ComfyUI exited with code {self._exit_code} before it was ready. Last output:\n"
                    + self.log_tail_text()
                )
            if self._answers():
                return time.monotonic() - started
            if time.monotonic() - started > deadline_s:
                raise ComfyStartupError(
                    f"ComfyUI did not answer on {self.settings.comfyui_url} within {deadline_s:.0f} s "
                    "(COMFYUI_STARTUP_TIMEOUT). Last output:\n" + self.log_tail_text()
                )
            # Fast at first (a warm start answers in well under a second), then gentler.
            self._exited.wait(delay)
            delay = min(delay * 1.5, 0.25)

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection(
            self.settings.comfyui_host, self.settings.comfyui_port, timeout=2
        )
        try:
            connection.request("GET", READY_PATH)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def healthy(self) -> bool:
        """Alive and answering: the RunPod fitness check."""
        return self.alive and self._answers()

    def stop(self, grace: float = 10.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        log.info("stopping ComfyUI (pid %s)", proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
        self._exited.wait(grace)

    def restart(self) -> float:
        """Stop (if needed), start again and wait until ready."""
        self.stop()
        self.start()
        return self.wait_ready()

    # --- state -----------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set() and self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    def log_tail(self, lines: int = 20) -> list[str]:
        return list(self._lines)[-lines:]

    def log_tail_text(self, lines: int = 20) -> str:
        tail = self.log_tail(lines)
        return "\n".join(f"  | {line}" for line in tail) if tail else "  | (no output)"

    def exit_future(self) -> asyncio.Future[int]:
        """A future on the running loop that completes with the exit code when ComfyUI exits."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def notify(code: int) -> None:
            def settle() -> None:
                if not future.done():
                    future.set_result(code)

            if not loop.is_closed():
                loop.call_soon_threadsafe(settle)

        with self._lock:
            if self._exited.is_set():
                future.set_result(self._exit_code if self._exit_code is not None else -1)
                return future
            self._callbacks.add(notify)

        def forget(_future: asyncio.Future[int]) -> None:
            with self._lock:
                self._callbacks.discard(notify)

        future.add_done_callback(forget)
        return future
