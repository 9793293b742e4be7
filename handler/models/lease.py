"""Who writes one destination file, agreed between processes that may share a network volume.

Many workers can start at once on one RunPod network volume and find the same model missing.
``flock``/``fcntl`` locks are no help there: on NFS-like filesystems they are advisory, often
local to one client, or not implemented at all, and a lock held by a killed container may
never be released. What such filesystems do guarantee is that creating a file with
``O_CREAT | O_EXCL`` and ``rename`` are atomic. So ownership is a *lease file* next to the
destination, ``.<name>.fetch-lock``:

- the process whose exclusive create succeeds owns the file until it removes the lease;
- the owner *heartbeats* by touching the lease every `HEARTBEAT_SECONDS`;
- everyone else waits until the final file appears (done) or the lease goes away (the owner
  gave up: try again), and judges the lease *stale* when its mtime/inode has not changed for
  `STALE_AFTER_SECONDS` of their own clock (no clock comparison between machines), or at
  once when the owner is a dead process on this very machine (same host, boot and pid
  namespace, pid gone);
- a stale lease is broken by renaming it to a unique name first, so that of several waiters
  only one breaks it, and only the lease they judged stale.

The worst case of a wrong "stale" verdict (an owner frozen for a minute) is two downloads of
the same file: both are verified before their atomic rename, so the result is still correct.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 60.0
LEASE_SUFFIX = ".fetch-lock"


class LeaseLost(RuntimeError):
    """Another process broke this lease (it judged us stale); stop writing."""


def lease_path(final: Path) -> Path:
    """The lease file for ``final``: hidden, in the same directory (same filesystem)."""
    return final.with_name(f".{final.name}{LEASE_SUFFIX}")


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: enough to tell whether it is a dead process on this machine."""

    token: str
    host: str
    boot_id: str
    pid_namespace: str
    pid: int

    @classmethod
    def me(cls, token: str | None = None) -> Owner:
        return cls(
            token=token or uuid.uuid4().hex[:12],
            host=socket.gethostname(),
            boot_id=_read_first_line("/proc/sys/kernel/random/boot_id"),
            pid_namespace=_pid_namespace(),
            pid=os.getpid(),
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Owner | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in ("token", "host", "boot_id", "pid_namespace", "pid")})
        except (ValueError, KeyError, TypeError):
            return None  # being written, or not ours

    def is_dead_local_process(self) -> bool:
        """True only when we can be sure: same machine, same pid namespace, no such process."""
        here = Owner.me(self.token)
        if not self.boot_id or not self.pid_namespace:
            return False
        if (self.host, self.boot_id, self.pid_namespace) != (here.host, here.boot_id, here.pid_namespace):
            return False
        if self.pid == here.pid:
            return False  # our own process: another thread of ours holds it
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _read_first_line(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.readline().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class Lease:
    """An acquired lease. Use `try_acquire`; release with `release` or as a context manager."""

    def __init__(self, path: Path, owner: Owner) -> None:
        self.path = path
        self.owner = owner
        self._last_beat = time.monotonic()
        self._lock = threading.Lock()
        self.lost = False

    @classmethod
    def try_acquire(cls, final: Path, owner: Owner | None = None) -> Lease | None:
        """Take the lease for ``final`` if nobody holds it (atomic exclusive create)."""
        path = lease_path(final)
        owner = owner or Owner.me()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        try:
            os.write(fd, owner.to_json().encode())
        finally:
            os.close(fd)
        return cls(path, owner)

    def heartbeat(self, *, force: bool = False) -> None:
        """Show we are alive (cheap when called often); raises `LeaseLost` if it was broken."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_SECONDS:
            return
        with self._lock:
            self._last_beat = now
            if not self._still_mine():
                self.lost = True
                raise LeaseLost(f"{self.path} was taken over by another process")
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def _still_mine(self) -> bool:
        try:
            current = Owner.from_json(self.path.read_text())
        except FileNotFoundError:
            return False
        return current is not None and current.token == self.owner.token

    def release(self) -> None:
        """Remove the lease if it is still ours (never someone else's)."""
        if self._still_mine():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class LeaseView:
    """What a waiter sees of someone else's lease."""

    inode: int
    mtime_ns: int
    owner: Owner | None

    @property
    def signature(self) -> tuple[int, int]:
        return (self.inode, self.mtime_ns)


def look(final: Path) -> LeaseView | None:
    """The current lease of ``final``, or None when nobody holds it."""
    path = lease_path(final)
    try:
        stat = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return None
    return LeaseView(stat.st_ino, stat.st_mtime_ns, Owner.from_json(text))


def break_stale(final: Path, seen: LeaseView) -> bool:
    """Remove the lease judged stale, if it is still the one seen; True when it is gone.

    Renaming first makes the break atomic: of several waiters only one rename succeeds, and
    checking what was renamed makes sure it was the stale lease, not a fresh one that replaced it.
    """
    path = lease_path(final)
    grave = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return True  # someone else broke or released it
    try:
        # The owner's token tells leases apart (inode numbers are reused at once on some
        # filesystems); a lease seen while still being written has none, so fall back to the inode.
        if seen.owner is not None:
            current = Owner.from_json(grave.read_text())
            replaced = current is None or current.token != seen.owner.token
        else:
            replaced = grave.stat().st_ino != seen.inode
        if replaced:
            # A fresh lease replaced the stale one between our look and our rename: put it back.
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(grave, path)
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            grave.unlink()
