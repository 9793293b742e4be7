"""Fetch one model set for an image: the project's `fetch` command, then checks for a stable layer.

Runs at build time in a `models-<set>` stage with the worker's venv. It

1. runs ``handler.models.fetch`` (the same code as ``python -m handler fetch``) with the set, the
   destination, the token file when the `hf_token` secret is non-empty, an existing Hugging Face
   cache when the `hf-cache` context holds one, ``HF_ENDPOINT`` when set and
   ``--trust-on-first-use`` when ``TRUST_ON_FIRST_USE=true``;
2. checks that the destination holds exactly the set's files and licence texts, nothing else
   (``baked`` minus ``slim`` must be the model bytes: no cache copies, no partial files);
3. normalises modes and timestamps of everything under ``--layer-root`` (the destination and
   the directories above it that the image's COPY --link layer will hold), so the same files
   always make the same layer digest, whenever and wherever the stage runs.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

DIR_MODE = 0o755
FILE_MODE = 0o644


def tree_problems(dest: Path, expected: set[str]) -> list[str]:
    """What is wrong with ``dest`` compared to the expected relative file paths (pure but for stat)."""
    found: set[str] = set()
    problems: list[str] = []
    for path in sorted(dest.rglob("*")):
        rel = path.relative_to(dest).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            problems.append(f"{rel} is a symlink; the image needs the file itself")
        elif stat.S_ISREG(mode):
            found.add(rel)
        elif not stat.S_ISDIR(mode):
            problems.append(f"{rel} is not a regular file")
    problems += [f"missing {rel}" for rel in sorted(expected - found)]
    problems += [
        f"unexpected {rel} (only the set's files and licences may be baked)"
        for rel in sorted(found - expected)
    ]
    return problems


def normalise(root: Path) -> None:
    """Fixed modes and a zero mtime for every entry: the layer's bytes depend on content only."""
    for path in [*sorted(root.rglob("*"), reverse=True), root]:
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
        os.utime(path, (0, 0), follow_symlinks=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, dest="model_set")
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, help="used when it exists and is not empty")
    parser.add_argument("--hf-cache", type=Path, help="a Hugging Face hub cache, used when not empty")
    parser.add_argument("--layer-root", type=Path, help="normalise from here down (default: --dest)")
    args = parser.parse_args(argv)
    layer_root = args.layer_root or args.dest
    if (
        args.dest.resolve() != layer_root.resolve()
        and layer_root.resolve() not in args.dest.resolve().parents
    ):
        parser.error(f"--dest {args.dest} is not inside --layer-root {layer_root}")

    # An empty build arg must not become an empty endpoint.
    if not os.environ.get("HF_ENDPOINT"):
        os.environ.pop("HF_ENDPOINT", None)

    # Imported after the environment is final: huggingface_hub reads it at import time.
    from handler.models import fetch
    from handler.models.lock import load_lock

    fetch_argv = ["--set", args.model_set, "--dest", str(args.dest), "--no-progress"]
    if args.hf_cache and args.hf_cache.is_dir() and any(args.hf_cache.iterdir()):
        print("reusing files of the Hugging Face cache given as the hf-cache context", flush=True)
        fetch_argv += ["--hf-cache", str(args.hf_cache)]
    if args.token_file and args.token_file.is_file() and args.token_file.stat().st_size > 0:
        fetch_argv += ["--token-file", str(args.token_file)]
    if os.environ.get("TRUST_ON_FIRST_USE", "").lower() in {"1", "true", "yes"}:
        fetch_argv.append("--trust-on-first-use")
    fetch_parser = argparse.ArgumentParser(prog="python -m handler fetch")
    fetch.add_arguments(fetch_parser)
    status = int(fetch.run(fetch_parser.parse_args(fetch_argv)) or 0)
    if status != 0:
        return status

    lock = load_lock()
    expected = {e.relpath for e in lock.set_entries(args.model_set)}
    expected |= {lic.relpath for lic in lock.set_licenses(args.model_set)}
    problems = tree_problems(args.dest, expected)
    if problems:
        print(
            f"error: {args.dest} is not exactly set {args.model_set}:\n  " + "\n  ".join(problems),
            file=sys.stderr,
        )
        return 1
    normalise(layer_root)
    total = sum((args.dest / rel).stat().st_size for rel in expected)
    print(f"set {args.model_set}: {len(expected)} files, {total} bytes in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
