"""Write the image's build info (/opt/worker/build-info.json), which the worker reads at startup.

Runs at build time with the worker's venv, in the variant stage. The model set is checked against
the lock the image carries, and the lock digest is the one the worker computes from that file,
so the image cannot claim a set or a lock it does not have. See handler/buildinfo.py for the fields.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from handler.buildinfo import BuildInfo
from handler.models.lock import LockError, load_lock
from handler.settings import DEFAULT_WORKER_HOME

COMFYUI_VENV = Path("/opt/venv")


def installed_version(venv: Path, distribution: str) -> str | None:
    """A distribution's version in another venv, from its .dist-info directory name (no import)."""
    pattern = re.compile(rf"^{re.escape(distribution)}-(?P<version>[^-]+)\.dist-info$", re.IGNORECASE)
    for site in sorted(venv.glob("lib/python3*/site-packages")):
        for entry in site.iterdir():
            match = pattern.match(entry.name)
            if match:
                return match.group("version")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True)
    parser.add_argument("--model-set", default=None, help="the baked set (omit for slim)")
    parser.add_argument("--models-dir", default=None, help="where the baked set is (omit for slim)")
    parser.add_argument("--comfyui-commit", default=None)
    parser.add_argument("--version", default=None)
    parser.add_argument("--created", default=None, help="RFC 3339 build time")
    parser.add_argument("--custom-nodes", type=Path, default=DEFAULT_WORKER_HOME / "custom-nodes.json")
    parser.add_argument("--output", type=Path, default=DEFAULT_WORKER_HOME / "build-info.json")
    args = parser.parse_args(argv)

    if (args.model_set is None) != (args.models_dir is None):
        print(
            "error: --model-set and --models-dir go together (a baked image) or not at all", file=sys.stderr
        )
        return 2
    try:
        lock = load_lock()
        if args.model_set is not None:
            lock.set(args.model_set)
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    custom_nodes = json.loads(args.custom_nodes.read_text()) if args.custom_nodes.is_file() else []
    info = BuildInfo(
        variant=args.variant,
        model_set=args.model_set,
        models_dir=args.models_dir,
        # The models stage fetched every file with its SHA-256 checked against the lock.
        models_verified=args.model_set is not None,
        lock_digest=lock.digest,
        comfyui_commit=args.comfyui_commit or None,
        version=args.version or None,
        created=args.created or None,
        torch_version=installed_version(COMFYUI_VENV, "torch"),
        custom_nodes=custom_nodes,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.output)
    print(f"{args.output}: {info.model_dump_json()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
