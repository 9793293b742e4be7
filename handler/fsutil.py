"""Small file helpers shared by the worker and its tools: atomic writes and readable sizes.

No imports beyond the standard library: the image's model stage copies this file with the
fetch code, which runs before the rest of the handler is installed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Mode of a file that did not exist before: readable by ComfyUI and tools running as another user.
NEW_FILE_MODE = 0o644


def write_atomic(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never a part.

    The data goes to a temporary file in the same folder (a rename is atomic only within one
    filesystem), is flushed to disk, and the temporary file is renamed over ``path``; on any
    error it is removed and ``path`` is left as it was. An existing file keeps its permission
    bits; a new one gets ``NEW_FILE_MODE``. Text is written as UTF-8.

    Args:
        path: the file to write; its folder must exist.
        data: the whole new content.
        durable: also flush it to disk before and after the rename (records, the lock); a
            job's scratch files, gone when the job ends, skip that cost.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = NEW_FILE_MODE
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; filesystems that cannot open folders are skipped."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def human_size(size: int) -> str:
    """A byte count as a short binary-unit string: 512 -> '512 B', 27078716018 -> '25.22 GiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
