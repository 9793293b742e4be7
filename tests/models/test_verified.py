"""The verification sidecar: a file is hashed once per (path, size, mtime), never again."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from handler.models import verified as vf
from handler.models.verified import Verification, VerifiedStore, measure


def _file(tmp_path: Path, data: bytes = b"model bytes" * 100) -> Path:
    path = tmp_path / "volume" / "models" / "loras" / "a.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_record_round_trip_and_rejects_garbage():
    record = Verification("/v/a", 10, 123, "ab" * 32, 1.5)
    assert vf.parse_record(vf.format_record(record)) == record
    assert vf.parse_record("not json") is None
    assert vf.parse_record('{"version": 99, "path": "/v/a"}') is None
    assert vf.parse_record('{"version": 1, "path": "/v/a"}') is None
    assert vf.record_name(Path("/v/a")) != vf.record_name(Path("/v/b"))
    assert vf.record_name(Path("/v/a")).endswith(".json")


def test_measure_hashes_once_and_reuses_the_record(tmp_path):
    path = _file(tmp_path)
    store = VerifiedStore([tmp_path / "records"])
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert measure(path, store) == expected
    records = list((tmp_path / "records").iterdir())
    assert len(records) == 1
    first = vf.parse_record(records[0].read_text())
    assert first.path == str(path) and first.size == path.stat().st_size
    # Second time: answered from the record (its timestamp does not move: nothing re-hashed)
    assert measure(path, store) == expected
    assert vf.parse_record(records[0].read_text()).verified_at == first.verified_at


def test_a_changed_file_is_hashed_again(tmp_path):
    path = _file(tmp_path)
    store = VerifiedStore([tmp_path / "records"])
    measure(path, store)
    st = path.stat()
    assert store.lookup(path, st) is not None
    # same size, new mtime: the record no longer applies
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert store.lookup(path, path.stat()) is None
    # different size: same
    path.write_bytes(b"other")
    assert store.lookup(path, path.stat()) is None
    assert measure(path, store) == hashlib.sha256(b"other").hexdigest()


def test_records_are_keyed_by_path(tmp_path):
    path = _file(tmp_path)
    twin = path.with_name("b.safetensors")
    twin.write_bytes(path.read_bytes())
    os.utime(twin, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    store = VerifiedStore([tmp_path / "records"])
    measure(path, store)
    assert store.lookup(twin, twin.stat()) is None


def test_read_only_first_directory_falls_back_to_the_next(tmp_path):
    path = _file(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the record folder should be")
    store = VerifiedStore([blocked / "records", tmp_path / "state"])
    assert store.remember(path, "c" * 64, path.stat()) is True
    assert store.lookup(path, path.stat()) == "c" * 64
    assert len(list((tmp_path / "state").iterdir())) == 1


def test_nowhere_writable_is_reported_not_raised(tmp_path):
    path = _file(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    assert VerifiedStore([blocked / "r"]).remember(path, "c" * 64, path.stat()) is False


def test_records_on_a_shared_volume_serve_another_worker(tmp_path):
    # Worker A verifies; worker B (another store object, same volume folder) reuses it.
    path = _file(tmp_path)
    shared = tmp_path / "volume" / ".ltx-worker" / "verified"
    digest = measure(path, VerifiedStore([shared, tmp_path / "a-state"]))
    assert VerifiedStore([shared, tmp_path / "b-state"]).lookup(path, path.stat()) == digest


def test_for_settings_prefers_the_volume(tmp_path):
    from handler.settings import Settings

    volume = tmp_path / "vol"
    volume.mkdir()
    settings = Settings.from_env({"RUNPOD_VOLUME_PATH": str(volume), "WORKER_HOME": str(tmp_path / "w")})
    assert VerifiedStore.for_settings(settings).directories == (
        volume / ".ltx-worker" / "verified",
        tmp_path / "w" / "state" / "verified",
    )
    no_volume = Settings.from_env(
        {"RUNPOD_VOLUME_PATH": str(tmp_path / "none"), "WORKER_HOME": str(tmp_path / "w")}
    )
    assert VerifiedStore.for_settings(no_volume).directories == (tmp_path / "w" / "state" / "verified",)


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory that really refuses writes: a read-only bind mount (root) or mode 0555."""
    source = tmp_path / "ro-src"
    source.mkdir()
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:
        bind = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
        if bind.returncode != 0:
            pytest.skip(f"cannot make a read-only mount here: {bind.stderr.decode().strip()}")
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True)
        if remount.returncode != 0:
            subprocess.run(["umount", str(target)], check=False)
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
        yield target
        subprocess.run(["umount", str(target)], check=False)
    else:
        target.chmod(0o555)
        yield target
        target.chmod(0o755)


def test_read_only_volume_records_go_to_the_container(tmp_path, read_only_dir):
    path = _file(tmp_path)
    store = VerifiedStore([read_only_dir / ".ltx-worker" / "verified", tmp_path / "state"])
    digest = measure(path, store)
    assert store.lookup(path, path.stat()) == digest
    assert not (read_only_dir / ".ltx-worker").exists()
