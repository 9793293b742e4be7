"""verify: sha256_file, verify_files and the `verify` subcommand on real files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from handler.cli import main
from handler.models import verify as verify_module
from handler.models.lock import LicenseFile, LockEntry
from handler.models.verify import sha256_file, verify_files
from tests.models.conftest import Spec, write_lock


def _entry(entry_id: str, data: bytes | None, *, folder: str = "loras", size: int | None = -1) -> LockEntry:
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    return LockEntry(
        id=entry_id,
        role="lora",
        repo="acme/x",
        path=f"{entry_id}.safetensors",
        revision=None,
        sha256=sha,
        size=(len(data) if data is not None else None) if size == -1 else size,
        folder=folder,
        filename=f"{entry_id}.safetensors",
        license="mit",
    )


@pytest.mark.parametrize("length", [0, 1, 6, 7, 8, 13, 14, 15, 1000])
def test_sha256_file_matches_hashlib_at_every_buffer_boundary(tmp_path, monkeypatch, length):
    monkeypatch.setattr(verify_module, "HASH_BUFFER_BYTES", 7)
    data = os.urandom(length)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen: list[int] = []
    assert sha256_file(path, progress=seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == length


def test_sha256_file_of_a_large_file(tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 5)  # more than two default buffers
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def _tree(tmp_path: Path) -> tuple[Path, list[LockEntry | LicenseFile]]:
    root = tmp_path / "models"
    good, damaged, short, unknown = (os.urandom(n) for n in (3000, 2000, 1000, 500))
    entries = [
        _entry("good", good),
        _entry("damaged", damaged),
        _entry("short", short),
        _entry("missing", b"never written"),
        _entry("unknown", None, size=None),
    ]
    (root / "loras").mkdir(parents=True)
    (root / "loras/good.safetensors").write_bytes(good)
    (root / "loras/damaged.safetensors").write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))
    (root / "loras/short.safetensors").write_bytes(short[:-10])
    (root / "loras/unknown.safetensors").write_bytes(unknown)
    licence_text = b"licence"
    licence = LicenseFile(
        id="lic", repo="acme/x", path="LICENSE", revision=None, sha256=hashlib.sha256(licence_text).hexdigest(),
        size=len(licence_text), filename="L.txt",
    )  # fmt: skip
    (root / "licenses").mkdir()
    (root / "licenses/L.txt").write_bytes(licence_text)
    return root, [*entries, licence]


def test_verify_files_reports_each_file_in_order(tmp_path):
    root, items = _tree(tmp_path)

    results = verify_files(items, root, max_workers=3)

    assert [(r.id, r.status) for r in results] == [
        ("good", "ok"),
        ("damaged", "hash-mismatch"),
        ("short", "size-mismatch"),
        ("missing", "missing"),
        ("unknown", "unknown-hash"),
        ("lic", "ok"),
    ]
    damaged = results[1]
    assert damaged.expected_sha256 == items[1].sha256
    assert damaged.actual_sha256 == sha256_file(root / "loras/damaged.safetensors")
    assert results[2].actual_size == 990 and results[2].expected_size == 1000
    assert results[4].actual_sha256 == sha256_file(root / "loras/unknown.safetensors")
    assert results[5].path == root / "licenses/L.txt"
    assert "the lock expects" in damaged.describe() and "python -m handler lock" in results[4].describe()


def test_verify_files_gives_the_same_answer_with_one_worker(tmp_path):
    root, items = _tree(tmp_path)
    strip = [(r.id, r.status, r.actual_sha256) for r in verify_files(items, root, max_workers=1)]
    assert strip == [(r.id, r.status, r.actual_sha256) for r in verify_files(items, root)]


def _lock_for_tree(tmp_path: Path, root: Path) -> Path:
    """A lock describing good.safetensors (present) and gone.safetensors (absent)."""
    good = (root / "loras/good.safetensors").read_bytes()
    entries = [
        (Spec("good", "acme/x", "good.safetensors", folder="loras", role="lora"),
         {"sha256": hashlib.sha256(good).hexdigest(), "size": len(good)}),
        (Spec("gone", "acme/x", "gone.safetensors", folder="loras", role="lora"),
         {"sha256": "a" * 64, "size": 10}),
    ]  # fmt: skip
    return write_lock(tmp_path / "lock.yaml", entries)


def test_cli_checks_the_files_present_and_exits_zero_when_they_are_right(tmp_path, capsys):
    root, _ = _tree(tmp_path)
    lock_path = _lock_for_tree(tmp_path, root)

    assert main(["verify", str(root), "--lock", str(lock_path)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "good.safetensors" in out and "gone" not in out


def test_cli_with_a_set_reports_missing_files_and_fails(tmp_path, capsys):
    root, _ = _tree(tmp_path)
    lock_path = _lock_for_tree(tmp_path, root)

    assert main(["verify", str(root), "--lock", str(lock_path), "--set", "test", "--json"]) == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [(r["id"], r["status"]) for r in results] == [("good", "ok"), ("gone", "missing")]
    assert "1 of 2 files failed verification" in captured.err


def test_cli_fails_on_a_damaged_file(tmp_path, capsys):
    root, _ = _tree(tmp_path)
    lock_path = _lock_for_tree(tmp_path, root)
    path = root / "loras/good.safetensors"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))

    assert main(["verify", str(root), "--lock", str(lock_path)]) == 1
    assert "hash-mismatch" in capsys.readouterr().out


def test_cli_with_nothing_to_verify_says_so(tmp_path, capsys):
    root, _ = _tree(tmp_path)
    lock_path = _lock_for_tree(tmp_path, root)
    assert main(["verify", str(tmp_path / "empty"), "--lock", str(lock_path)]) == 1
    assert "nothing to verify" in capsys.readouterr().err


def test_cli_reports_a_broken_lock(tmp_path, capsys):
    bad = tmp_path / "lock.yaml"
    bad.write_text("schema: 2\n")
    assert main(["verify", str(tmp_path), "--lock", str(bad)]) == 2
    assert "is not a valid model lock" in capsys.readouterr().err
