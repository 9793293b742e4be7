"""handler.fsutil: the one atomic write and the one size format."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from handler.fsutil import NEW_FILE_MODE, human_size, write_atomic


def test_writes_text_as_utf8_and_bytes_as_given(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.txt", "grüße\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "grüße\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]  # no temporary file left


def test_a_new_file_is_readable_by_others_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.yaml"
    write_atomic(fresh, "x: 1\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == NEW_FILE_MODE
    private = tmp_path / "models.lock.yaml"
    private.write_text("old\n")
    private.chmod(0o600)
    write_atomic(private, "new\n")
    assert private.read_text() == "new\n"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # the rename onto a folder fails after the data was written
    (target / "keep").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, "data")
    assert os.listdir(tmp_path) == ["taken"]
    assert (target / "keep").read_text() == "kept"


def test_a_missing_folder_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no-such-folder" / "f", "x")
    assert not (tmp_path / "no-such-folder").exists()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (614403, "600.00 KiB"),
        (995765578, "949.64 MiB"),
        (27078716018, "25.22 GiB"),
        (5 * 1024**4, "5120.00 GiB"),
    ],
)
def test_human_size_uses_binary_units(size: int, text: str) -> None:
    assert human_size(size) == text
