"""Command line of the double: ComfyUI's flags, plus a few ``--double-*`` ones for tests.

ComfyUI flags understood: ``--listen [ADDR[,ADDR]]`` (bare: 0.0.0.0; default 127.0.0.1),
``--port``, ``--cpu``, ``--input-directory``, ``--output-directory``, ``--temp-directory``,
``--base-directory``, ``--extra-model-paths-config PATH...`` (repeatable),
``--disable-auto-launch``, ``--disable-metadata``, ``--verbose [LEVEL]``, ``--log-stdout``,
``--max-upload-size MB``. Any other flag is ignored with a log line.

Double-only flags:

- ``--double-version {0.26.0,0.3.64}``: which recorded protocol to speak (0.3.64: no /api/jobs,
  any prompt_id accepted, unknown classes give ``invalid_prompt``);
- ``--double-startup-delay SECONDS``: print the startup lines, then wait that long before
  listening (for readiness polling);
- ``--double-exit-at-startup CODE``: print a few startup lines, then exit with CODE;
- ``--double-step-seconds SECONDS``: time per sampler step (default 0.01).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from .folders import ExtraModelPathsError, FolderPaths
from .server import PROFILES, DoubleServer
from .validation import SUPPORTED_VERSIONS, VERSION_0_26

logger = logging.getLogger("comfy_double")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="ComfyUI protocol double (tests only).")
    parser.add_argument("--listen", type=str, default="127.0.0.1", nargs="?", const="0.0.0.0", metavar="IP")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--input-directory", type=str, default=None)
    parser.add_argument("--output-directory", type=str, default=None)
    parser.add_argument("--temp-directory", type=str, default=None)
    parser.add_argument("--base-directory", type=str, default=None)
    parser.add_argument(
        "--extra-model-paths-config", type=str, default=None, nargs="+", action="append", metavar="PATH"
    )
    parser.add_argument("--disable-auto-launch", action="store_true")
    parser.add_argument("--disable-metadata", action="store_true")
    parser.add_argument("--verbose", default="INFO", const="DEBUG", nargs="?", choices=LOG_LEVELS)
    parser.add_argument("--log-stdout", action="store_true")
    parser.add_argument("--max-upload-size", type=float, default=100)
    parser.add_argument("--double-version", choices=SUPPORTED_VERSIONS, default=VERSION_0_26)
    parser.add_argument("--double-startup-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--double-exit-at-startup", type=int, default=None, metavar="CODE")
    parser.add_argument("--double-step-seconds", type=float, default=0.01, metavar="SECONDS")
    return parser


def setup_logging(level: str, use_stdout: bool) -> None:
    """ComfyUI's logger: bare messages; with --log-stdout, errors to stderr and the rest to stdout."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    formatter = logging.Formatter("%(message)s")
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setFormatter(formatter)
    if use_stdout:
        stderr_handler.addFilter(lambda record: record.levelno >= logging.ERROR)
        stdout_handler = logging.StreamHandler(sys.stdout)
        stdout_handler.setFormatter(formatter)
        stdout_handler.addFilter(lambda record: record.levelno < logging.ERROR)
        root.addHandler(stdout_handler)
    root.addHandler(stderr_handler)


def _ram_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cleanup_temp(folders: FolderPaths) -> None:
    """ComfyUI wipes its temp folder at start and at exit."""
    if folders.temp_dir.exists():
        shutil.rmtree(folders.temp_dir, ignore_errors=True)


def main(argv: list[str] | None = None, script_dir: Path | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = build_parser().parse_known_args(argv)
    setup_logging(args.verbose, args.log_stdout)
    script_dir = script_dir or Path(__file__).resolve().parent.parent
    profile = PROFILES[args.double_version]

    if unknown:
        logger.warning("comfy_double: ignoring unsupported arguments: %s", " ".join(unknown))
    logger.info("Checkpoint files will always be loaded safely.")
    ram = _ram_mb()
    logger.info("Total VRAM %d MB, total RAM %d MB", ram, ram)
    logger.info("pytorch version: none (ComfyUI protocol double, no models are run)")
    logger.info("Set vram state to: DISABLED")
    logger.info("Device: cpu")
    logger.info("Python version: %s", sys.version)
    logger.info("ComfyUI version: %s", profile.version)
    logger.info("ComfyUI frontend version: %s", profile.frontend)
    if args.double_exit_at_startup is not None:
        logger.error(
            "comfy_double: exiting at startup with code %d (--double-exit-at-startup)",
            args.double_exit_at_startup,
        )
        return args.double_exit_at_startup

    base_dir = Path(args.base_directory) if args.base_directory else script_dir
    folders = FolderPaths.create(
        base_dir,
        input_dir=args.input_directory,
        output_dir=args.output_directory,
        temp_parent=args.temp_directory,
    )
    configs = (
        [script_dir / "extra_model_paths.yaml"] if (script_dir / "extra_model_paths.yaml").is_file() else []
    )
    for group in args.extra_model_paths_config or []:
        configs.extend(Path(path) for path in group)
    try:
        for config in configs:
            folders.load_extra_path_config(config)
    except ExtraModelPathsError as exc:
        logger.error("%s", exc)
        return 1
    for line in folders.log:
        logger.info("%s", line)

    cleanup_temp(folders)
    for directory in (
        folders.input_dir,
        folders.output_dir,
        folders.temp_dir,
        folders.models_dir,
        folders.user_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)

    logger.info("[Prompt Server] web root: (none: the double serves no frontend)")
    logger.info("Import times for custom nodes:")
    logger.info("   0.0 seconds: %s", script_dir / "comfy_double")
    logger.info("")
    if args.double_startup_delay > 0:
        logger.info(
            "comfy_double: waiting %.1f s before listening (--double-startup-delay)",
            args.double_startup_delay,
        )
        time.sleep(args.double_startup_delay)

    server = DoubleServer(
        folders,
        version=args.double_version,
        max_upload_size=round(args.max_upload_size * 1024 * 1024),
        disable_metadata=args.disable_metadata,
        step_seconds=max(0.0, args.double_step_seconds),
        argv=["main.py", *argv],
    )
    addresses = [address.strip() for address in args.listen.split(",") if address.strip()]
    try:
        asyncio.run(_serve(server, addresses, args.port))
    except KeyboardInterrupt:
        logger.info("\nStopped server")
    finally:
        server.stop()
        cleanup_temp(folders)
    return 0


async def _serve(server: DoubleServer, addresses: list[str], port: int) -> None:
    runner = await server.start(addresses, port)
    logger.info("Starting server\n")
    for address in addresses:
        shown = f"[{address}]" if ":" in address else address
        logger.info("To see the GUI go to: http://%s:%d", shown, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
