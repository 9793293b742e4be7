"""Download a model set, verified, into a directory.

``python -m handler fetch --set S --dest D`` puts each model of set S at
``D/<folder>/<filename>`` and its licence texts at ``D/licenses/<filename>``. For every file:

1. already there with the lock's size (and hash, with ``--verify-present``): nothing to do;
2. in a local Hugging Face cache (``HF_HUB_CACHE``/``HF_HOME``): hashed, then hard-linked
   (or copied) into place, no download;
3. otherwise one HEAD request compares the Hub's advertised sha256 and size with the lock (an
   upstream re-upload fails here, before any byte is spent), then the file is streamed into a
   temp file next to its final path while it is hashed, resumed with ``Range`` after a dropped
   connection, a timeout or a 5xx, and renamed into place only when sha256 and size match.

Why not ``hf_hub_download``: it hashes nothing while downloading (it trusts the transfer), and
with ``local_dir`` it leaves ``.cache/huggingface`` metadata behind; a 40 GB file would have to
be read a second time to verify it. So the transfer is written here, on huggingface_hub's own
HTTP layer (its session, headers, metadata request and error classes).

Many processes may fetch into one directory at once (workers on a network volume): each
file is written by one of them, which holds a lease (`handler.models.lease`); the others wait
and then use the file. When done, the directory holds the final files and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import build_hf_headers, get_session, get_token, hf_raise_for_status

from handler.fsutil import fsync_dir, human_size, write_atomic
from handler.models import lease as leases
from handler.models.lease import Lease, LeaseLost
from handler.models.lock import LicenseFile, LockEntry, LockError, load_lock
from handler.models.lockedit import apply_updates
from handler.models.verify import HASH_BUFFER_BYTES, sha256_file

logger = logging.getLogger(__name__)

Item = LockEntry | LicenseFile

# Transfers: retried with exponential backoff; the attempt count resets whenever bytes arrive.
RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 8.0
RETRY_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
METADATA_TIMEOUT_SECONDS = float(constants.HF_HUB_ETAG_TIMEOUT)
WAIT_POLL_SECONDS = 0.25
PROGRESS_LOG_SECONDS = 15.0
# Plain git files on the Hub are small (LFS takes anything over 10 MB): hash their git id too.
GIT_OID_MAX_BYTES = 64 * 1024 * 1024

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<key>[0-9a-f]{16}|unknown)\.(?P<token>[0-9a-f]{12})\.partial$")


@dataclass(frozen=True)
class FetchOutcome:
    """What happened to one file."""

    id: str  # lock entry id or licence id
    path: Path  # final path, dest/<folder>/<filename> or dest/licenses/<filename>
    action: str  # "present" | "reused-cache" | "downloaded" | "waited"
    size: int
    sha256: str | None  # known when hashed in this run, or the lock's after a verified download
    seconds: float


class FetchError(RuntimeError):
    """A file could not be fetched; the message names the file, repo/path@revision, what went
    wrong and what was expected. ``failures`` holds (id, message) for every failed file and
    ``outcomes`` the files that did arrive."""

    def __init__(
        self,
        message: str,
        *,
        failures: Sequence[tuple[str, str]] = (),
        outcomes: Sequence[FetchOutcome] = (),
    ) -> None:
        super().__init__(message)
        self.failures = list(failures)
        self.outcomes = list(outcomes)


class _Stopped(Exception):
    """The run was interrupted; partial downloads are kept for the next run."""


def _where(item: Item) -> str:
    return f"{item.repo}/{item.path}@{item.revision_or_main}"


# --- the public entry point --------------------------------------------------------------------


def fetch_entries(
    entries: Sequence[LockEntry | LicenseFile],
    dest: Path,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    trust_on_first_use: bool = False,
    lock_path: Path | None = None,
    max_workers: int = 4,
    show_progress: bool | None = None,
    hf_cache: Path | None = None,
    verify_present: bool | Collection[str] = False,
) -> list[FetchOutcome]:
    """Make every entry's file present and verified under ``dest``; files go in parallel.

    Args:
        entries: lock entries (to ``dest/<folder>/<filename>``) and licences (to ``dest/licenses/``).
        dest: the models directory; created if missing.
        endpoint: the Hub, default ``HF_ENDPOINT`` or https://huggingface.co.
        token: a Hugging Face token; None uses huggingface_hub's own (``HF_TOKEN``, saved login).
        trust_on_first_use: accept entries whose sha256 the lock does not know: such a file is
            checked against the sha256/size the Hub advertises (or its git id for plain files)
            and what it turned out to be is written to ``lock_path``.
        lock_path: the lock file trust-on-first-use records into (comments kept).
        max_workers: files transferred at once.
        show_progress: progress bars (True), log lines (False); None: bars on a terminal.
        hf_cache: a Hugging Face hub cache to reuse files from; default the environment's
            (``HF_HUB_CACHE`` or ``HF_HOME/hub``). Files in it are hashed before use.
        verify_present: re-hash files already in ``dest`` instead of trusting their size: True
            for every file, or the ids of the entries to re-hash (files known to be suspect).

    Returns:
        One `FetchOutcome` per entry, in the order given.

    Raises:
        FetchError: a file could not be fetched or verified (all files are attempted first;
            the error lists every failure, and files that did arrive stay in place).
    """
    items = list(entries)
    dest = Path(dest)
    _check_items(items)
    refused = [i for i in items if i.sha256 is None] if not trust_on_first_use else []
    if refused:
        listing = "\n  ".join(f"{i.id} ({_where(i)})" for i in refused)
        raise FetchError(
            "the lock has no sha256 for these files, so they cannot be verified:\n  "
            f"{listing}\nrun `python -m handler lock` to resolve them against the Hub, or pass "
            "--trust-on-first-use to accept what the Hub advertises and record it in the lock",
            failures=[(i.id, "no sha256 in the lock") for i in refused],
        )
    if not items:
        return []
    for folder in {(dest / i.relpath).parent for i in items}:
        folder.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if show_progress is None else show_progress
    context = _Context(
        dest=dest,
        endpoint=(endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/"),
        token=token,
        trust_on_first_use=trust_on_first_use,
        hf_cache=_cache_dir(hf_cache),
        verify_present=verify_present if isinstance(verify_present, bool) else frozenset(verify_present),
        progress=_BarProgress() if show else _LogProgress(),
    )
    outcomes: dict[int, FetchOutcome] = {}
    failures: list[tuple[int, str]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items))), thread_name_prefix="fetch")
    try:
        futures = {pool.submit(_fetch_one, item, context): index for index, item in enumerate(items)}
        for future, index in futures.items():
            try:
                outcomes[index] = future.result()
            except FetchError as exc:
                failures.append((index, str(exc)))
            except OSError as exc:  # e.g. a read-only or full destination met outside a transfer
                item = items[index]
                failures.append((index, f"{dest / item.relpath} ({_where(item)}): {exc}"))
    except BaseException:
        context.stop.set()  # Ctrl-C: workers stop at their next chunk, partial files are kept
        raise
    finally:
        pool.shutdown(wait=True)
        context.progress.close()
    if trust_on_first_use and lock_path is not None and context.trusted:
        try:
            _record_trusted(Path(lock_path), context.trusted)
        except (OSError, LockError) as exc:
            failures.append(
                (len(items), f"the files arrived but recording them in {lock_path} failed: {exc}")
            )
    done = [outcomes[i] for i in sorted(outcomes)]
    if failures:
        failures.sort()
        if len(failures) == 1:
            message = failures[0][1]
        else:
            message = f"{len(failures)} of {len(items)} files failed:\n" + "\n".join(
                f"- {m}" for _, m in failures
            )
        ids = [items[i].id if i < len(items) else "lock" for i, _ in failures]
        raise FetchError(
            message, failures=list(zip(ids, (m for _, m in failures), strict=True)), outcomes=done
        )
    return done


def _check_items(items: Sequence[Item]) -> None:
    seen: dict[str, Item] = {}
    for item in items:
        other = seen.setdefault(item.relpath, item)
        if other is not item and other != item:
            raise FetchError(f"entries {other.id!r} and {item.id!r} both want the file {item.relpath}")


def _cache_dir(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    # Read the environment now, not at import: callers (and tests) may set it late.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    return Path(constants.HF_HUB_CACHE)


# --- shared state of one run -------------------------------------------------------------------


@dataclass(frozen=True)
class _Trusted:
    revision: str | None
    sha256: str
    size: int


class _SpaceBook:
    """Free space per filesystem minus what this run's unfinished downloads will still write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}

    @contextlib.contextmanager
    def reserve(
        self, directory: Path, nbytes: int, item: Item, final: Path
    ) -> Iterator[Callable[[int], None]]:
        device = os.stat(directory).st_dev
        with self._lock:
            free = shutil.disk_usage(directory).free
            others = self._pending.get(device, 0)
            if nbytes > free - others:
                raise FetchError(
                    f"not enough disk space for {final} ({_where(item)}): it needs {human_size(nbytes)} more, "
                    f"the filesystem of {directory} has {human_size(free)} free"
                    + (
                        f", of which other downloads of this run still need {human_size(others)}"
                        if others
                        else ""
                    )
                    + "; free up space or choose another --dest"
                )
            self._pending[device] = others + nbytes
        remaining = [nbytes]

        def wrote(count: int) -> None:
            with self._lock:
                count = min(count, remaining[0])
                remaining[0] -= count
                self._pending[device] -= count

        try:
            yield wrote
        finally:
            with self._lock:
                self._pending[device] -= remaining[0]


@dataclass
class _Context:
    dest: Path
    endpoint: str
    token: str | None
    trust_on_first_use: bool
    hf_cache: Path | None
    verify_present: bool | frozenset[str]  # every file, or the ids of these
    progress: _Progress
    stop: threading.Event = field(default_factory=threading.Event)
    space: _SpaceBook = field(default_factory=_SpaceBook)
    trusted: dict[str, _Trusted] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # path -> ((inode, size, mtime), sha256): a file in place is read once per run, not once
    # before and again after taking its lease.
    _hashed: dict[Path, tuple[tuple[int, int, int], str]] = field(default_factory=dict)

    def rehashes(self, item: Item) -> bool:
        """Whether a file of the right size already in place must be hashed before it is kept."""
        if isinstance(self.verify_present, bool):
            return self.verify_present
        return item.id in self.verify_present

    def sha256_of(self, path: Path, stat: os.stat_result) -> str:
        """The sha256 of the file at ``path`` in state ``stat``, hashed at most once per run."""
        state = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._hashed.get(path)
        if known is not None and known[0] == state:
            return known[1]
        digest = sha256_file(path)
        with self._lock:
            self._hashed[path] = (state, digest)
        return digest

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    def trust(self, item: Item, sha256: str, size: int, revision: str | None) -> None:
        if item.sha256 is None:
            with self._lock:
                self.trusted[item.id] = _Trusted(revision if item.revision is None else None, sha256, size)


# --- one file ----------------------------------------------------------------------------------


def _fetch_one(item: Item, context: _Context) -> FetchOutcome:
    final = context.dest / item.relpath
    started = time.perf_counter()
    waited = False
    while True:
        context.check_stop()
        present = _present(item, final, context)
        if present is not None:
            _sweep_leftovers(final)
            action = "waited" if waited else "present"
            sha = present.sha256 or (item.sha256 if waited else None)
            return FetchOutcome(item.id, final, action, present.size, sha, time.perf_counter() - started)
        lease = Lease.try_acquire(final)
        if lease is None:
            _wait_for_owner(item, final, context)
            waited = True
            continue
        try:
            with lease:
                present = _present(item, final, context)
                if present is None:
                    outcome = _reuse_from_cache(item, final, lease, context, started)
                    if outcome is None:
                        outcome = _download(item, final, lease, context, started)
                    return outcome
        except LeaseLost:
            logger.warning("%s: another process took over the download; waiting for it", final)
            waited = True
            continue
        except _Stopped:
            raise FetchError(
                f"{final} ({_where(item)}): interrupted; partial data is kept for the next run"
            ) from None
        # Someone finished between our first look and our lease: report it as theirs.
        return FetchOutcome(
            item.id,
            final,
            "waited",
            present.size,
            present.sha256 or item.sha256,
            time.perf_counter() - started,
        )


@dataclass(frozen=True)
class _Present:
    size: int
    sha256: str | None


def _present(item: Item, final: Path, context: _Context) -> _Present | None:
    """The file at its final path, if it is the right one (size, or hash when asked/needed)."""
    try:
        stat = final.stat()
    except FileNotFoundError:
        return None
    if not final.is_file():
        raise FetchError(
            f"{final} exists but is not a regular file; remove it so {_where(item)} can go there"
        )
    if item.size is not None and stat.st_size != item.size:
        logger.warning("%s has %d bytes, the lock expects %d: replacing it", final, stat.st_size, item.size)
        return None
    if item.sha256 is None:
        # Trust on first use never trusts a stray local file, only what the Hub says it serves.
        remote = _metadata(item, context)
        if remote.size is not None and remote.size != stat.st_size:
            return None
        actual = sha256_file(final)
        if remote.sha256 is not None and actual != remote.sha256:
            return None
        if remote.sha256 is None and (remote.git_oid is None or _git_oid_of(final) != remote.git_oid):
            return None
        context.trust(item, actual, stat.st_size, remote.commit)
        return _Present(stat.st_size, actual)
    if item.size is None or context.rehashes(item):
        actual = context.sha256_of(final, stat)
        if actual != item.sha256:
            logger.warning("%s has sha256 %s, the lock expects %s: replacing it", final, actual, item.sha256)
            return None
        return _Present(stat.st_size, actual)
    return _Present(stat.st_size, None)


def _wait_for_owner(item: Item, final: Path, context: _Context) -> None:
    """Wait while another process holds the file's lease; break it if its owner is gone."""
    last_signature: tuple[int, int] | None = None
    last_change = time.monotonic()
    announced = False
    while True:
        context.check_stop()
        view = leases.look(final)
        if view is None:
            return
        if not announced:
            who = f"{view.owner.host} pid {view.owner.pid}" if view.owner else "another process"
            logger.info("%s is being fetched by %s; waiting", final, who)
            announced = True
        if view.owner is not None and view.owner.is_dead_local_process():
            logger.warning(
                "%s: the process that was fetching it (pid %d) is gone; taking over", final, view.owner.pid
            )
            leases.break_stale(final, view)
            return
        now = time.monotonic()
        if view.signature != last_signature:
            last_signature, last_change = view.signature, now
        elif now - last_change > leases.STALE_AFTER_SECONDS:
            logger.warning(
                "%s: its lease has not been renewed for %.0f s; taking over",
                final,
                leases.STALE_AFTER_SECONDS,
            )
            leases.break_stale(final, view)
            return
        time.sleep(WAIT_POLL_SECONDS)


def _partials(final: Path) -> list[tuple[Path, str, str]]:
    """Temp files of ``final`` left in its directory: (path, content key, owner token)."""
    found = []
    try:
        names = os.listdir(final.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = _PARTIAL.match(name)
        if match and match["name"] == final.name:
            found.append((final.parent / name, match["key"], match["token"]))
    return found


def _stale_graves(final: Path) -> list[Path]:
    prefix = f".{final.name}{leases.LEASE_SUFFIX}.stale-"
    try:
        return [final.parent / n for n in os.listdir(final.parent) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def _sweep_leftovers(final: Path) -> None:
    """Remove what dead runs left next to a finished file: their lease and temp files.

    Never touches a live owner's (it may be replacing the file) nor a lease held on another
    machine: those are judged stale only by a process that waits for them."""
    view = leases.look(final)
    if view is None and not _partials(final) and not _stale_graves(final):
        return
    if view is not None:
        if view.owner is None or not view.owner.is_dead_local_process():
            return
        leases.break_stale(final, view)
    lease = Lease.try_acquire(final)
    if lease is None:
        return
    with lease:
        for path, _, _ in _partials(final):
            path.unlink(missing_ok=True)
        for path in _stale_graves(final):
            path.unlink(missing_ok=True)


def _temp_path(final: Path, key: str, token: str) -> Path:
    return final.with_name(f".{final.name}.{key}.{token}.partial")


def _claim_partial(final: Path, key: str, token: str) -> tuple[Path, int]:
    """Our temp file for ``final``: a matching one left by an earlier run is renamed to ours
    (and resumed); temp files for other content are deleted. Only called under the lease."""
    ours = _temp_path(final, key, token)
    best: tuple[int, Path] | None = None
    for path, other_key, _ in _partials(final):
        if path == ours:
            continue
        if other_key != key:
            path.unlink(missing_ok=True)
            continue
        size = path.stat().st_size
        if best is None or size > best[0]:
            if best is not None:
                best[1].unlink(missing_ok=True)
            best = (size, path)
        else:
            path.unlink(missing_ok=True)
    if best is not None:
        os.rename(best[1], ours)
        return ours, best[0]
    return ours, ours.stat().st_size if ours.exists() else 0


# --- the Hub's metadata ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    commit: str | None
    sha256: str | None  # LFS files: the Hub's X-Linked-Etag is the content's sha256
    git_oid: str | None  # plain git files: the ETag is the git blob id
    size: int | None
    location: str


def _metadata(item: Item, context: _Context) -> _Remote:
    """One HEAD request: what the Hub serves for the entry (commit, sha256 or git id, size)."""
    url = hf_hub_url(item.repo, item.path, revision=item.revision_or_main, endpoint=context.endpoint)
    try:
        meta = get_hf_file_metadata(
            url,
            token=context.token,
            timeout=METADATA_TIMEOUT_SECONDS,
            endpoint=context.endpoint,
            retry_on_errors=True,
        )
    except Exception as exc:  # mapped to a message the user can act on
        raise _explain(exc, item, context) from exc
    etag = (meta.etag or "").lower()
    return _Remote(
        commit=meta.commit_hash,
        sha256=etag if _HEX64.match(etag) else None,
        git_oid=etag if _HEX40.match(etag) else None,
        size=meta.size,
        location=meta.location,
    )


def _explain(exc: BaseException, item: Item, context: _Context) -> FetchError:
    if isinstance(exc, FetchError):
        return exc
    where = _where(item)
    if isinstance(exc, OfflineModeIsEnabled):
        return FetchError(
            f"{where}: HF_HUB_OFFLINE is set, and the file is neither in {context.dest} nor in the cache"
        )
    message = describe_hub_error(
        exc,
        repo=item.repo,
        revision=item.revision_or_main,
        path=item.path,
        endpoint=context.endpoint,
        has_token=bool(context.token or get_token()),
    )
    if isinstance(exc, EntryNotFoundError):
        message += f"; check the path of lock entry {item.id!r}"
    return FetchError(f"{where}: {message}")


def describe_hub_error(
    exc: BaseException,
    *,
    repo: str,
    revision: str,
    endpoint: str,
    has_token: bool,
    path: str | None = None,
) -> str:
    """What went wrong asking the Hub about ``repo`` and what to do about it, in one line.

    Shared by ``fetch`` and ``lock``, so a Hugging Face error reads the same in both. The text
    names the repo, revision or file it is about; callers put their own location in front.

    Args:
        exc: what huggingface_hub (or its HTTP layer) raised.
        repo: the model repo asked about.
        revision: the revision asked for (a commit or ``main``).
        endpoint: the Hub's address, for the repo's page in a hint.
        has_token: whether a token was sent (decides the hint for gated and missing repos).
        path: the file asked about, if any.
    """
    page = f"{endpoint}/{repo}"
    if isinstance(exc, GatedRepoError):
        if not has_token:
            return (
                f"{repo} is gated and no token was given (HTTP 401). Accept its terms at {page} "
                "and pass a token with access (HF_TOKEN or --token-file)"
            )
        return (
            f"{repo} is gated and the token has no access to it (HTTP 403). Request access at {page}, "
            "or use a token of an account that has it"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"revision {revision!r} does not exist in {repo} (HTTP 404)"
    if isinstance(exc, EntryNotFoundError):
        return f"{path!r} does not exist in {repo} at {revision} (HTTP 404)"
    if isinstance(exc, RepositoryNotFoundError):
        hint = (
            "the token has no access to it"
            if has_token
            else "if it is private, pass a token (HF_TOKEN or --token-file)"
        )
        status = exc.response.status_code if exc.response is not None else "?"
        return f"repository {repo} not found (HTTP {status}); {hint}"
    if isinstance(exc, OfflineModeIsEnabled):
        return f"HF_HUB_OFFLINE is set, so {endpoint} cannot be asked about {repo}"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return "the Hub refused the token (HTTP 401): it is invalid or expired"
        if status == 403:
            return f"access to {repo} forbidden (HTTP 403); check the token's permissions"
        return f"the Hub answered HTTP {status} for {repo}@{revision}: {str(exc).splitlines()[0]}"
    if isinstance(exc, httpx2.HTTPError):
        return f"cannot reach {endpoint}: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


# --- reuse from a Hugging Face cache -------------------------------------------------------------


def _cache_candidates(item: Item, cache: Path) -> list[tuple[Path, str | None]]:
    """Files in the cache that may be the entry: (path, commit of the snapshot if known)."""
    repo_dir = cache / repo_folder_name(repo_id=item.repo, repo_type="model")
    if not repo_dir.is_dir():
        return []
    found: list[tuple[Path, str | None]] = []
    if item.sha256:
        blob = repo_dir / "blobs" / item.sha256  # LFS blobs are stored under their sha256
        if blob.is_file():
            found.append((blob, None))
    try:
        cached = try_to_load_from_cache(item.repo, item.path, cache_dir=cache, revision=item.revision_or_main)
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, str):
        snapshot = Path(cached).relative_to(repo_dir / "snapshots").parts[0]
        found.append((Path(cached), snapshot if _HEX40.match(snapshot) else None))
    unique: dict[Path, tuple[Path, str | None]] = {}
    for path, commit in found:
        unique.setdefault(path.resolve(), (path, commit))
    return list(unique.values())


def _reuse_from_cache(
    item: Item, final: Path, lease: Lease, context: _Context, started: float
) -> FetchOutcome | None:
    if context.hf_cache is None:
        return None
    for candidate, commit in _cache_candidates(item, context.hf_cache):
        blob = candidate.resolve()
        try:
            size = blob.stat().st_size
        except FileNotFoundError:
            continue
        if item.size is not None and size != item.size:
            continue
        expected_sha = item.sha256
        expected_oid = None
        if expected_sha is None:
            # Trust on first use: the cache names blobs after what the Hub said they are.
            if _HEX64.match(blob.name):
                expected_sha = blob.name
            elif _HEX40.match(blob.name) and size <= GIT_OID_MAX_BYTES:
                expected_oid = blob.name
            else:
                continue
        # Named like a download's temp file, so a sweep after a crash finds it too.
        key = (expected_sha or expected_oid or "unknown")[:16]
        temp = _temp_path(final, key, lease.owner.token)
        temp.unlink(missing_ok=True)
        label = f"{item.relpath} (cache)"
        context.progress.start(item.id, label, size, 0)
        try:
            actual = _place_from_cache(blob, temp, lease, context, item)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            context.progress.finish(item.id, None)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(item, final, exc) from None
            logger.warning("%s: cannot use the cached copy %s: %s", final, candidate, exc)
            continue
        if (expected_sha and actual != expected_sha) or (expected_oid and _git_oid_of(temp) != expected_oid):
            temp.unlink(missing_ok=True)
            context.progress.finish(item.id, None)
            logger.warning(
                "%s: the cached copy %s is not the expected file (sha256 %s, expected %s); ignoring it",
                final, candidate, actual, expected_sha or f"git {expected_oid}",
            )  # fmt: skip
            continue
        os.replace(temp, final)
        fsync_dir(final.parent)
        context.trust(item, actual, size, commit)
        seconds = time.perf_counter() - started
        context.progress.finish(
            item.id, f"{final}: reused from the Hugging Face cache ({candidate}), sha256 verified"
        )
        return FetchOutcome(item.id, final, "reused-cache", size, actual, seconds)
    return None


def _place_from_cache(blob: Path, temp: Path, lease: Lease, context: _Context, item: Item) -> str:
    """Hard-link (no second copy on disk) or copy the cached file to ``temp``; its sha256."""

    def tick(count: int) -> None:
        context.check_stop()
        lease.heartbeat()
        context.progress.advance(item.id, count)

    try:
        os.link(blob, temp)
    except OSError:
        pass  # another filesystem, or links not allowed: copy, hashing on the way
    else:
        return sha256_file(temp, progress=tick)
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BUFFER_BYTES)
    view = memoryview(buffer)
    with open(blob, "rb", buffering=0) as source, open(temp, "wb") as target:
        while count := source.readinto(buffer):
            digest.update(view[:count])
            target.write(view[:count])
            tick(count)
        target.flush()
        os.fsync(target.fileno())
    return digest.hexdigest()


# --- download ------------------------------------------------------------------------------------


class _Retryable(Exception):
    pass


def _download(item: Item, final: Path, lease: Lease, context: _Context, started: float) -> FetchOutcome:
    remote = _metadata(item, context)
    where = _where(item)
    if item.sha256 and remote.sha256 and remote.sha256 != item.sha256:
        raise FetchError(
            f"{where}: the Hub now serves different content (sha256 {remote.sha256}, {remote.size} bytes, "
            f"commit {remote.commit}) than the lock expects (sha256 {item.sha256}, {item.size} bytes): it was "
            "re-uploaded upstream. Nothing was downloaded; pin the entry's revision, or run "
            "`python -m handler lock` to accept the new file"
        )
    if item.size is not None and remote.size is not None and remote.size != item.size:
        raise FetchError(
            f"{where}: the Hub advertises {remote.size} bytes (commit {remote.commit}), the lock expects "
            f"{item.size}: it was changed upstream. Nothing was downloaded; pin the entry's revision, or run "
            "`python -m handler lock`"
        )
    expected_sha = item.sha256 or remote.sha256
    expected_size = item.size if item.size is not None else remote.size
    expected_oid = remote.git_oid if expected_sha is None else None
    if expected_sha is None and expected_oid is None:
        raise FetchError(
            f"{where}: the Hub advertises no sha256 or git id for the file, so it cannot be verified"
        )
    key = (expected_sha or expected_oid or "unknown")[:16]
    temp, offset = _claim_partial(final, key, lease.owner.token)
    if expected_size is not None and offset > expected_size:
        temp.unlink()
        offset = 0
    need = (expected_size - offset) if expected_size is not None else 0
    context.progress.start(item.id, item.relpath, expected_size, offset)
    try:
        with context.space.reserve(final.parent, need, item, final) as wrote:
            actual_sha, actual_size, actual_oid = _transfer(
                item, remote, temp, offset, expected_size, expected_oid, lease, context, wrote
            )
    except OSError as exc:
        context.progress.finish(item.id, None)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            temp.unlink(missing_ok=True)
            raise _disk_full(item, final, exc) from None
        raise FetchError(f"{final} ({where}): cannot write: {exc}") from None
    except BaseException:
        context.progress.finish(item.id, None)
        raise
    if expected_size is not None and actual_size != expected_size:
        temp.unlink(missing_ok=True)
        context.progress.finish(item.id, None)
        raise FetchError(
            f"{final} ({where}): received {actual_size} bytes, expected {expected_size}; deleted"
        )
    if expected_sha is not None and actual_sha != expected_sha:
        temp.unlink(missing_ok=True)
        context.progress.finish(item.id, None)
        raise FetchError(
            f"{final} ({where}): sha256 mismatch: expected {expected_sha}, got {actual_sha} "
            f"({actual_size} bytes); the download was deleted"
        )
    if expected_oid is not None and actual_oid != expected_oid:
        temp.unlink(missing_ok=True)
        context.progress.finish(item.id, None)
        raise FetchError(
            f"{final} ({where}): git blob id mismatch: expected {expected_oid}, got {actual_oid}; the download was deleted"
        )
    os.replace(temp, final)
    fsync_dir(final.parent)
    context.trust(item, actual_sha, actual_size, remote.commit)
    seconds = time.perf_counter() - started
    context.progress.finish(
        item.id, f"{final}: downloaded {human_size(actual_size)} in {seconds:.1f} s, sha256 verified"
    )
    return FetchOutcome(item.id, final, "downloaded", actual_size, actual_sha, seconds)


def _transfer(
    item: Item,
    remote: _Remote,
    temp: Path,
    offset: int,
    expected_size: int | None,
    expected_oid: str | None,
    lease: Lease,
    context: _Context,
    wrote: Callable[[int], None],
) -> tuple[str, int, str | None]:
    """Stream the file into ``temp`` from ``offset``, hashing as it arrives; resume on errors."""
    digest = hashlib.sha256()
    git: Any = None
    if expected_oid is not None and expected_size is not None:
        git = hashlib.sha1(usedforsecurity=False)
        git.update(b"blob %d\0" % expected_size)
    location = remote.location
    refreshed = False
    failures = 0
    timeout = httpx2.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    with open(temp, "r+b" if offset else "wb") as handle:
        if offset:
            _hash_existing(handle, offset, digest, git, lease, context)
        while expected_size is None or offset < expected_size:
            context.check_stop()
            lease.heartbeat()
            progressed = False
            try:
                headers = _download_headers(location, context, offset)
                with get_session().stream("GET", location, headers=headers, timeout=timeout) as response:
                    status = response.status_code
                    if status in RETRY_STATUS_CODES:
                        raise _Retryable(f"HTTP {status}")
                    if (
                        status in (401, 403, 404, 410)
                        and not refreshed
                        and not _same_origin(location, context.endpoint)
                    ):
                        # A signed CDN link can expire during a long transfer: ask the Hub for a new one.
                        refreshed = True
                        location = _metadata(item, context).location
                        continue
                    if status == 416 and expected_size is not None and offset >= expected_size:
                        break
                    try:
                        hf_raise_for_status(response)
                    except Exception as exc:
                        raise _explain(exc, item, context) from exc
                    if offset and status == 200:
                        # The server ignored our Range: start over rather than append a second copy.
                        handle.seek(0)
                        handle.truncate()
                        digest = hashlib.sha256()
                        if git is not None:
                            git = hashlib.sha1(usedforsecurity=False)
                            git.update(b"blob %d\0" % expected_size)
                        context.progress.advance(item.id, -offset)
                        offset = 0
                    elif status == 206 and not response.headers.get("Content-Range", "").startswith(
                        f"bytes {offset}-"
                    ):
                        raise _Retryable(
                            f"unexpected Content-Range {response.headers.get('Content-Range')!r}"
                        )
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        digest.update(chunk)
                        if git is not None:
                            git.update(chunk)
                        count = len(chunk)
                        offset += count
                        progressed = True
                        wrote(count)
                        context.progress.advance(item.id, count)
                        if context.stop.is_set():
                            raise _Stopped()
                        lease.heartbeat()
                if expected_size is None:
                    break
                if offset < expected_size:
                    raise _Retryable(f"the connection ended after {offset} of {expected_size} bytes")
            except (
                httpx2.TimeoutException,
                httpx2.NetworkError,
                httpx2.RemoteProtocolError,
                _Retryable,
            ) as exc:
                failures = 1 if progressed else failures + 1
                if failures > RETRY_ATTEMPTS:
                    handle.flush()
                    raise FetchError(
                        f"{temp.parent / item.filename} ({_where(item)}): gave up after {RETRY_ATTEMPTS} retries: "
                        f"{_describe(exc)}; the {offset} bytes received are kept and the next run resumes from there"
                    ) from None
                wait = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (failures - 1))
                logger.warning(
                    "%s: %s at byte %d; retrying in %.1f s (%d/%d)",
                    item.relpath, _describe(exc), offset, wait, failures, RETRY_ATTEMPTS,
                )  # fmt: skip
                _sleep(wait, lease, context)
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest(), offset, git.hexdigest() if git is not None else None


def _hash_existing(handle: Any, offset: int, digest: Any, git: Any, lease: Lease, context: _Context) -> None:
    """Feed the bytes of an earlier partial download to the hashes before resuming."""
    buffer = bytearray(HASH_BUFFER_BYTES)
    view = memoryview(buffer)
    remaining = offset
    while remaining:
        count = handle.readinto(view[: min(len(buffer), remaining)])
        if not count:
            raise OSError(errno.EIO, f"partial file shorter than {offset} bytes")
        digest.update(view[:count])
        if git is not None:
            git.update(view[:count])
        remaining -= count
        lease.heartbeat()
        context.check_stop()
    logger.info("%s: resuming at byte %d", handle.name, offset)


def _download_headers(location: str, context: _Context, offset: int) -> dict[str, str]:
    # The token goes to the Hub only, never to the CDN a download is redirected to.
    on_hub = _same_origin(location, context.endpoint)
    headers = build_hf_headers(token=context.token if on_hub else False)
    headers["Accept-Encoding"] = "identity"
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return headers


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _sleep(seconds: float, lease: Lease, context: _Context) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if context.stop.wait(min(left, 0.5)):
            raise _Stopped()
        lease.heartbeat()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, _Retryable) else f"{type(exc).__name__}: {text}"


def _disk_full(item: Item, final: Path, exc: OSError) -> FetchError:
    free = shutil.disk_usage(final.parent).free
    return FetchError(
        f"{final} ({_where(item)}): no space left on the device ({exc.strerror}); {human_size(free)} free, "
        f"the file needs {human_size(item.size) if item.size else 'more'}. The partial file was deleted; "
        "free up space or choose another --dest"
    )


def _git_oid_of(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_BUFFER_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- trust on first use ---------------------------------------------------------------------------


def _record_trusted(lock_path: Path, trusted: dict[str, _Trusted]) -> None:
    updates: dict[str, dict[str, Any]] = {}
    for item_id, record in trusted.items():
        fields: dict[str, Any] = {"sha256": record.sha256, "size": record.size}
        if record.revision is not None:
            fields["revision"] = record.revision
        updates[item_id] = fields
    text = lock_path.read_text(encoding="utf-8")
    new_text = apply_updates(text, updates, "[tofu] recorded by fetch --trust-on-first-use")
    if new_text != text:
        write_atomic(lock_path, new_text)
        logger.info("recorded sha256 and size of %s in %s", ", ".join(sorted(updates)), lock_path)


# --- progress --------------------------------------------------------------------------------------


class _Progress:
    def start(self, key: str, label: str, total: int | None, initial: int) -> None: ...
    def advance(self, key: str, count: int) -> None: ...
    def finish(self, key: str, message: str | None) -> None: ...
    def close(self) -> None: ...


class _LogProgress(_Progress):
    """Plain log lines (not a terminal): a start line, one every few seconds, an end line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, list[Any]] = {}

    def start(self, key: str, label: str, total: int | None, initial: int) -> None:
        with self._lock:
            self._state[key] = [label, total, initial, time.monotonic(), time.monotonic(), initial]
        resume = f", resuming at {human_size(initial)}" if initial else ""
        logger.info("%s: %s%s", label, human_size(total) if total else "size unknown", resume)

    def advance(self, key: str, count: int) -> None:
        with self._lock:
            state = self._state.get(key)
            if state is None:
                return
            state[2] += count
            now = time.monotonic()
            if now - state[4] < PROGRESS_LOG_SECONDS:
                return
            state[4] = now
            label, total, done, began, _, initial = state
        rate = (done - initial) / max(now - began, 1e-6)
        share = f"{100 * done / total:.0f}% " if total else ""
        logger.info("%s: %s(%s, %s/s)", label, share, human_size(done), human_size(int(rate)))

    def finish(self, key: str, message: str | None) -> None:
        with self._lock:
            self._state.pop(key, None)
        if message:
            logger.info("%s", message)


class _BarProgress(_Progress):
    """One progress bar per file being transferred (huggingface_hub's tqdm, which honours
    HF_HUB_DISABLE_PROGRESS_BARS)."""

    def __init__(self) -> None:
        from huggingface_hub.utils import tqdm

        self._tqdm = tqdm
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._free_positions: list[int] = []
        self._next_position = 0

    def start(self, key: str, label: str, total: int | None, initial: int) -> None:
        with self._lock:
            position = self._free_positions.pop(0) if self._free_positions else self._next_position
            if position == self._next_position:
                self._next_position += 1
            self._bars[key] = self._tqdm(
                total=total,
                initial=initial,
                desc=label[-48:],
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                position=position,
                leave=False,
                dynamic_ncols=True,
            )

    def advance(self, key: str, count: int) -> None:
        bar = self._bars.get(key)
        if bar is not None:
            bar.update(count)

    def finish(self, key: str, message: str | None) -> None:
        with self._lock:
            bar = self._bars.pop(key, None)
            if bar is not None:
                self._free_positions.append(bar.pos if bar.pos >= 0 else -bar.pos)
                bar.close()
            if message:
                self._tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


# --- CLI ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="model_set", required=True, help="model set to fetch (e.g. fp8, bf16)")
    parser.add_argument("--dest", type=Path, required=True, help="models directory: DEST/<folder>/<file>")
    parser.add_argument("--lock", type=Path, help="models.lock.yaml to use (default: the shipped one)")
    parser.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="accept files the lock has no sha256 for, check them against what the Hub advertises, "
        "and record their sha256/size in the lock",
    )
    parser.add_argument(
        "--token-file", type=Path, help="read the Hugging Face token from this file (e.g. a BuildKit secret)"
    )
    parser.add_argument("--jobs", type=int, default=4, help="files transferred at once (default 4)")
    parser.add_argument("--verify-present", action="store_true", help="re-hash files already in DEST")
    parser.add_argument(
        "--hf-cache", type=Path, help="Hugging Face cache to reuse files from (default: HF_HOME's)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome of every file as JSON")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_const", const=True, default=None, help="progress bars"
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, help="plain log lines"
    )


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace removed); errors never show the content."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FetchError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not token or any(c.isspace() for c in token):
        raise FetchError(f"the token file {path} must hold one token on one line")
    return token


def start_hub_command(token_file: Path | None, *, log_level: str) -> str | None:
    """The common start of the ``fetch`` and ``lock`` commands: logging, then the token.

    Logs go out at ``LOG_LEVEL``, else at ``log_level``. The token comes from ``token_file``,
    else from ``HF_TOKEN``, else None (huggingface_hub's saved login then applies); it is
    registered with the log scrubber, so no log line can show it.

    Raises:
        FetchError: the token file cannot be read, or does not hold exactly one token.
    """
    from handler.log import configure_logging, register_secrets

    configure_logging(os.environ.get("LOG_LEVEL", log_level))
    token = read_token_file(token_file) if token_file else (os.environ.get("HF_TOKEN") or None)
    if token:
        register_secrets([token])
    return token


def run(args: argparse.Namespace) -> int:
    try:
        token = start_hub_command(args.token_file, log_level="INFO")
        lock = load_lock(args.lock)
        items: list[Item] = [*lock.set_entries(args.model_set), *lock.set_licenses(args.model_set)]
        outcomes = fetch_entries(
            items,
            args.dest,
            token=token,
            trust_on_first_use=args.trust_on_first_use,
            lock_path=lock.source,
            max_workers=args.jobs,
            show_progress=args.progress,
            hf_cache=args.hf_cache,
            verify_present=args.verify_present,
        )
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FetchError as exc:
        if args.json:
            print(
                json.dumps({"outcomes": [_outcome_json(o) for o in exc.outcomes], "failures": exc.failures})
            )
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"outcomes": [_outcome_json(o) for o in outcomes], "failures": []}))
    else:
        for outcome in outcomes:
            print(f"{outcome.action:<13} {outcome.path}  {human_size(outcome.size)}  {outcome.seconds:.1f} s")
    return 0


def _outcome_json(outcome: FetchOutcome) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "path": str(outcome.path),
        "action": outcome.action,
        "size": outcome.size,
        "sha256": outcome.sha256,
        "seconds": round(outcome.seconds, 3),
    }
