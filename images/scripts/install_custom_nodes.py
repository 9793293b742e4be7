"""Install ComfyUI's custom nodes at their pinned commits, and the locked requirements, into one venv.

Runs at image build time with the Python of the venv ComfyUI runs in (/opt/venv), so every
requirement lands where ComfyUI imports from (the custom nodes' requirements going into some other
environment is a classic cause of "node failed to import"). Standard library only.

1. Install the venv lock (``requirements.lock.txt``: every package pinned with hashes) with
   ``pip install --require-hashes --no-deps``.
2. Clone each node of the manifest and check out its pinned commit; a commit the repository does
   not have is an error. Submodules come along; ``.git`` is removed (the commit is recorded).
3. Check that ComfyUI's and every node's ``requirements.txt`` are satisfied by what is installed,
   with no package index (``pip install --dry-run --no-index``), then ``pip check``: a requirement
   the lock misses fails the build, naming it, instead of being installed unpinned.
4. Write the record of what was installed (name, repo, commit) as JSON.

Manifest (TOML)::

    [[node]]
    name = "ComfyUI-LTXVideo"                 # directory under custom_nodes/
    repo = "https://github.com/Lightricks/ComfyUI-LTXVideo.git"   # or a path relative to the manifest
    commit = "aceeae9635f6d493f2893ba3c411a1c36031788a"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://|^[^/]+@[^/]+:")
RELOCK_HINT = "regenerate the lock with `uv run python images/lock_requirements.py` (see images/README.md)"


class InstallError(RuntimeError):
    """Something in the manifest, the lock or a repository is not as pinned."""


@dataclass(frozen=True)
class Node:
    name: str
    repo: str
    commit: str


def parse_manifest(text: str, where: str) -> list[Node]:
    """The manifest's nodes, validated; every problem is reported at once."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"{where} is not valid TOML: {exc}") from None
    unknown = set(document) - {"node"}
    problems = [f"unknown top-level keys {sorted(unknown)}; expected only [[node]] tables"] if unknown else []
    nodes: list[Node] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("node", [])):
        loc = f"node[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{loc}: expected a table")
            continue
        extra = set(raw) - {"name", "repo", "commit", "note"}
        if extra:
            problems.append(f"{loc}: unknown keys {sorted(extra)}; known: name, repo, commit, note")
        name, repo, commit = raw.get("name"), raw.get("repo"), raw.get("commit")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{loc}.name: expected a directory name, got {name!r}")
        elif name in seen:
            problems.append(f"{loc}.name: {name!r} appears twice")
        if not isinstance(repo, str) or not repo:
            problems.append(f"{loc}.repo: expected a git URL or a path, got {repo!r}")
        if not isinstance(commit, str) or not _COMMIT.match(commit):
            problems.append(f"{loc}.commit: expected a full 40-hex commit id, got {commit!r}")
        if isinstance(name, str):
            seen.add(name)
        if not problems:
            nodes.append(Node(name=name, repo=repo, commit=commit))
    if problems:
        raise InstallError(f"{where} is not a valid custom-node manifest:\n  " + "\n  ".join(problems))
    return nodes


def resolve_repo(repo: str, manifest_dir: Path) -> str:
    """A URL stays as it is; a path is taken relative to the manifest (local test repositories)."""
    if _URL_SCHEME.match(repo) or os.path.isabs(repo):
        return repo
    return str((manifest_dir / repo).resolve())


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file (no comments, options or continuations)."""
    lines = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = " ".join(raw.split(" #", 1)[0].split())
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise InstallError(f"{what} failed ({' '.join(command[:4])} ...):\n{detail}")
    return result.stdout


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def install_lock(lock: Path) -> None:
    if not requirement_lines(lock.read_text(encoding="utf-8")):
        print(f"{lock}: no requirements to install")
        return
    print(f"installing {lock} (hash-checked, no dependency resolution)", flush=True)
    _run(_pip("install", "--require-hashes", "--no-deps", "-r", str(lock)), f"installing {lock}")


def install_node(node: Node, custom_nodes: Path, manifest_dir: Path) -> None:
    source = resolve_repo(node.repo, manifest_dir)
    dest = custom_nodes / node.name
    if dest.exists():
        raise InstallError(f"{dest} already exists: is {node.name!r} part of the ComfyUI source?")
    print(f"{node.name}: {node.repo} @ {node.commit}", flush=True)
    git = ["git", "-c", "safe.directory=*", "-c", "advice.detachedHead=false"]
    _run([*git, "clone", "--quiet", "--no-checkout", source, str(dest)], f"cloning {node.repo}")
    probe = subprocess.run(
        [*git, "cat-file", "-e", f"{node.commit}^{{commit}}"], cwd=dest, capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise InstallError(
            f"{node.repo} has no commit {node.commit} (node {node.name}); was it rewritten upstream? "
            "Pin an existing commit in the manifest."
        )
    _run([*git, "checkout", "--quiet", "--detach", node.commit], f"checking out {node.name}", cwd=dest)
    head = _run([*git, "rev-parse", "HEAD"], "reading HEAD", cwd=dest).strip()
    if head != node.commit:
        raise InstallError(f"{node.name}: checked out {head}, expected {node.commit}")
    if (dest / ".gitmodules").exists():
        _run([*git, "submodule", "update", "--init", "--recursive"], f"submodules of {node.name}", cwd=dest)
    # The commit is recorded in the image; git metadata would only add size and mtimes.
    for git_dir in sorted(dest.rglob(".git"), key=lambda p: len(p.parts), reverse=True):
        if git_dir.is_dir():
            shutil.rmtree(git_dir)
        else:
            git_dir.unlink()


def check_requirements(files: list[Path]) -> None:
    """Every listed requirement must already be satisfied: nothing may be installed unpinned."""
    present = [f for f in files if f.is_file() and requirement_lines(f.read_text(encoding="utf-8"))]
    if present:
        args = ["install", "--dry-run", "--no-index", "--quiet"]
        for path in present:
            args += ["-r", str(path)]
        result = subprocess.run(_pip(*args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            listing = ", ".join(str(p) for p in present)
            raise InstallError(
                f"the venv lock does not satisfy the requirements of {listing}:\n"
                f"{(result.stderr or result.stdout).strip()}\n{RELOCK_HINT}"
            )
    _run(_pip("check"), "pip check (installed packages are consistent)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="the ComfyUI source directory")
    parser.add_argument("--manifest", type=Path, required=True, help="custom-nodes.toml")
    parser.add_argument("--lock", type=Path, required=True, help="hash-locked requirements for the venv")
    parser.add_argument("--record", type=Path, required=True, help="where to write what was installed")
    args = parser.parse_args(argv)
    try:
        if not (args.comfyui / "main.py").is_file():
            raise InstallError(
                f"{args.comfyui} has no main.py: the `comfyui` context is not a ComfyUI source"
            )
        nodes = parse_manifest(args.manifest.read_text(encoding="utf-8"), str(args.manifest))
        install_lock(args.lock)
        custom_nodes = args.comfyui / "custom_nodes"
        custom_nodes.mkdir(exist_ok=True)
        for node in nodes:
            install_node(node, custom_nodes, args.manifest.parent)
        check_requirements(
            [args.comfyui / "requirements.txt", *(custom_nodes / n.name / "requirements.txt" for n in nodes)]
        )
    except (InstallError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps([asdict(n) for n in nodes], indent=2) + "\n", encoding="utf-8")
    print(f"installed {len(nodes)} custom node(s); record in {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
