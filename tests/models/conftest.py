"""Fixtures for the lock / fetch / verify tests: a Hub double with a few small repos, and
lock files written for what it serves. Nothing here is autouse: other model tests in this
folder are not affected."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handler.models import fetch as fetch_module
from handler.models import lease as lease_module
from tests.doubles.hf import HfDouble

KIB = 1024

# Small repos shaped like the real ones: LFS weights, a plain-git licence, a gated repo.
HUB_SPEC: dict[str, Any] = {
    "tokens": {"hf_granted_token": ["acme/gated"], "hf_other_token": []},
    "repos": {
        "acme/ltx": {
            "commits": [
                {
                    "files": {
                        "ltx-fp8.safetensors": {"size": 1536 * KIB + 7, "seed": "ltx-fp8"},
                        "ltx-lora.safetensors": {"size": 600 * KIB + 3, "seed": "ltx-lora"},
                        "LICENSE": {"text": "LTX test licence\nUse it kindly.\n"},
                    }
                }
            ]
        },
        "acme/encoder": {
            "commits": [{"files": {"split/te/encoder.safetensors": {"size": 700 * KIB, "seed": "enc"}}}]
        },
        "acme/gated": {
            "gated": "manual",
            "commits": [{"files": {"gated.safetensors": {"size": 300 * KIB, "seed": "gated"}}}],
        },
    },
}


@dataclass(frozen=True)
class Spec:
    """One lock entry to write: where it comes from and where it goes."""

    id: str
    repo: str
    path: str
    folder: str = "checkpoints"
    filename: str | None = None
    role: str = "checkpoint"
    license: str = "test-licence"


STANDARD_ENTRIES = (
    Spec("ltx-fp8", "acme/ltx", "ltx-fp8.safetensors"),
    Spec("ltx-lora", "acme/ltx", "ltx-lora.safetensors", folder="loras", role="lora"),
    Spec(
        "encoder", "acme/encoder", "split/te/encoder.safetensors", folder="text_encoders", role="text_encoder"
    ),
)


@pytest.fixture
def hf_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No token, no offline mode, an empty default HF cache: nothing from the machine leaks in."""
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    return home


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff and polling in milliseconds instead of seconds."""
    monkeypatch.setattr(fetch_module, "RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(fetch_module, "RETRY_MAX_SECONDS", 0.05)
    monkeypatch.setattr(fetch_module, "WAIT_POLL_SECONDS", 0.02)
    monkeypatch.setattr(lease_module, "HEARTBEAT_SECONDS", 0.05)


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory, hf_env: Path) -> Iterator[HfDouble]:
    root = tmp_path_factory.mktemp("hub")
    with HfDouble(HUB_SPEC, root) as double:
        yield double


def entry_yaml(spec: Spec, values: Mapping[str, Any]) -> str:
    filename = spec.filename or spec.path.rsplit("/", 1)[-1]
    lines = [
        f"  {spec.id}:",
        f"    role: {spec.role}",
        f"    repo: {spec.repo}",
        f"    path: {spec.path}",
        f"    revision: {_yaml_value(values.get('revision'))}  # {spec.id} revision note",
        f"    sha256: {_yaml_value(values.get('sha256'))}  # {spec.id} sha note",
        f"    size: {_yaml_value(values.get('size'))}  # {spec.id} size note",
        f"    folder: {spec.folder}",
        f"    filename: {filename}",
        f"    license: {spec.license}",
        f"    gated: {_yaml_value(values.get('gated'))}",
    ]
    return "\n".join(lines)


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'  # an all-digit hex string would otherwise load as a number
    return str(value)


def write_lock(
    path: Path,
    entries: Sequence[tuple[Spec, Mapping[str, Any]]],
    *,
    licenses: Sequence[tuple[str, str, str, str, Mapping[str, Any]]] = (),
    set_name: str = "test",
) -> Path:
    """Write a lock: entries with explicit values, licences as (id, repo, path, filename, values)."""
    text = ["# A lock written by the tests; this comment must survive edits.", "schema: 1", ""]
    if licenses:
        text.append("licenses:")
        for license_id, repo, repo_path, filename, values in licenses:
            text += [
                f"  {license_id}:",
                f"    repo: {repo}",
                f"    path: {repo_path}",
                f"    revision: {_yaml_value(values.get('revision'))}  # licence revision note",
                f"    sha256: {_yaml_value(values.get('sha256'))}  # licence sha note",
                f"    size: {_yaml_value(values.get('size'))}",
                f"    filename: {filename}",
            ]
        text.append("")
    text.append("entries:")
    for spec, values in entries:
        text.append(entry_yaml(spec, values))
    text += ["", "sets:", f"  {set_name}:", "    description: test set", "    models:"]
    for index, (spec, _) in enumerate(entries):
        text.append(f"      role_{index}: {spec.id}")
    path.write_text("\n".join(text) + "\n")
    return path


def pinned(hub: HfDouble, spec: Spec, **overrides: Any) -> tuple[Spec, dict[str, Any]]:
    """An entry with the sha256/size the double serves (revision unpinned unless overridden)."""
    blob = hub.file(spec.repo, spec.path)
    values: dict[str, Any] = {"revision": None, "sha256": blob.sha256, "size": blob.size}
    values.update(overrides)
    return spec, values


def licence(hub: HfDouble, **overrides: Any) -> tuple[str, str, str, str, dict[str, Any]]:
    blob = hub.file("acme/ltx", "LICENSE")
    values: dict[str, Any] = {"revision": None, "sha256": blob.sha256, "size": blob.size}
    values.update(overrides)
    return ("test-licence", "acme/ltx", "LICENSE", "LTX-Test-License.txt", values)


def files_under(root: Path) -> list[str]:
    """Every file and symlink under ``root`` (relative, sorted), hidden ones included."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            found.append(str((Path(directory) / name).relative_to(root)))
    return sorted(found)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (CI runs as root); skips the test when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"tmpfs-{uuid.uuid4().hex[:6]}", str(path)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
