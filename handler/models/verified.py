"""Remembered verification: hash a model file once, not on every cold start.

Hashing the LTX-2 set reads tens of GB, so startup never does it by default. When a file *is*
hashed (after a download, with ``VERIFY_MODELS=full`` or ``python -m handler locate --verify``),
its digest is remembered in a small sidecar record keyed by the file's path, size and
modification time. A later start that sees the same path with the same size and mtime reuses the
digest instead of reading the file again; any change to the file invalidates the record.

Records live in a directory on the network volume (``<volume>/.ltx-worker/verified/``) so every
worker sharing the volume benefits, with the container's state directory as the fallback for a
read-only volume. There is one small JSON file per path (named by a hash of the path), written
with an atomic rename: workers verifying different files never contend, and two workers
verifying the same file write the same record.

A record stores the digest that was *measured*, not a verdict: comparing it with the lock's
sha256 is the caller's job, so a lock update never needs the records rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from handler.fsutil import write_atomic
from handler.settings import Settings

log = logging.getLogger(__name__)

RECORD_VERSION = 1
# Under the network volume; shared by every worker that mounts it.
VOLUME_RECORDS = Path(".ltx-worker") / "verified"
# Under WORKER_HOME/state; container disk, lost when the container goes.
STATE_RECORDS = Path("state") / "verified"


@dataclass(frozen=True)
class Verification:
    """A measured digest of one file state (path, size, mtime)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    verified_at: float

    def matches(self, path: Path, st: os.stat_result) -> bool:
        """True when this record describes ``path`` as it is now (same size and mtime)."""
        return self.path == str(path) and self.size == st.st_size and self.mtime_ns == st.st_mtime_ns


def record_name(path: Path) -> str:
    """The record's file name for ``path``: a hash of the path, so any path fits a file name."""
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:40] + ".json"


def parse_record(text: str) -> Verification | None:
    """A record from its JSON text, or None when it is malformed or from another version."""
    try:
        raw = json.loads(text)
        if raw.get("version") != RECORD_VERSION:
            return None
        return Verification(
            path=str(raw["path"]),
            size=int(raw["size"]),
            mtime_ns=int(raw["mtime_ns"]),
            sha256=str(raw["sha256"]),
            verified_at=float(raw["verified_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def format_record(record: Verification) -> str:
    return json.dumps(
        {
            "version": RECORD_VERSION,
            "path": record.path,
            "size": record.size,
            "mtime_ns": record.mtime_ns,
            "sha256": record.sha256,
            "verified_at": record.verified_at,
        },
        sort_keys=True,
    )


class VerifiedStore:
    """Sidecar records of measured digests.

    ``directories`` are searched in order on lookup; a new record goes to the first one that
    can be written (created if needed). A directory that cannot be written is skipped with one
    debug line, so a read-only volume degrades to "remembered for this container's life".
    """

    def __init__(self, directories: Sequence[Path]) -> None:
        self.directories = tuple(directories)
        self._unwritable: set[Path] = set()

    @classmethod
    def for_settings(cls, settings: Settings) -> VerifiedStore:
        """The volume's record directory (when a volume is mounted), then the container's."""
        dirs = []
        if settings.runpod_volume.is_dir():
            dirs.append(settings.runpod_volume / VOLUME_RECORDS)
        dirs.append(settings.worker_home / STATE_RECORDS)
        return cls(dirs)

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        """The remembered sha256 of ``path`` if a record matches its current size and mtime."""
        name = record_name(path)
        for directory in self.directories:
            try:
                text = (directory / name).read_text(encoding="utf-8")
            except OSError:
                continue
            record = parse_record(text)
            if record is not None and record.matches(path, st):
                return record.sha256
        return None

    def remember(self, path: Path, sha256: str, st: os.stat_result) -> bool:
        """Record that ``path`` in state ``st`` hashed to ``sha256``; False if nowhere was writable."""
        record = Verification(
            path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256, verified_at=time.time()
        )
        text = format_record(record)
        for directory in self.directories:
            if directory in self._unwritable:
                continue
            try:
                directory.mkdir(parents=True, exist_ok=True)
                write_atomic(directory / record_name(path), text)
                return True
            except OSError as exc:
                self._unwritable.add(directory)
                log.debug("cannot keep verification records in %s: %s", directory, exc)
        log.warning("verification of %s could not be remembered: no writable record directory", path)
        return False


def hash_file(path: Path) -> str:
    """The file's sha256 (the project's shared hasher: large buffers, releases the GIL)."""
    from handler.models.verify import sha256_file

    return sha256_file(path)


def measure(path: Path, store: VerifiedStore) -> str | None:
    """The sha256 of ``path``: remembered if a record matches, otherwise hashed and remembered.

    Returns None when the file changed while it was being hashed (size or mtime moved): that
    digest describes no stable file state, so it is neither returned nor remembered.
    """
    before = path.stat()
    known = store.lookup(path, before)
    if known is not None:
        return known
    digest = hash_file(path)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        log.warning("%s changed while it was being hashed; not remembering its digest", path)
        return None
    store.remember(path, digest, after)
    return digest
