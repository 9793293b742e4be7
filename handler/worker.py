"""Start ComfyUI and serve RunPod jobs: the command every image runs.

Startup, in order: read the image's build info and the model lock, find (or download) the active
set's models and wire them into ComfyUI, start ComfyUI as a supervised child on loopback and wait
until it answers (failing at once, with its last log lines, if it exits), run the optional
warm-up job, then hand an async handler to the RunPod SDK: polling RunPod's queue, or serving the
SDK's local API (``--rp_serve_api`` / ``SERVE_API=true``) for local use and container tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from handler.buildinfo import read_build_info
from handler.comfy.client import ComfyClient
from handler.comfy.supervisor import ComfyProcess, ComfyStartupError
from handler.job.runner import JobRunner
from handler.log import configure_logging
from handler.settings import Settings, SettingsError

log = logging.getLogger("handler.worker")

# command-line flag -> environment variable it sets (flags win over the environment)
_FLAG_ENV = {
    "serve_api": "SERVE_API",
    "api_host": "SERVE_API_HOST",
    "api_port": "SERVE_API_PORT",
    "comfyui_path": "COMFYUI_PATH",
    "comfyui_port": "COMFYUI_PORT",
    "comfyui_args": "COMFYUI_ARGS",
    "cpu": "COMFYUI_CPU",
    "model_set": "MODEL_SET",
    "warmup": "WARMUP",
}
_SDK_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rp_serve_api",
        "--serve-api",
        dest="serve_api",
        action="store_const",
        const="true",
        default=None,
        help="serve the RunPod SDK's local API (POST /runsync) instead of polling RunPod (env SERVE_API)",
    )
    parser.add_argument(
        "--rp_api_host", "--api-host", dest="api_host", help="local API bind address (SERVE_API_HOST)"
    )
    parser.add_argument(
        "--rp_api_port", "--api-port", dest="api_port", help="local API port (SERVE_API_PORT)"
    )
    parser.add_argument("--comfyui-path", help="ComfyUI checkout holding main.py (COMFYUI_PATH)")
    parser.add_argument("--comfyui-port", help="port for ComfyUI on 127.0.0.1 (COMFYUI_PORT)")
    parser.add_argument("--comfyui-args", help="extra ComfyUI arguments, shell syntax (COMFYUI_ARGS)")
    parser.add_argument(
        "--cpu", action="store_const", const="true", default=None, help="run ComfyUI with --cpu (COMFYUI_CPU)"
    )
    parser.add_argument("--model-set", help="model set for a slim image: bf16 or fp8 (MODEL_SET)")
    parser.add_argument("--warmup", help="job input JSON, or @file, run once before the first job (WARMUP)")


def settings_from(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    merged = dict(environ)
    for attribute, variable in _FLAG_ENV.items():
        value = getattr(args, attribute, None)
        if value is not None:
            merged[variable] = str(value)
    return Settings.from_env(merged)


def warmup_input(setting: str) -> dict[str, Any]:
    """The warm-up job's input from WARMUP: JSON, or @path to a JSON file (pure but for the read)."""
    text = Path(setting[1:]).read_text(encoding="utf-8") if setting.startswith("@") else setting
    value = json.loads(text)
    if isinstance(value, dict) and isinstance(value.get("input"), dict):
        value = value["input"]
    if not isinstance(value, dict):
        raise ValueError("WARMUP must be a job input object (or {'input': {...}})")
    return value


class Worker:
    """The worker process: models, ComfyUI, warm-up, then the RunPod loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.comfy: ComfyProcess | None = None
        self.client = ComfyClient(settings.comfyui_url)
        self.runner: JobRunner | None = None

    def start(self) -> None:
        from handler.models.locate import prepare_models
        from handler.models.lock import load_lock

        settings = self.settings
        build_info = read_build_info(settings.build_info_path)
        lock = load_lock(settings.models_lock)
        prepared = prepare_models(settings, lock=lock, build_info=build_info)  # logs its report
        model_set = prepared.report.model_set
        role_filenames = lock.role_filenames(model_set) if model_set else {}

        self.comfy = ComfyProcess(settings, prepared.comfyui_args)
        self.comfy.start()
        waited = self.comfy.wait_ready()
        log.info("ComfyUI is ready on %s after %.2f s", settings.comfyui_url, waited)
        asyncio.run(self._load_node_schemas())
        self.runner = JobRunner(
            settings,
            self.comfy,
            self.client,
            model_report=prepared.report,
            lock=lock,
            role_filenames=role_filenames,
        )
        if settings.warmup:
            self.warm_up(settings.warmup)

    async def _load_node_schemas(self) -> None:
        """Fetch /object_info once now, so the first job does not pay for it."""
        try:
            info = await self.client.object_info()
            log.info("ComfyUI offers %d node classes", len(info))
        finally:
            await self.client.close()

    def warm_up(self, setting: str) -> None:
        """Run the warm-up job once so the first real job finds the weights loaded."""
        assert self.runner is not None
        job = {"id": "warmup", "input": warmup_input(setting)}

        async def run_once() -> dict[str, Any]:
            try:
                return await self.runner.run(job)  # type: ignore[union-attr]
            finally:
                await self.client.close()

        result = asyncio.run(run_once())
        if "error" in result:
            log.warning("warm-up job failed (serving anyway): %s", result["error"])
        else:
            log.info("warm-up done in %.0f ms", result["timings"]["total_ms"])

    async def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        """The RunPod handler: async, so the SDK can cancel it."""
        assert self.runner is not None
        return await self.runner.run(job)

    def fitness_check(self) -> None:
        """RunPod runs this before the worker takes jobs: a broken ComfyUI marks it unhealthy."""
        if self.comfy is None or not self.comfy.healthy():
            raise RuntimeError(f"ComfyUI is not answering on {self.settings.comfyui_url}")

    def serve(self) -> None:
        import runpod  # imported after startup: its logger reads the environment at import time

        runpod.serverless.register_fitness_check(self.fitness_check)
        sys.argv = [sys.argv[0], *sdk_arguments(self.settings)]
        runpod.serverless.start({"handler": self.handle})

    def stop(self) -> None:
        if self.comfy is not None:
            self.comfy.stop()


def sdk_arguments(settings: Settings) -> list[str]:
    """The RunPod SDK reads its options from sys.argv; these are the ones we pass (pure)."""
    arguments = ["--rp_log_level", _SDK_LOG_LEVELS[settings.log_level]]
    if settings.serve_api:
        arguments += [
            "--rp_serve_api",
            "--rp_api_host",
            settings.serve_api_host,
            "--rp_api_port",
            str(settings.serve_api_port),
        ]
    return arguments


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    # Until the SDK installs its own handlers, make `docker stop` end startup cleanly.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args, dict(os.environ))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_as_json, settings.secret_values())
    os.environ.setdefault("RUNPOD_LOG_LEVEL", _SDK_LOG_LEVELS[settings.log_level])
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = Worker(settings)
    try:
        worker.start()
        worker.serve()
    except ComfyStartupError as exc:
        log.error("%s", exc)
        return 1
    except (ValueError, OSError) as exc:
        log.error("worker startup failed: %s", exc)
        return 1
    finally:
        worker.stop()
    return 0
