"""Re-hash model files against the lock and report per file.

``python -m handler verify DIR [--set S] [--lock PATH] [--json]`` checks every lock entry and
licence present under DIR (or all of a set's, missing ones included) and exits non-zero on any
problem. Files are hashed in parallel: hashlib releases the GIL while it hashes, so threads use
every core.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from handler.models.lock import LicenseFile, LockEntry, LockError, load_lock

# Large reads amortise syscalls; 4 MiB fills the hash pipeline without trashing the CPU cache.
HASH_BUFFER_BYTES = 4 * 1024 * 1024

STATUSES = ("ok", "missing", "size-mismatch", "hash-mismatch", "unknown-hash")


def sha256_file(path: Path, *, progress: Callable[[int], None] | None = None) -> str:
    """The SHA-256 of a file as 64 lowercase hex digits.

    Reads with one reused buffer (no allocation per block) and hashes with OpenSSL, which
    releases the GIL, so several files hash in parallel on several cores. ``progress`` is
    called with the byte count of each block read (progress bars, lease heartbeats).
    """
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BUFFER_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        _advise_sequential(handle.fileno())
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if progress is not None:
                progress(count)
    return digest.hexdigest()


def _advise_sequential(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        # Only a read-ahead hint: some filesystems do not support it.
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


@dataclass(frozen=True)
class VerifyResult:
    """How one file compares with the lock."""

    id: str
    path: Path
    status: str  # "ok" | "missing" | "size-mismatch" | "hash-mismatch" | "unknown-hash"
    expected_sha256: str | None
    actual_sha256: str | None
    expected_size: int | None
    actual_size: int | None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """One line a user can act on."""
        where = str(self.path)
        if self.status == "ok":
            return f"ok             {where} ({self.actual_size} bytes, sha256 {self.actual_sha256})"
        if self.status == "missing":
            return f"missing        {where}: no such file (lock entry {self.id!r})"
        if self.status == "size-mismatch":
            return (
                f"size-mismatch  {where}: {self.actual_size} bytes, the lock expects {self.expected_size} "
                f"(entry {self.id!r}); fetch it again"
            )
        if self.status == "hash-mismatch":
            return (
                f"hash-mismatch  {where}: sha256 {self.actual_sha256}, the lock expects "
                f"{self.expected_sha256} (entry {self.id!r}); the file is corrupt or a different version"
            )
        return (
            f"unknown-hash   {where}: sha256 {self.actual_sha256} ({self.actual_size} bytes) cannot be "
            f"checked: the lock has no sha256 for entry {self.id!r}; run `python -m handler lock`"
        )


def check_file(item: LockEntry | LicenseFile, root: Path) -> VerifyResult:
    """Compare one file under ``root`` with its lock entry (hashes unless the size is wrong)."""
    path = Path(root) / item.relpath
    started = time.perf_counter()
    try:
        actual_size = path.stat().st_size
    except FileNotFoundError:
        return VerifyResult(item.id, path, "missing", item.sha256, None, item.size, None)
    if item.size is not None and actual_size != item.size:
        return VerifyResult(item.id, path, "size-mismatch", item.sha256, None, item.size, actual_size)
    actual_sha = sha256_file(path)
    status = "ok" if actual_sha == item.sha256 else "hash-mismatch"
    if item.sha256 is None:
        status = "unknown-hash"
    seconds = time.perf_counter() - started
    return VerifyResult(item.id, path, status, item.sha256, actual_sha, item.size, actual_size, seconds)


def verify_files(
    entries: Sequence[LockEntry | LicenseFile], root: Path, *, max_workers: int | None = None
) -> list[VerifyResult]:
    """Re-hash each entry's file under ``root`` (``root/<folder>/<filename>``), in parallel.

    Results come back in the order of ``entries``. ``max_workers`` defaults to the number of
    CPUs; the largest files start first so that one big file does not finish alone at the end.
    """
    root = Path(root)
    if not entries:
        return []
    workers = max_workers or os.cpu_count() or 1
    order = sorted(range(len(entries)), key=lambda i: -(entries[i].size or 0))
    results: list[VerifyResult | None] = [None] * len(entries)
    with ThreadPoolExecutor(max_workers=min(workers, len(entries)), thread_name_prefix="verify") as pool:
        futures = {i: pool.submit(check_file, entries[i], root) for i in order}
        for index, future in futures.items():
            results[index] = future.result()
    return [r for r in results if r is not None]


# --- CLI -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", type=Path, metavar="DIR", help="models directory (DIR/<folder>/<file>)")
    parser.add_argument("--set", dest="model_set", help="check this model set (missing files are errors)")
    parser.add_argument("--lock", type=Path, help="models.lock.yaml to use (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--jobs", type=int, default=None, help="files hashed at once (default: CPU count)")


def select_items(lock, dest: Path, model_set: str | None) -> list[LockEntry | LicenseFile]:
    """A set's files, or every lock file present under ``dest``."""
    if model_set:
        return [*lock.set_entries(model_set), *lock.set_licenses(model_set)]
    items: list[LockEntry | LicenseFile] = [*lock.entries.values(), *lock.licenses.values()]
    return [item for item in items if (dest / item.relpath).exists()]


def run(args: argparse.Namespace) -> int:
    try:
        lock = load_lock(args.lock)
        items = select_items(lock, args.dest, args.model_set)
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print(f"error: no file of the lock is present under {args.dest}; nothing to verify", file=sys.stderr)
        return 1
    results = verify_files(items, args.dest, max_workers=args.jobs)
    if args.json:
        payload = [{**asdict(r), "path": str(r.path)} for r in results]
        print(json.dumps(payload, indent=2))
    else:
        for result in results:
            print(result.describe())
    problems = [r for r in results if not r.ok]
    if problems:
        print(f"{len(problems)} of {len(results)} files failed verification", file=sys.stderr)
        return 1
    return 0
