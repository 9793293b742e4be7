"""A local Hugging Face Hub double: the routes and headers `huggingface_hub` really uses.

Two listeners on 127.0.0.1, because the real Hub sends LFS downloads to another host (its CDN)
and `huggingface_hub` stops following redirects at the first off-Hub hop (that hop's response
carries the file metadata, and the token must not leave the Hub):

- the **hub** (``endpoint``):
  - ``HEAD|GET /{repo}/resolve/{revision}/{path}``: plain git files answer 200 with
    ``ETag`` (git blob id), ``Content-Length`` and ``X-Repo-Commit``; LFS files answer 302 to
    the CDN with ``X-Linked-Etag`` (the sha256), ``X-Linked-Size``, ``X-Repo-Commit`` and
    ``Location``. Errors carry ``X-Error-Code``/``X-Error-Message`` as the Hub's do
    (``GatedRepo``, ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which is what
    `hf_raise_for_status` turns into its error classes.
  - ``GET /api/models/{repo}[/revision/{revision}]`` (``?blobs=true`` adds sizes and LFS
    info to ``siblings``): the `model_info` JSON, with ``sha`` and ``gated``.
  - ``POST /api/models/{repo}/paths-info/{revision}`` (form ``paths=...``): `get_paths_info`.
- the **CDN** (``cdn_url``): ``HEAD|GET /lfs/{sha256}?repo=..&path=..`` with ``Range``/206.

Fault injection per file (`Fault`), a request log (`LoggedRequest`) that never records token
values, only whether one was sent, and control routes under ``/_double/`` on the hub so a test
can drive a double that runs in another process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.doubles.hf.content import Blob, BlobStore, Repo, build_repo

FAULT_KINDS = ("status", "cut", "corrupt", "stall", "hold", "throttle")
_SEND_CHUNK = 256 * 1024


@dataclass
class Fault:
    """Something that goes wrong when a file is served.

    kind:
      - ``status``: answer ``status`` (e.g. 500, 503) instead of the file;
      - ``cut``: close the connection once byte ``at`` (absolute offset) has been reached;
      - ``corrupt``: flip the byte at offset ``at`` in what is sent;
      - ``stall``: pause ``seconds`` at byte ``at``, then carry on;
      - ``hold``: pause at byte ``at`` until the test calls ``release()`` (or 120 s pass);
      - ``throttle``: send at most ``rate`` bytes per second.
    on: ``body`` (GETs that send the file's bytes), ``head`` (HEAD on resolve) or ``any``.
    times: how many matching responses it affects; -1 means every one.
    """

    kind: str
    at: int = 0
    status: int = 500
    seconds: float = 0.0
    rate: int = 0
    on: str = "body"
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.on not in ("body", "head", "any"):
            raise ValueError(f"fault 'on' must be body, head or any, got {self.on!r}")


@dataclass
class LoggedRequest:
    """One request as the double saw it. ``authorized`` says whether a token came, never which."""

    method: str
    server: str  # "hub" or "cdn"
    route: str  # "resolve", "lfs", "model_info", "paths_info", "control", "unknown"
    url: str
    repo: str | None = None
    path: str | None = None
    revision: str | None = None
    range: str | None = None
    authorized: bool = False
    status: int = 0
    bytes_sent: int = 0

    @property
    def is_body_download(self) -> bool:
        """A request that sends (part of) a file's bytes."""
        return self.method == "GET" and self.route in ("resolve", "lfs") and self.status in (200, 206)


@dataclass
class _State:
    store: BlobStore
    repos: dict[str, Repo] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> repos it may read
    faults: dict[tuple[str, str], list[Fault]] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    holds: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    held: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cdn_url: str = ""


class HfDouble:
    """The Hub double, in this process (threads). Use as a context manager.

    >>> with HfDouble(spec, tmp_path) as hub:
    ...     os.environ["HF_ENDPOINT"] = hub.endpoint
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        root: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the double only binds loopback addresses, got {host!r}")
        self._state = _State(store=BlobStore(Path(root)))
        self._load(spec)
        self._hub = _Server((host, port), _HubHandler, self._state, "hub")
        self._cdn = _Server((host, cdn_port), _CdnHandler, self._state, "cdn")
        self.endpoint = f"http://{host}:{self._hub.server_address[1]}"
        self.cdn_url = f"http://{host}:{self._cdn.server_address[1]}"
        self._state.cdn_url = self.cdn_url
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> HfDouble:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        with self._state.lock:
            for event in self._state.holds.values():
                event.set()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HfDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- content ---------------------------------------------------------------------------
    def _load(self, spec: Mapping[str, Any]) -> None:
        for token, repos in (spec.get("tokens") or {}).items():
            self._state.tokens[str(token)] = set(repos or [])
        for repo_id, repo_spec in (spec.get("repos") or {}).items():
            self._state.repos[repo_id] = build_repo(repo_id, repo_spec or {}, self._state.store)
        for item in spec.get("faults") or []:
            item = dict(item)
            self.add_fault(item.pop("repo"), item.pop("path"), Fault(**item))

    def push(self, repo_id: str, files: Mapping[str, Any], *, commit_id: str | None = None) -> str:
        """Add a commit to ``repo_id`` (created if needed) that changes ``files``; main moves to it."""
        with self._state.lock:
            previous = self._state.repos.get(repo_id)
            commit_spec: dict[str, Any] = {"files": dict(files)}
            if commit_id:
                commit_spec["id"] = commit_id
            repo = build_repo(repo_id, {"commits": [commit_spec]}, self._state.store, previous)
            self._state.repos[repo_id] = repo
            return repo.commits[-1]

    def commit(self, repo_id: str, revision: str = "main") -> str:
        commit = self._state.repos[repo_id].resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        return commit

    def file(self, repo_id: str, path: str, revision: str = "main") -> Blob:
        """What the double serves for ``repo_id/path@revision`` (sha256, size, bytes on disk)."""
        return self._state.repos[repo_id].trees[self.commit(repo_id, revision)][path]

    # --- faults ----------------------------------------------------------------------------
    def add_fault(self, repo_id: str, path: str, fault: Fault) -> None:
        double_add_fault(self._state, repo_id, path, fault)

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    def wait_held(self, repo_id: str, path: str, timeout: float = 10.0) -> bool:
        """Block until a ``hold`` fault on the file has paused a transfer."""
        with self._state.lock:
            event = self._state.held.get((repo_id, path))
        return bool(event and event.wait(timeout))

    def release(self, repo_id: str, path: str) -> None:
        """Let transfers paused by a ``hold`` fault carry on."""
        with self._state.lock:
            event = self._state.holds.get((repo_id, path))
        if event:
            event.set()

    # --- request log -----------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._state.lock:
            self._state.requests.clear()

    def body_requests(self, repo_id: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Requests that sent (part of) a file's bytes, optionally for one file."""
        return [
            r
            for r in self.requests
            if r.is_body_download
            and (repo_id is None or r.repo == repo_id)
            and (path is None or r.path == path)
        ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, state: _State, name: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.state = state
        self.name = name


class _Cut(Exception):
    """Raised to drop the connection mid-body (a `cut` fault)."""


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    route: ClassVar[str] = "unknown"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def handle(self) -> None:
        # Clients that hang up (a cut transfer, a timeout) are part of the tests, not errors.
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    # --- helpers ---------------------------------------------------------------------------
    @property
    def state(self) -> _State:
        return self.server.state

    def _token(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("bearer "):
            return header[7:].strip() or None
        return None

    def _begin_log(self, route: str, **fields: Any) -> LoggedRequest:
        entry = LoggedRequest(
            method=self.command,
            server=self.server.name,
            route=route,
            url=self.path,
            range=self.headers.get("Range"),
            authorized=self._token() is not None,
            **fields,
        )
        with self.state.lock:
            self.state.requests.append(entry)
        return entry

    def _send_json(
        self, entry: LoggedRequest, status: int, payload: Any, headers: Mapping[str, str] = {}
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            entry.bytes_sent = len(body)
        entry.status = status

    def _send_error(self, entry: LoggedRequest, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send_json(entry, status, {"error": message}, headers)

    def _take_faults(self, repo: str, path: str, on: str) -> list[Fault]:
        """Faults that apply to this response; each use counts against its ``times``."""
        chosen = []
        with self.state.lock:
            faults = self.state.faults.get((repo, path), [])
            for fault in list(faults):
                if fault.on not in (on, "any") or fault.times == 0:
                    continue
                chosen.append(fault)
                if fault.times > 0:
                    fault.times -= 1
        return chosen

    def _authorize(self, entry: LoggedRequest, repo: Repo | None, repo_id: str) -> bool:
        """Answer 401/403/404 like the Hub when the caller may not read ``repo_id``."""
        token = self._token()
        if token is not None and token not in self.state.tokens:
            self._send_error(entry, 401, None, "Invalid credentials in Authorization header")
            return False
        allowed = token is not None and repo_id in self.state.tokens.get(token, set())
        if repo is None or (repo.private and not allowed):
            # The Hub does not say whether a private repo exists.
            status = 404 if token else 401
            self._send_error(entry, status, "RepoNotFound", "Repository not found")
            return False
        return True

    def _authorize_files(self, entry: LoggedRequest, repo: Repo) -> bool:
        """Gated repos: metadata is public, file contents need a token with access."""
        if not repo.gated:
            return True
        token = self._token()
        if token is None:
            self._send_error(
                entry,
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            )
            return False
        if repo.repo_id not in self.state.tokens.get(token, set()):
            self._send_error(
                entry,
                403,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                f"Visit https://huggingface.co/{repo.repo_id} to ask for access.",
            )
            return False
        return True

    def _serve_bytes(
        self, entry: LoggedRequest, blob: Blob, repo: str, path: str, extra: Mapping[str, str]
    ) -> None:
        """Send a file with Range support and faults, as a CDN or the Hub does for git files."""
        faults = self._take_faults(repo, path, "body" if self.command == "GET" else "head")
        for fault in faults:
            if fault.kind == "status":
                self._send_error(entry, fault.status, None, f"injected {fault.status}")
                return
        size = blob.size
        start, end = 0, size
        status = 200
        range_header = self.headers.get("Range")
        headers = dict(extra)
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                entry.status = 416
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self.send_response(status)
        headers.setdefault("Content-Type", "application/octet-stream")
        headers["Accept-Ranges"] = "bytes"
        headers["Content-Length"] = str(end - start)
        headers["Last-Modified"] = formatdate(usegmt=True)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        entry.status = status
        if self.command == "HEAD":
            return
        try:
            self._send_range(entry, blob, start, end, [f for f in faults if f.kind != "status"], (repo, path))
        except _Cut:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_range(
        self,
        entry: LoggedRequest,
        blob: Blob,
        start: int,
        end: int,
        faults: list[Fault],
        key: tuple[str, str],
    ) -> None:
        stops = sorted(
            (f.at, f) for f in faults if f.kind in ("cut", "stall", "hold") and start <= f.at < end
        )
        corrupt = {f.at for f in faults if f.kind == "corrupt" and start <= f.at < end}
        rate = min((f.rate for f in faults if f.kind == "throttle" and f.rate > 0), default=0)
        with blob.path.open("rb") as handle:
            position = start
            for at, fault in stops:
                self._send_segment(entry, handle, position, at, corrupt, rate)
                position = at
                if fault.kind == "cut":
                    raise _Cut()
                if fault.kind == "stall":
                    time.sleep(fault.seconds)
                if fault.kind == "hold":
                    with self.state.lock:
                        release = self.state.holds.setdefault(key, threading.Event())
                        reached = self.state.held.setdefault(key, threading.Event())
                    reached.set()
                    release.wait(120)
            self._send_segment(entry, handle, position, end, corrupt, rate)

    def _send_segment(
        self, entry: LoggedRequest, handle: Any, start: int, end: int, corrupt: set[int], rate: int
    ) -> None:
        if end <= start:
            return
        if not rate and not any(start <= at < end for at in corrupt):
            sent = self.connection.sendfile(handle, start, end - start)
            entry.bytes_sent += sent
            return
        handle.seek(start)
        position = start
        step = min(_SEND_CHUNK, rate) if rate else _SEND_CHUNK
        while position < end:
            chunk = bytearray(handle.read(min(step, end - position)))
            for at in corrupt:
                if position <= at < position + len(chunk):
                    chunk[at - position] ^= 0xFF
            began = time.monotonic()
            self.connection.sendall(chunk)
            entry.bytes_sent += len(chunk)
            position += len(chunk)
            if rate:
                time.sleep(max(0.0, len(chunk) / rate - (time.monotonic() - began)))


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` to a half-open [start, end); None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not (first + last).isdigit():
        return None
    if first == "":
        if not last:
            return None
        length = int(last)
        return (max(0, size - length), size) if length > 0 and size > 0 else None
    start = int(first)
    end = int(last) + 1 if last else size
    end = min(end, size)
    if start >= size or end <= start:
        return None
    return start, end


class _HubHandler(_BaseHandler):
    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        try:
            if parts[:1] == ["_double"]:
                self._control(parts[1:])
            elif len(parts) >= 5 and parts[2] == "resolve" and self.command in ("GET", "HEAD"):
                self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            elif parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(f"{parts[2]}/{parts[3]}", parts[4:], query)
            else:
                entry = self._begin_log("unknown")
                self._send_error(entry, 404, None, f"no route for {self.command} {split.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # --- /{repo}/resolve/{revision}/{path} ----------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        entry = self._begin_log("resolve", repo=repo_id, path=path, revision=revision)
        repo = self.state.repos.get(repo_id)
        if not self._authorize(entry, repo, repo_id):
            return
        assert repo is not None
        if self.command == "HEAD":
            for fault in self._take_faults(repo_id, path, "head"):
                if fault.kind == "status":
                    self._send_error(entry, fault.status, None, f"injected {fault.status}")
                    return
                if fault.kind == "stall":
                    time.sleep(fault.seconds)
        if not self._authorize_files(entry, repo):
            return
        commit = repo.resolve(revision)
        if commit is None:
            self._send_error(entry, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        blob = repo.trees[commit].get(path)
        if blob is None:
            self._send_error(entry, 404, "EntryNotFound", f'{path} does not exist on "{revision}"')
            return
        common = {"X-Repo-Commit": commit, "Vary": "Origin, Accept-Encoding"}
        if blob.lfs:
            location = (
                f"{self.state.cdn_url}/lfs/{blob.sha256}?repo={quote(repo_id, safe='')}"
                f"&path={quote(path, safe='')}&expires={int(time.time()) + 3600}"
                f"&filename={quote(path.rsplit('/', 1)[-1], safe='')}"
            )
            body = f"Found. Redirecting to {location}".encode()
            self.send_response(302)
            for key, value in common.items():
                self.send_header(key, value)
            self.send_header("Location", location)
            self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Size", str(blob.size))
            self.send_header("ETag", f'"{blob.git_oid}"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)
                entry.bytes_sent = len(body)
            entry.status = 302
            return
        self._serve_bytes(entry, blob, repo_id, path, {**common, "ETag": f'"{blob.git_oid}"'})

    # --- /api/models/... -----------------------------------------------------------------------
    def _api(self, repo_id: str, rest: list[str], query: Mapping[str, list[str]]) -> None:
        if self.command == "POST" and len(rest) == 2 and rest[0] == "paths-info":
            self._paths_info(repo_id, rest[1])
            return
        if self.command == "GET" and (not rest or (len(rest) == 2 and rest[0] == "revision")):
            revision = rest[1] if rest else "main"
            self._model_info(repo_id, revision, query.get("blobs", ["false"])[0].lower() == "true")
            return
        entry = self._begin_log("unknown", repo=repo_id)
        self._send_error(entry, 404, None, f"no route for {self.command} {self.path}")

    def _model_info(self, repo_id: str, revision: str, blobs: bool) -> None:
        entry = self._begin_log("model_info", repo=repo_id, revision=revision)
        repo = self.state.repos.get(repo_id)
        if not self._authorize(entry, repo, repo_id):
            return
        assert repo is not None
        commit = repo.resolve(revision)
        if commit is None:
            self._send_error(entry, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        siblings = []
        for path, blob in sorted(repo.trees[commit].items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling["blobId"] = blob.git_oid
                sibling["size"] = blob.size
                if blob.lfs:
                    sibling["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": blob.pointer_size,
                    }
            siblings.append(sibling)
        self._send_json(
            entry,
            200,
            {
                "_id": commit[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit,
                "lastModified": "2026-01-06T00:00:00.000Z",
                "createdAt": "2026-01-05T00:00:00.000Z",
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": None,
                "siblings": siblings,
            },
        )

    def _paths_info(self, repo_id: str, revision: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode()) if length else {}
        entry = self._begin_log("paths_info", repo=repo_id, revision=revision)
        repo = self.state.repos.get(repo_id)
        if not self._authorize(entry, repo, repo_id):
            return
        assert repo is not None
        commit = repo.resolve(revision)
        if commit is None:
            self._send_error(entry, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        tree = repo.trees[commit]
        result = []
        for path in form.get("paths", []):
            blob = tree.get(path)
            if blob is None:
                folder_files = [p for p in tree if p.startswith(path.rstrip("/") + "/")]
                if folder_files:
                    result.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": path})
                continue  # the Hub leaves out paths that do not exist
            item: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
            if blob.lfs:
                item["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
            result.append(item)
        self._send_json(entry, 200, result)

    # --- /_double/...: drive a double running in another process -----------------------------
    def _control(self, parts: list[str]) -> None:
        entry = LoggedRequest(method=self.command, server="hub", route="control", url=self.path)
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}") if length else {}
        action = parts[0] if parts else ""
        if action == "requests" and self.command == "GET":
            with self.state.lock:
                data = [asdict(r) for r in self.state.requests]
            self._send_json(entry, 200, data)
        elif action == "clear" and self.command == "POST":
            with self.state.lock:
                self.state.requests.clear()
            self._send_json(entry, 200, {"ok": True})
        elif action == "faults" and self.command == "POST":
            fault = dict(payload)
            repo, path = fault.pop("repo"), fault.pop("path")
            double_add_fault(self.state, repo, path, Fault(**fault))
            self._send_json(entry, 200, {"ok": True})
        elif action == "release" and self.command == "POST":
            with self.state.lock:
                event = self.state.holds.get((payload["repo"], payload["path"]))
            if event:
                event.set()
            self._send_json(entry, 200, {"ok": True})
        elif action == "held" and self.command == "POST":
            with self.state.lock:
                event = self.state.held.get((payload["repo"], payload["path"]))
            reached = bool(event and event.wait(float(payload.get("timeout", 10))))
            self._send_json(entry, 200, {"held": reached})
        elif action == "files" and self.command == "GET":
            data = {
                repo_id: {
                    "commits": repo.commits,
                    "main": repo.refs.get("main"),
                    "files": {
                        path: {"sha256": b.sha256, "size": b.size, "lfs": b.lfs}
                        for path, b in repo.trees[repo.refs["main"]].items()
                    }
                    if repo.refs.get("main")
                    else {},
                }
                for repo_id, repo in self.state.repos.items()
            }
            self._send_json(entry, 200, data)
        else:
            self._send_error(entry, 404, None, f"unknown control {self.command} /_double/{action}")


def double_add_fault(state: _State, repo: str, path: str, fault: Fault) -> None:
    with state.lock:
        state.faults.setdefault((repo, path), []).append(fault)
        if fault.kind == "hold":
            state.holds.setdefault((repo, path), threading.Event()).clear()
            state.held[(repo, path)] = threading.Event()


class _CdnHandler(_BaseHandler):
    def do_HEAD(self) -> None:
        self._lfs()

    def do_GET(self) -> None:
        self._lfs()

    def _lfs(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        parts = split.path.split("/")
        repo_id, path = query.get("repo"), query.get("path")
        entry = self._begin_log("lfs", repo=repo_id, path=path)
        try:
            if len(parts) != 3 or parts[1] != "lfs" or not repo_id or not path:
                self._send_error(entry, 404, None, "NoSuchKey")
                return
            sha = parts[2]
            blob = _find_blob(self.state.repos.values(), repo_id, sha)
            if blob is None:
                self._send_error(entry, 404, None, "NoSuchKey")
                return
            if int(query.get("expires", "0")) < time.time():
                self._send_error(entry, 403, None, "Request has expired")
                return
            filename = query.get("filename", sha)
            disposition = f"attachment; filename*=UTF-8''{quote(filename)}; filename=\"{filename}\";"
            # An S3-style etag: not the sha256, so clients cannot mistake it for one.
            etag = base64.b16encode(bytes.fromhex(sha)[:16]).decode().lower()
            self._serve_bytes(
                entry, blob, repo_id, path, {"Content-Disposition": disposition, "ETag": f'"{etag}-1"'}
            )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _find_blob(repos: Iterable[Repo], repo_id: str, sha: str) -> Blob | None:
    for repo in repos:
        if repo.repo_id != repo_id:
            continue
        for tree in repo.trees.values():
            for blob in tree.values():
                if blob.sha256 == sha and blob.lfs:
                    return blob
    return None


def ready_payload(double: HfDouble) -> dict[str, Any]:
    """What the launcher prints once the double listens: where to reach it."""
    return {"endpoint": double.endpoint, "cdn_url": double.cdn_url, "pid": os.getpid()}
