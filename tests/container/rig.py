"""The container test rig: what `docker buildx bake` needs to build the three variants offline.

No registry, GitHub or Hugging Face is reachable on the test machines (TESTRIG.md), so the bake
runs with a second bake file (`write_bake_override`) that points

- the base image at ``local/base:bookworm`` (``.ci/build-base-image.sh``), without torch;
- the ``comfyui`` context at the project's ComfyUI double (started like ComfyUI's main.py);
- the custom-node manifest at a local git repository made here, pinned by commit, whose
  requirement (``inflection``) must land in ComfyUI's venv, with a venv lock made here by uv;
- the model lock at a test lock of small generated files, served by the Hugging Face double
  (`tests.doubles.hf`) on 127.0.0.1, which build steps reach through host networking; one repo is
  gated, so the build only succeeds when the token secret reaches `fetch`.

Used by tests/container/conftest.py and benchmarks/bench_build.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.doubles.hf import generated_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "local/base:bookworm"
TEST_IMAGE = "ltx2-worker-test"  # + a per-run suffix: concurrent test runs never share tags
TEST_VERSION = "test"
VARIANTS = ("baked", "slim", "fp8")
VARIANT_SETS = {"baked": "bf16", "fp8": "fp8", "slim": None}
COMFYUI_DOUBLE = REPO_ROOT / "tests" / "doubles" / "comfyui"
# The custom node's requirement: small, pure Python, and not one of the handler's dependencies,
# so finding it only in /opt/venv proves where custom-node requirements go.
NODE_REQUIREMENT = "inflection"
# The Debian base of the rig has Python 3.11 (the CUDA Ubuntu base has 3.12).
RIG_PYTHON = "3.11"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


# --------------------------------------------------------------------------------------------
# Models: a lock of small generated files and the Hub double's spec serving them
# --------------------------------------------------------------------------------------------

PUBLIC_REPO = "rig-org/ltx-test"
GATED_REPO = "rig-org/gated-lora"
LICENCE_TEXT = "LTX-2 Community License Agreement (test copy)\n\nThe full agreement goes here.\n"


@dataclass(frozen=True)
class ModelFile:
    entry_id: str
    repo: str
    path: str
    folder: str
    filename: str
    size: int
    seed: str

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"

    @property
    def data(self) -> bytes:
        return generated_bytes(self.seed, self.size)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


MODEL_FILES = (
    ModelFile(
        "ckpt-bf16",
        PUBLIC_REPO,
        "ckpt-bf16.safetensors",
        "checkpoints",
        "ckpt-bf16.safetensors",
        3 << 20,
        "bf16",
    ),
    ModelFile(
        "ckpt-fp8", PUBLIC_REPO, "ckpt-fp8.safetensors", "checkpoints", "ckpt-fp8.safetensors", 2 << 20, "fp8"
    ),
    ModelFile(
        "text-encoder", PUBLIC_REPO, "split/te.safetensors", "text_encoders", "te.safetensors", 1 << 20, "te"
    ),
    ModelFile("gated-lora", GATED_REPO, "lora.safetensors", "loras", "lora.safetensors", 256 << 10, "lora"),
)
SETS = {
    "bf16": {"checkpoint": "ckpt-bf16", "text_encoder": "text-encoder", "distilled_lora": "gated-lora"},
    "fp8": {"checkpoint": "ckpt-fp8", "text_encoder": "text-encoder", "distilled_lora": "gated-lora"},
}
LICENCE_RELPATH = "licenses/LTX-2-Community-License.txt"


def set_files(model_set: str) -> list[ModelFile]:
    ids = set(SETS[model_set].values())
    return [f for f in MODEL_FILES if f.entry_id in ids]


def expected_model_tree(model_set: str) -> dict[str, int]:
    """relpath -> size of everything a baked image of ``model_set`` carries under its models dir."""
    tree = {f.relpath: f.size for f in set_files(model_set)}
    tree[LICENCE_RELPATH] = len(LICENCE_TEXT.encode())
    return tree


def hub_spec(token: str) -> dict[str, Any]:
    """The Hub double's spec: the public repo (with the licence) and a gated one only ``token`` reads."""
    repos: dict[str, Any] = {}
    for f in MODEL_FILES:
        repo = repos.setdefault(f.repo, {"gated": "manual" if f.repo == GATED_REPO else False, "files": {}})
        repo["files"][f.path] = {"size": f.size, "seed": f.seed}
    repos[PUBLIC_REPO]["files"]["LICENSE"] = {"text": LICENCE_TEXT}
    return {
        "tokens": {token: [GATED_REPO]},
        "repos": {
            name: {"gated": r["gated"], "commits": [{"files": r["files"]}]} for name, r in repos.items()
        },
    }


def lock_text() -> str:
    """models.lock.yaml for the rig: every file pinned by sha256 and size (revision: main)."""
    lines = [
        "# The container tests' model lock: small generated files served by the Hub double.",
        "schema: 1",
        "licenses:",
        "  ltx-2-community-license:",
        f"    repo: {PUBLIC_REPO}",
        "    path: LICENSE",
        "    revision: null",
        f"    sha256: {hashlib.sha256(LICENCE_TEXT.encode()).hexdigest()}",
        f"    size: {len(LICENCE_TEXT.encode())}",
        "    filename: LTX-2-Community-License.txt",
        "entries:",
    ]
    roles = {"checkpoints": "checkpoint", "text_encoders": "text_encoder", "loras": "lora"}
    for f in MODEL_FILES:
        lines += [
            f"  {f.entry_id}:",
            f"    role: {roles[f.folder]}",
            f"    repo: {f.repo}",
            f"    path: {f.path}",
            "    revision: null",
            f"    sha256: {f.sha256}",
            f"    size: {f.size}",
            f"    folder: {f.folder}",
            f"    filename: {f.filename}",
            "    license: ltx-2-community-license",
            f"    gated: {'true' if f.repo == GATED_REPO else 'false'}",
        ]
    lines.append("sets:")
    for name, roles_map in SETS.items():
        lines += [f"  {name}:", f"    description: rig set {name}", "    models:"]
        lines += [f"      {role}: {entry}" for role, entry in roles_map.items()]
    return "\n".join(lines) + "\n"


def write_hf_cache(
    hub_dir: Path, files: Sequence[ModelFile], revision: str, *, licence: bool = False
) -> None:
    """A Hugging Face hub cache holding ``files`` (the layout of ~/.cache/huggingface/hub and of
    RunPod's model cache): blobs by hash, ``refs/main`` naming a snapshot of symlinks into blobs."""
    entries = [(f.repo, f.path, f.data) for f in files]
    if licence:
        entries.append((PUBLIC_REPO, "LICENSE", LICENCE_TEXT.encode()))
    for repo, path, data in entries:
        repo_dir = hub_dir / f"models--{repo.replace('/', '--')}"
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / "main").write_text(revision)
        link = repo_dir / "snapshots" / revision / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


# --------------------------------------------------------------------------------------------
# ComfyUI: the double as the `comfyui` context, a custom node repository and the venv lock
# --------------------------------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "rig",
        "GIT_AUTHOR_EMAIL": "rig@localhost",
        "GIT_COMMITTER_NAME": "rig",
        "GIT_COMMITTER_EMAIL": "rig@localhost",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_custom_node_repo(repo: Path) -> str:
    """A git repository holding a custom node that needs ``NODE_REQUIREMENT``; returns its commit."""
    repo.mkdir(parents=True)
    (repo / "__init__.py").write_text(
        f"import {NODE_REQUIREMENT}  # fails to import unless its requirement is in ComfyUI's venv\n\n"
        "NODE_CLASS_MAPPINGS = {}\n"
        "NODE_DISPLAY_NAME_MAPPINGS = {}\n"
    )
    (repo / "requirements.txt").write_text(f"{NODE_REQUIREMENT}\n")
    _git("init", "--quiet", "--initial-branch=main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "--quiet", "-m", "rig custom node", cwd=repo)
    return _git("rev-parse", "HEAD", cwd=repo).strip()


def make_pins(pins: Path) -> str:
    """The `comfyui-pins` context: manifest (a local repo, pinned) and a hash lock for the rig's venv."""
    commit = make_custom_node_repo(pins / "repos" / "rig-node")
    (pins / "custom-nodes.toml").write_text(
        "# The container tests' custom node: a local repository, pinned like the real ones.\n"
        "[[node]]\n"
        'name = "rig-node"\n'
        'repo = "repos/rig-node"\n'
        f'commit = "{commit}"\n'
    )
    command = [
        "uv", "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
        "--python-version", RIG_PYTHON, "--python-platform", "x86_64-manylinux_2_28",
        str(COMFYUI_DOUBLE / "requirements.txt"), str(pins / "repos" / "rig-node" / "requirements.txt"),
        "-o", str(pins / "requirements.lock.txt"),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    return commit


# --------------------------------------------------------------------------------------------
# Bake
# --------------------------------------------------------------------------------------------


def hcl_string(value: str) -> str:
    return json.dumps(value)


def write_bake_override(path: Path, variables: Mapping[str, str | bool]) -> Path:
    """A second bake file that only changes variable defaults (the first file stays as shipped)."""
    lines = ["# A bake override written by tests/container/rig.py: only variables change."]
    for name, value in variables.items():
        rendered = ("true" if value else "false") if isinstance(value, bool) else hcl_string(value)
        lines.append(f"variable {hcl_string(name)} {{\n  default = {rendered}\n}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def rig_variables(
    *, pins: Path, lock_dir: Path, hf_endpoint: str, created: str, image: str = TEST_IMAGE
) -> dict[str, str | bool]:
    variables: dict[str, str | bool] = {
        "IMAGE": image,
        "VERSION": TEST_VERSION,
        "BASE_IMAGE": BASE_IMAGE,
        "INSTALL_TORCH": False,
        "COMFYUI_COMMIT": "rig-comfyui-double",
        "COMFYUI_PINS": str(pins),
        "MODELS_LOCK_DIR": str(lock_dir),
        "HF_ENDPOINT": hf_endpoint,
        "CREATED": created,
    }
    # PyPI is reached through a TLS-inspecting proxy on these machines (TESTRIG.md, "TLS").
    if CA_BUNDLE.is_file():
        variables["CA_BUNDLE"] = str(CA_BUNDLE)
    return variables


HOST_NETWORK_BAKE_FILE = "images/host-network.hcl"
PATH_VARIABLES = ("COMFYUI_PINS", "MODELS_LOCK_DIR", "CA_BUNDLE", "HF_CACHE")


@dataclass(frozen=True)
class BakeSetup:
    """Everything a rig bake needs: the override, the ComfyUI context, the paths bake may read."""

    override: Path
    comfyui_context: Path
    lock_path: Path
    allow_read: tuple[Path, ...]
    image: str
    root: Path = REPO_ROOT  # the checkout to build (benchmarks build a modified copy)
    built: set[str] = field(default_factory=set)  # image ids made by this run

    def image_ref(self, variant: str) -> str:
        return f"{self.image}:{TEST_VERSION}-{variant}"

    def record_images(self) -> None:
        """Remember the image ids the tags point at now (a rebuild leaves the old ones untagged)."""
        for variant in VARIANTS:
            result = subprocess.run(
                ["docker", "image", "inspect", "-f", "{{.Id}}", self.image_ref(variant)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode == 0:
                self.built.add(result.stdout.strip())

    def remove_images(self) -> None:
        """Remove every image this run built (their layers stay in the build cache)."""
        self.record_images()
        refs = [self.image_ref(v) for v in VARIANTS]
        subprocess.run(
            ["docker", "image", "rm", *refs, *sorted(self.built)], capture_output=True, check=False
        )

    def command(self, targets: Sequence[str], *extra: str) -> list[str]:
        allow = ["--allow", "network.host"]
        for path in self.allow_read:
            allow += ["--allow", f"fs.read={path}"]
        return [
            "docker", "buildx", "bake",
            # Build steps reach the Hub double on 127.0.0.1 through host networking.
            "-f", str(self.root / "docker-bake.hcl"), "-f", str(self.root / HOST_NETWORK_BAKE_FILE),
            "-f", str(self.override),
            *allow,
            "--set", f"*.contexts.comfyui={self.comfyui_context}",
            "--progress", "plain",
            *extra, *targets,
        ]  # fmt: skip


def prepare(
    rig_dir: Path,
    hf_endpoint: str,
    *,
    created: str = "2026-01-01T00:00:00Z",
    comfyui_context: Path = COMFYUI_DOUBLE,
    root: Path = REPO_ROOT,
) -> BakeSetup:
    """Make the pins, the test lock and the bake override under ``rig_dir`` (images get a fresh name)."""
    image = f"{TEST_IMAGE}-{uuid.uuid4().hex[:8]}"
    pins = rig_dir / "pins"
    make_pins(pins)
    lock_dir = rig_dir / "lock"
    lock_dir.mkdir()
    lock_path = lock_dir / "models.lock.yaml"
    lock_path.write_text(lock_text())
    variables = rig_variables(
        pins=pins, lock_dir=lock_dir, hf_endpoint=hf_endpoint, created=created, image=image
    )
    override = write_bake_override(rig_dir / "docker-bake.rig.hcl", variables)
    read = [Path(str(variables[name])) for name in PATH_VARIABLES if name in variables]
    if root not in comfyui_context.parents:
        read.append(comfyui_context)
    return BakeSetup(override, comfyui_context, lock_path, tuple(read), image, root)


@dataclass(frozen=True)
class BakeResult:
    seconds: float
    log: str


def bake(
    setup: BakeSetup,
    targets: Sequence[str],
    *extra: str,
    token: str | None = None,
    log_path: Path | None = None,
) -> BakeResult:
    """Run the bake; raise with the log's tail when it fails. The token goes in the environment only."""
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    if token is not None:
        env["HF_TOKEN"] = token
    started = time.monotonic()
    result = subprocess.run(
        setup.command(targets, *extra), cwd=setup.root, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    log = result.stdout + result.stderr
    if log_path is not None:
        log_path.write_text(log)
    setup.record_images()
    if result.returncode != 0:
        raise RuntimeError(f"docker buildx bake failed ({result.returncode}):\n{log[-6000:]}")
    return BakeResult(seconds=seconds, log=log)


# --------------------------------------------------------------------------------------------
# Looking inside images
# --------------------------------------------------------------------------------------------


def inspect_image(ref: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "image", "inspect", ref], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)[0]


def layer_diff_ids(ref: str) -> list[str]:
    return list(inspect_image(ref)["RootFS"]["Layers"])


def save_images(refs: Sequence[str], dest: Path) -> Path:
    """`docker save` of several images into one archive (shared layers stored once)."""
    subprocess.run(["docker", "save", "-o", str(dest), *refs], check=True, capture_output=True)
    return dest


def layer_members(saved: Path, wanted: set[str]) -> dict[str, list[tarfile.TarInfo]]:
    """diff id -> the members of that layer, for the ``wanted`` layers of a `docker save` archive.

    Each image's manifest lists its layer files in the order of its config's ``rootfs.diff_ids``."""
    layers: dict[str, list[tarfile.TarInfo]] = {}
    with tarfile.open(saved) as archive:
        for manifest in json.load(_member(archive, "manifest.json")):
            diff_ids = json.load(_member(archive, manifest["Config"]))["rootfs"]["diff_ids"]
            for diff_id, layer_path in zip(diff_ids, manifest["Layers"], strict=True):
                if diff_id in wanted and diff_id not in layers:
                    with tarfile.open(fileobj=_member(archive, layer_path)) as layer:
                        layers[diff_id] = layer.getmembers()
    missing = wanted - set(layers)
    if missing:
        raise AssertionError(f"{saved} has no layers {sorted(missing)}")
    return layers


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise AssertionError(f"{name} is not a file in the saved image")
    return handle


def run_in_image(ref: str, *command: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["docker", "run", "--rm", "--network", "none"]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    return subprocess.run([*args, ref, *command], capture_output=True, text=True, check=False)
