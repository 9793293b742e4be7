"""The one command line: ``python -m handler <subcommand>`` (also installed as ``ltx-worker``).

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together. Only the module of the subcommand
being run is imported, so ``--help`` stays fast and ``fetch`` runs with nothing but the model
code installed (the image's model stage has only that).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("handler.worker", "start ComfyUI and serve RunPod jobs (what an image runs)"),
    "lock": ("handler.models.lockcmd", "resolve models.lock.yaml against the Hugging Face Hub"),
    "fetch": ("handler.models.fetch", "download a model set, verified, into a directory"),
    "verify": ("handler.models.verify", "re-hash model files against the lock"),
    "locate": ("handler.models.locate", "show where each model of the active set is found"),
    "render": ("handler.templates", "print the API-format prompt a template job would queue"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` names the one subcommand whose module is loaded (None: all)."""
    parser = argparse.ArgumentParser(
        prog="python -m handler",
        description="ComfyUI + LTX-2 RunPod worker: serve jobs and manage the locked model files.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        if command is None or command == name:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else "")
    args = parser.parse_args(arguments)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
