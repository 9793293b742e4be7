"""Shared fixtures for the model-location tests: a small real lock and the places files live in.

The lock mirrors models.lock.yaml's shape (two sets sharing most entries, several repos, every
LTX-2 folder, one entry whose sha256 and size are unknown) with small generated files whose
sha256 and size are real, so locating, verification and downloads all run against real bytes.
Import from test modules: ``from tests.models.conftest_locate import ...`` (pytest fixtures are
re-exported by importing them into the test module).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from handler.buildinfo import BuildInfo
from handler.models.lock import LockEntry, ModelLock, parse_lock
from handler.settings import Settings

REV_MAIN = "a1" * 20
REV_OLD = "b2" * 20


@dataclass(frozen=True)
class Spec:
    id: str
    role: str
    repo: str
    path: str
    folder: str
    filename: str
    size: int
    known: bool = True  # sha256 and size written into the lock


SPECS = (
    Spec(
        "ckpt-fp8",
        "checkpoint",
        "Lightricks/LTX-2",
        "ltx-2-19b-dev-fp8.safetensors",
        "checkpoints",
        "ltx-2-19b-dev-fp8.safetensors",
        3001,
    ),
    Spec(
        "ckpt-bf16",
        "checkpoint",
        "Lightricks/LTX-2",
        "ltx-2-19b-dev.safetensors",
        "checkpoints",
        "ltx-2-19b-dev.safetensors",
        4001,
    ),
    Spec(
        "gemma",
        "text_encoder",
        "Comfy-Org/ltx-2",
        "split_files/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors",
        "text_encoders",
        "gemma_3_12B_it_fp4_mixed.safetensors",
        2001,
    ),
    Spec(
        "distilled-lora",
        "lora",
        "Lightricks/LTX-2",
        "ltx-2-19b-distilled-lora-384.safetensors",
        "loras",
        "ltx-2-19b-distilled-lora-384.safetensors",
        1501,
    ),
    Spec(
        "upscaler",
        "upscaler",
        "Lightricks/LTX-2",
        "ltx-2-spatial-upscaler-x2-1.0.safetensors",
        "latent_upscale_models",
        "ltx-2-spatial-upscaler-x2-1.0.safetensors",
        1201,
    ),
    Spec(
        "canny-lora",
        "ic_lora",
        "Lightricks/LTX-2-19b-IC-LoRA-Canny-Control",
        "ltx-2-19b-ic-lora-canny-control.safetensors",
        "loras",
        "ltx-2-19b-ic-lora-canny-control.safetensors",
        701,
        known=False,
    ),
    Spec(
        "lotus",
        "diffusion_model",
        "Comfy-Org/lotus",
        "lotus-depth-d-v1-1.safetensors",
        "diffusion_models",
        "lotus-depth-d-v1-1.safetensors",
        901,
    ),
    Spec(
        "sd-vae",
        "vae",
        "stabilityai/sd-vae-ft-mse-original",
        "vae-ft-mse-840000-ema-pruned.safetensors",
        "vae",
        "vae-ft-mse-840000-ema-pruned.safetensors",
        801,
    ),
)
SET_ROLES = {
    "checkpoint": None,  # per set
    "text_encoder": "gemma",
    "distilled_lora": "distilled-lora",
    "spatial_upscaler": "upscaler",
    "canny_ic_lora": "canny-lora",
    "depth_model": "lotus",
    "depth_vae": "sd-vae",
}
SPEC_BY_ID = {s.id: s for s in SPECS}


def content_for(spec_id: str, size: int | None = None) -> bytes:
    """Deterministic bytes of an entry (a different seed gives same-size, different content)."""
    size = SPEC_BY_ID[spec_id].size if size is None else size
    seed = hashlib.sha256(spec_id.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def lock_text(specs=SPECS) -> str:
    lines = ["schema: 1", "entries:"]
    for s in specs:
        data = content_for(s.id)
        sha = hashlib.sha256(data).hexdigest() if s.known else None
        lines += [
            f"  {s.id}:",
            f"    role: {s.role}",
            f"    repo: {s.repo}",
            f"    path: {s.path}",
            f"    revision: {REV_MAIN if s.known else 'null'}",
            f"    sha256: {sha or 'null'}",
            f"    size: {len(data) if s.known else 'null'}",
            f"    folder: {s.folder}",
            f"    filename: {s.filename}",
            "    license: mit",
        ]
    lines.append("sets:")
    for set_name, ckpt in (("fp8", "ckpt-fp8"), ("bf16", "ckpt-bf16")):
        lines += [f"  {set_name}:", f"    description: test set {set_name}", "    models:"]
        for role, entry_id in SET_ROLES.items():
            lines.append(f"      {role}: {entry_id or ckpt}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def small_lock(tmp_path: Path) -> ModelLock:
    path = tmp_path / "models.lock.yaml"
    path.write_text(lock_text(), encoding="utf-8")
    return parse_lock(path.read_text(encoding="utf-8"), source=path)


@dataclass
class Places:
    """Temporary directories laid out like each source."""

    root: Path
    volume: Path
    baked: Path
    worker_home: Path

    @property
    def volume_models(self) -> Path:
        return self.volume / "models"

    @property
    def pod_models(self) -> Path:
        return self.volume / "ComfyUI" / "models"

    @property
    def hub(self) -> Path:
        return self.volume / "huggingface-cache" / "hub"

    def settings(self, **env: str) -> Settings:
        base = {
            "RUNPOD_VOLUME_PATH": str(self.volume),
            "BAKED_MODELS_DIR": str(self.baked),
            "WORKER_HOME": str(self.worker_home),
        }
        base.update(env)
        return Settings.from_env(base)


@pytest.fixture
def places(tmp_path: Path) -> Places:
    p = Places(tmp_path, tmp_path / "runpod-volume", tmp_path / "baked", tmp_path / "worker")
    p.volume.mkdir()
    p.worker_home.mkdir()
    return p


def put(root: Path, entry: LockEntry | str, data: bytes | None = None, folder: str | None = None) -> Path:
    """Write an entry's file (right bytes by default) as ``root/<folder>/<filename>``."""
    spec = SPEC_BY_ID[entry if isinstance(entry, str) else entry.id]
    path = root / (folder or spec.folder) / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content_for(spec.id) if data is None else data)
    return path


def put_set(root: Path, lock: ModelLock, set_name: str, skip: tuple[str, ...] = ()) -> None:
    for entry in lock.set_entries(set_name):
        if entry.id not in skip:
            put(root, entry)


def put_hf_cache(
    hub: Path, repo: str, files: Mapping[str, bytes], revision: str = REV_MAIN, refs_main: bool = True
) -> Path:
    """A Hugging Face cache repo as RunPod lays it out: blobs/<sha256>, snapshot symlinks, refs/main."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    for rel, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = repo_dir / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if refs_main:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(revision)
    return repo_dir


def baked_info(
    places: Places, set_name: str = "fp8", *, verified: bool = True, lock: ModelLock | None = None
) -> BuildInfo:
    return BuildInfo(
        variant=set_name,
        model_set=set_name,
        models_dir=str(places.baked),
        models_verified=verified,
        lock_digest=lock.digest if lock is not None else None,
    )


SLIM = BuildInfo(variant="slim")
