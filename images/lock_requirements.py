"""Regenerate the images' hash-locked requirement files (run from the repository root with uv).

    uv run python images/lock_requirements.py handler      # images/requirements/handler.txt from uv.lock
    uv run python images/lock_requirements.py torch        # images/requirements/torch.txt (PyTorch index)
    uv run python images/lock_requirements.py comfyui      # images/comfyui/requirements.lock.txt
    uv run python images/lock_requirements.py all           # or several: torch comfyui

Three locks, three venv needs:

- ``handler.txt``: the worker's own venv (/opt/worker/venv), exported from uv.lock with hashes;
  a unit test fails when it and uv.lock disagree.
- ``torch.txt``: torch, torchvision, torchaudio from ``TORCH_INDEX_URL`` plus their dependencies
  (the nvidia-* runtime wheels, triton, ...) for the ComfyUI venv (/opt/venv), CPython 3.12 on
  x86_64 (the default base image), from ``torch.in``.
- ``comfyui/requirements.lock.txt``: everything else the ComfyUI venv needs: ComfyUI's own
  requirements at the pinned commit and every custom node's, resolved together with torch.txt as
  constraints and with torch.txt's packages left out (the base stage installs them). The inputs
  are kept in ``comfyui/requirements.in`` for review.

ComfyUI and the custom nodes are cloned at their pins (docker-bake.hcl's COMFYUI_REPO and
COMFYUI_COMMIT, comfyui/custom-nodes.toml); ``--comfyui-requirements FILE`` and
``--node-source NAME=DIR`` use local copies instead, for machines without GitHub access.
Needs ``uv`` and network access to PyPI (and GitHub, and the PyTorch index, for what they serve).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
HANDLER_LOCK = IMAGES / "requirements" / "handler.txt"
TORCH_IN = IMAGES / "requirements" / "torch.in"
TORCH_LOCK = IMAGES / "requirements" / "torch.txt"
COMFYUI_IN = IMAGES / "comfyui" / "requirements.in"
COMFYUI_LOCK = IMAGES / "comfyui" / "requirements.lock.txt"
MANIFEST = IMAGES / "comfyui" / "custom-nodes.toml"
BAKE_FILE = ROOT / "docker-bake.hcl"

# The default base image's Python and platform (nvidia/cuda ubuntu24.04: CPython 3.12, glibc 2.39;
# manylinux_2_28 is what the torch wheels need).
PYTHON_VERSION = "3.12"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
PYPI = "https://pypi.org/simple"

HANDLER_EXPORT = ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt"]
HANDLER_HEADER = (
    "# The worker venv's requirements (/opt/worker/venv), exported with hashes from uv.lock.\n"
    "# Regenerate: uv run python images/lock_requirements.py handler (a test checks it is in sync).\n"
)


def handler_lock_text(root: Path = ROOT) -> str:
    """What images/requirements/handler.txt must contain for the current uv.lock."""
    exported = subprocess.run(
        [*HANDLER_EXPORT, "--no-header"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return HANDLER_HEADER + exported


def bake_variable(name: str, text: str) -> str:
    """A variable's default from docker-bake.hcl (string defaults only)."""
    match = re.search(rf'variable\s+"{re.escape(name)}"\s*\{{[^}}]*?default\s*=\s*"([^"]*)"', text, re.S)
    if not match:
        raise SystemExit(f"{BAKE_FILE} has no string default for variable {name}")
    return match.group(1)


def package_names(lock_text: str) -> list[str]:
    """Names of the packages pinned in a requirements lock."""
    return re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock_text, re.M)


def without_hashes(lock_text: str, drop_local_versions: bool = False) -> str:
    """A lock as plain pins, usable as a constraints file (``+cu128`` dropped when asked)."""
    pins = [line.split(" ")[0] for line in lock_text.splitlines() if "==" in line.split(" ")[0]]
    if drop_local_versions:
        pins = [pin.split("+", 1)[0] for pin in pins]
    return "".join(f"{pin}\n" for pin in pins)


def _compile(inputs: list[Path], output: Path, extra: list[str]) -> None:
    command = [
        "uv", "pip", "compile", "--quiet", "--generate-hashes", "--no-header", "--no-annotate",
        "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM,
        *extra, *map(str, inputs), "-o", str(output),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True)


def _prepend(path: Path, header: str) -> None:
    path.write_text(header + path.read_text(encoding="utf-8"), encoding="utf-8")


def lock_handler() -> None:
    HANDLER_LOCK.write_text(handler_lock_text(), encoding="utf-8")
    print(f"wrote {HANDLER_LOCK.relative_to(ROOT)}")


def lock_torch() -> None:
    index = bake_variable("TORCH_INDEX_URL", BAKE_FILE.read_text())
    _compile([TORCH_IN], TORCH_LOCK, ["--index-url", index, "--extra-index-url", PYPI])
    _prepend(
        TORCH_LOCK,
        f"# PyTorch for the ComfyUI venv (/opt/venv): CPython {PYTHON_VERSION}, {PYTHON_PLATFORM}.\n"
        f"# From {index} (torch*) and PyPI. Regenerate: uv run python images/lock_requirements.py torch\n",
    )
    print(f"wrote {TORCH_LOCK.relative_to(ROOT)}")


def _clone(repo: str, commit: str, dest: Path) -> Path:
    subprocess.run(
        ["git", "clone", "--quiet", "--filter=blob:none", "--no-checkout", repo, str(dest)], check=True
    )
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", commit], check=True)
    return dest


def comfyui_inputs(comfyui_requirements: Path | None, node_sources: dict[str, Path], work: Path) -> str:
    """requirements.in: ComfyUI's requirements, then each custom node's, each under its pin."""
    bake = BAKE_FILE.read_text()
    repo, commit = bake_variable("COMFYUI_REPO", bake), bake_variable("COMFYUI_COMMIT", bake)
    if comfyui_requirements is None:
        comfyui_requirements = _clone(repo, commit, work / "ComfyUI") / "requirements.txt"
    sections = [f"# ComfyUI {repo} @ {commit}\n{comfyui_requirements.read_text(encoding='utf-8').strip()}\n"]
    for node in tomllib.loads(MANIFEST.read_text())["node"]:
        source = node_sources.get(node["name"]) or _clone(node["repo"], node["commit"], work / node["name"])
        requirements = source / "requirements.txt"
        body = requirements.read_text(encoding="utf-8").strip() if requirements.is_file() else "# (none)"
        sections.append(f"# {node['name']} {node['repo']} @ {node['commit']}\n{body}\n")
    return "\n".join(sections)


def lock_comfyui(
    comfyui_requirements: Path | None, node_sources: dict[str, Path], torch_metadata_from_pypi: bool
) -> None:
    torch_lock = TORCH_LOCK.read_text(encoding="utf-8")
    if torch_metadata_from_pypi:
        # PyPI's build of the same torch version stands in for the +cu128 one (same dependencies).
        indexes = ["--index-url", PYPI]
    else:
        indexes = [
            "--index-url",
            bake_variable("TORCH_INDEX_URL", BAKE_FILE.read_text()),
            "--extra-index-url",
            PYPI,
        ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        COMFYUI_IN.write_text(
            "# Inputs of requirements.lock.txt, collected by images/lock_requirements.py: do not edit.\n"
            + comfyui_inputs(comfyui_requirements, node_sources, work),
            encoding="utf-8",
        )
        constraints = work / "torch-constraints.txt"
        constraints.write_text(without_hashes(torch_lock, torch_metadata_from_pypi), encoding="utf-8")
        leave_out = [arg for name in package_names(torch_lock) for arg in ("--no-emit-package", name)]
        _compile([COMFYUI_IN], COMFYUI_LOCK, [*indexes, "-c", str(constraints), *leave_out])
    _prepend(
        COMFYUI_LOCK,
        f"# The ComfyUI venv (/opt/venv) minus PyTorch (images/requirements/torch.txt, installed first):\n"
        f"# ComfyUI's and the custom nodes' requirements (requirements.in), CPython {PYTHON_VERSION}, {PYTHON_PLATFORM}.\n"
        "# Regenerate: uv run python images/lock_requirements.py comfyui\n",
    )
    print(f"wrote {COMFYUI_LOCK.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="+", choices=["handler", "torch", "comfyui", "all"])
    parser.add_argument("--comfyui-requirements", type=Path, help="ComfyUI's requirements.txt at the pin")
    parser.add_argument(
        "--node-source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a custom node checked out at its pin",
    )
    parser.add_argument(
        "--torch-metadata-from-pypi",
        action="store_true",
        help="comfyui: resolve against PyPI's build of the locked torch version (no PyTorch index access)",
    )
    args = parser.parse_args(argv)
    node_sources = dict((n, Path(d)) for n, d in (item.split("=", 1) for item in args.node_source))
    which = set(args.which)
    if which & {"handler", "all"}:
        lock_handler()
    if which & {"torch", "all"}:
        lock_torch()
    if which & {"comfyui", "all"}:
        lock_comfyui(args.comfyui_requirements, node_sources, args.torch_metadata_from_pypi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
