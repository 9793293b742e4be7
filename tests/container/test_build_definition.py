"""The build definition without building: Dockerfile lint, locks in sync, pins well-formed, the
build scripts' own logic, and what `docker buildx bake --print` resolves to."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.container import rig

ROOT = rig.REPO_ROOT
DOCKERFILE = ROOT / "images" / "Dockerfile"
BAKE_FILE = ROOT / "docker-bake.hcl"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


install_nodes = _load(ROOT / "images" / "scripts" / "install_custom_nodes.py")
fetch_models = _load(ROOT / "images" / "scripts" / "fetch_models.py")
lock_requirements = _load(ROOT / "images" / "lock_requirements.py")


# --- lint and locks ---------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_handler_requirements_match_uv_lock() -> None:
    if shutil.which("uv") is None:
        pytest.fail("uv is needed to export uv.lock")
    committed = (ROOT / "images" / "requirements" / "handler.txt").read_text()
    assert committed == lock_requirements.handler_lock_text(ROOT), (
        "images/requirements/handler.txt is stale: run `uv run python images/lock_requirements.py handler`"
    )


def _requirements(text: str) -> list[tuple[str, list[str]]]:
    """(pin, hashes) per requirement of a hash-locked file."""
    entries: list[tuple[str, list[str]]] = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
        if lines:
            entries.append((lines[0].rstrip(" \\"), re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return entries


@pytest.mark.parametrize(
    "path",
    [
        "images/requirements/handler.txt",
        "images/requirements/torch.txt",
        "images/comfyui/requirements.lock.txt",
    ],
)
def test_every_locked_requirement_is_pinned_with_hashes(path: str) -> None:
    entries = _requirements((ROOT / path).read_text())
    assert entries
    for pin, hashes in entries:
        assert re.match(r"^[A-Za-z0-9._-]+==\S+", pin), pin
        assert hashes, f"{path}: {pin} has no hash"


def test_torch_lock_matches_the_bake_pins() -> None:
    bake = BAKE_FILE.read_text()
    pins = dict(
        pin.split("==", 1) for pin, _ in _requirements((ROOT / "images/requirements/torch.txt").read_text())
    )
    assert pins["torch"] == lock_requirements.bake_variable("TORCH_VERSION", bake)
    index = lock_requirements.bake_variable("TORCH_INDEX_URL", bake)
    local = index.rstrip("/").rsplit("/", 1)[-1]  # cu128
    assert all(pins[name].endswith(f"+{local}") for name in ("torch", "torchvision", "torchaudio"))
    # The ComfyUI lock leaves every torch-lock package to the base stage.
    comfy = {
        pin.split("==")[0].lower()
        for pin, _ in _requirements((ROOT / "images/comfyui/requirements.lock.txt").read_text())
    }
    assert not comfy & {name.lower() for name in pins}


def test_bake_version_is_the_project_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert lock_requirements.bake_variable("VERSION", BAKE_FILE.read_text()) == project


def test_base_image_is_pinned_by_digest() -> None:
    base = lock_requirements.bake_variable("BASE_IMAGE", BAKE_FILE.read_text())
    assert re.match(r"^nvidia/cuda:12\.8\.\d+-[a-z-]+-ubuntu24\.04@sha256:[0-9a-f]{64}$", base), base
    assert f"ARG BASE_IMAGE={base}\n" in DOCKERFILE.read_text()
    assert re.fullmatch(
        r"[0-9a-f]{40}", lock_requirements.bake_variable("COMFYUI_COMMIT", BAKE_FILE.read_text())
    )


# --- the fetcher stage gets exactly the fetch code ----------------------------------------------------


def _handler_imports(path: Path) -> set[str]:
    """handler.* modules a file imports, at any depth (function-level imports included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.startswith("handler")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handler"):
            modules.add(node.module)
            modules |= {f"{node.module}.{a.name}" for a in node.names}
    return modules


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def fetch_closure() -> set[str]:
    """Repository paths of every handler module `handler.models.fetch` needs, packages included."""
    todo, seen = ["handler.models.fetch"], set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            file = _module_file(".".join(parts[:i]))
            if file is not None and file not in seen:
                seen.add(file)
                todo += sorted(_handler_imports(file))
    return {p.relative_to(ROOT).as_posix() for p in seen}


def fetcher_copies() -> set[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stage = text.split("FROM handler-venv AS fetcher", 1)[1].split("\nFROM ", 1)[0]
    copied: set[str] = set()
    for line in stage.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            copied |= {word for word in line.split()[1:-1] if word.startswith("handler/")}
    return copied


def test_the_fetcher_stage_copies_the_whole_fetch_closure() -> None:
    missing = fetch_closure() - fetcher_copies()
    assert not missing, f"add these to the fetcher stage's COPY lines in images/Dockerfile: {sorted(missing)}"


def test_the_fetcher_stage_copies_no_more_than_fetch_needs() -> None:
    # Anything else would re-run model downloads on changes that do not affect them.
    assert fetcher_copies() - fetch_closure() == set()


# --- install_custom_nodes.py --------------------------------------------------------------------------


def test_the_shipped_manifest_pins_the_seed_plan_by_commit() -> None:
    path = ROOT / "images" / "comfyui" / "custom-nodes.toml"
    nodes = install_nodes.parse_manifest(path.read_text(), str(path))
    assert {n.repo for n in nodes} == {
        "https://github.com/Lightricks/ComfyUI-LTXVideo.git",
        "https://github.com/kijai/ComfyUI-KJNodes.git",
        "https://github.com/cubiq/ComfyUI_essentials.git",
        "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes.git",
    }
    # The lock's inputs name the same pins.
    inputs = (ROOT / "images" / "comfyui" / "requirements.in").read_text()
    for node in nodes:
        assert f"# {node.name} {node.repo} @ {node.commit}" in inputs


def test_manifest_errors_name_every_problem() -> None:
    text = (
        '[[node]]\nname = "a"\nrepo = "r"\ncommit = "abc"\n\n[[node]]\nname = "a"\nrepo = ""\ncommit = "'
        + "0" * 40
        + '"\n'
    )
    with pytest.raises(install_nodes.InstallError) as caught:
        install_nodes.parse_manifest(text, "m.toml")
    message = str(caught.value)
    assert "m.toml" in message
    assert "node[0].commit: expected a full 40-hex commit id, got 'abc'" in message
    assert "node[1].name: 'a' appears twice" in message
    assert "node[1].repo" in message


def test_requirement_lines_and_repo_resolution(tmp_path: Path) -> None:
    text = "# comment\n-r other.txt\naiohttp>=3 \\\n  ; python_version > '3'\nnumpy  # trailing\n\n"
    assert install_nodes.requirement_lines(text) == ["aiohttp>=3 ; python_version > '3'", "numpy"]
    assert install_nodes.resolve_repo("https://example.org/x.git", tmp_path) == "https://example.org/x.git"
    assert install_nodes.resolve_repo("git@github.com:o/r.git", tmp_path) == "git@github.com:o/r.git"
    assert install_nodes.resolve_repo("repos/x", tmp_path) == str(tmp_path / "repos" / "x")


def test_install_node_checks_out_the_pinned_commit_without_git_metadata(tmp_path: Path) -> None:
    commit = rig.make_custom_node_repo(tmp_path / "pins" / "repos" / "node")
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    node = install_nodes.Node(name="node", repo="repos/node", commit=commit)

    install_nodes.install_node(node, custom_nodes, tmp_path / "pins")

    assert sorted(p.name for p in (custom_nodes / "node").iterdir()) == ["__init__.py", "requirements.txt"]


def test_install_node_refuses_a_commit_the_repository_lacks(tmp_path: Path) -> None:
    rig.make_custom_node_repo(tmp_path / "repo")
    node = install_nodes.Node(name="node", repo=str(tmp_path / "repo"), commit="f" * 40)
    with pytest.raises(install_nodes.InstallError, match=f"has no commit {'f' * 40} .node node."):
        install_nodes.install_node(node, tmp_path, tmp_path)


# --- fetch_models.py -----------------------------------------------------------------------------------


def test_tree_problems_names_missing_unexpected_and_linked_files(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a.safetensors").write_bytes(b"a")
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "meta").write_text("x")
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "l.safetensors").symlink_to(tmp_path / "checkpoints" / "a.safetensors")

    problems = fetch_models.tree_problems(tmp_path, {"checkpoints/a.safetensors", "vae/v.safetensors"})

    assert problems == [
        "loras/l.safetensors is a symlink; the image needs the file itself",
        "missing vae/v.safetensors",
        "unexpected .cache/huggingface/meta (only the set's files and licences may be baked)",
    ]
    assert fetch_models.tree_problems(tmp_path / "checkpoints", {"a.safetensors"}) == []


def test_normalise_fixes_modes_and_times(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    (tmp_path / "d" / "f").write_bytes(b"x")
    os.chmod(tmp_path / "d" / "f", 0o600)

    fetch_models.normalise(tmp_path)

    for path, mode in ((tmp_path, 0o755), (tmp_path / "d", 0o755), (tmp_path / "d" / "f", 0o644)):
        assert path.stat().st_mode & 0o777 == mode
        assert path.stat().st_mtime == 0


# --- docker buildx bake --print -------------------------------------------------------------------------


def _bake_print(*files: Path, env: dict[str, str] | None = None) -> dict:
    command = ["docker", "buildx", "bake", "--print"]
    for f in files:
        command += ["-f", str(f)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.container
def test_bake_print_shows_three_variants_from_shared_definitions() -> None:
    token = "hf_PRINTtokenMustNotAppear0000"
    plan = _bake_print(env={"HF_TOKEN": token})

    assert sorted(plan["group"]["default"]["targets"]) == ["baked", "fp8", "slim"]
    targets = plan["target"]
    assert sorted(targets) == ["baked", "fp8", "slim"]
    for name, target in targets.items():
        assert target["target"] == name
        assert target["dockerfile"] == "images/Dockerfile"
        assert target["secret"][0] == {"id": "hf_token", "env": "HF_TOKEN"}
        assert target["tags"] == [f"ltx2-runpod-worker:0.1.0-{name}"]
        assert "HF_TOKEN" not in target["args"]
    # Shared stages are the same build steps only if every input of them is the same in each target.
    shared = [{k: v for k, v in t.items() if k not in ("target", "tags", "labels")} for t in targets.values()]
    assert all(s == shared[0] for s in shared)
    assert shared[0]["contexts"]["comfyui"].endswith("#" + shared[0]["args"]["COMFYUI_COMMIT"])
    assert token not in json.dumps(plan)


@pytest.mark.container
def test_bake_print_with_the_rig_override(tmp_path: Path) -> None:
    override = rig.write_bake_override(
        tmp_path / "o.hcl",
        rig.rig_variables(pins=tmp_path, lock_dir=tmp_path, hf_endpoint="http://127.0.0.1:1", created="x"),
    )
    plan = _bake_print(BAKE_FILE, ROOT / rig.HOST_NETWORK_BAKE_FILE, override)
    for target in plan["target"].values():
        assert target["args"]["BASE_IMAGE"] == rig.BASE_IMAGE
        assert target["args"]["INSTALL_TORCH"] == "false"
        assert target["network"] == "host"
        assert target["entitlements"] == ["network.host"]
        assert target["contexts"]["models-lock"] == str(tmp_path)
