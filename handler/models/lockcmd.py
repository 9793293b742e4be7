"""Resolve models.lock.yaml against the Hugging Face Hub (revision, sha256, size, gated).

``python -m handler lock`` asks the Hub, for every entry and licence (or those named with
``--entry``), which commit its revision is (``main`` where the lock has none), the file's LFS
sha256 and size at that commit and whether the repo is gated, and rewrites the lock with what
changed (comments and order kept; a changed value's comment says it came from the Hub).
``--check`` writes nothing: it prints a diff and exits 1 when the lock and the Hub disagree.
``--upgrade`` resolves ``main`` even for entries pinned to a commit (to move to new uploads).

Exit status: 0 in sync (or rewritten), 1 ``--check`` found differences, 2 an error.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, get_session, get_token, hf_raise_for_status
from huggingface_hub.utils.sha import git_hash

from handler.fsutil import write_atomic
from handler.models.fetch import GIT_OID_MAX_BYTES, FetchError, describe_hub_error, start_hub_command
from handler.models.lock import LicenseFile, LockEntry, LockError, ModelLock, load_lock
from handler.models.lockedit import apply_updates

Item = LockEntry | LicenseFile
COMMENT = "[hub] resolved by `python -m handler lock`"


class ResolveError(RuntimeError):
    """The Hub could not tell us about an entry; the message names the entry and the cause."""


@dataclass(frozen=True)
class Resolved:
    """What the Hub says about one lock item."""

    revision: str
    sha256: str
    size: int
    gated: bool | None  # None for licences (the lock does not record it there)


def wanted_revision(item: Item, *, upgrade: bool) -> str:
    """The revision to ask the Hub about: the pinned commit, or ``main``."""
    return "main" if upgrade or item.revision is None else item.revision


def updates_for(items: Sequence[Item], resolved: Mapping[str, Resolved]) -> dict[str, dict[str, Any]]:
    """Lock fields to change so that each item says what the Hub says (pure)."""
    updates: dict[str, dict[str, Any]] = {}
    for item in items:
        hub = resolved.get(item.id)
        if hub is None:
            continue
        fields: dict[str, Any] = {}
        if item.revision != hub.revision:
            fields["revision"] = hub.revision
        if item.sha256 != hub.sha256:
            fields["sha256"] = hub.sha256
        if item.size != hub.size:
            fields["size"] = hub.size
        if isinstance(item, LockEntry) and hub.gated is not None and item.gated is not hub.gated:
            fields["gated"] = hub.gated
        if fields:
            updates[item.id] = fields
    return updates


def resolve_items(
    items: Sequence[Item], api: HfApi, *, upgrade: bool = False
) -> tuple[dict[str, Resolved], list[str]]:
    """Ask the Hub about ``items``: one model-info and one paths-info request per repo/revision.

    Returns what was resolved (by item id) and one error message per item that was not.
    """
    groups: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        groups.setdefault((item.repo, wanted_revision(item, upgrade=upgrade)), []).append(item)
    resolved: dict[str, Resolved] = {}
    errors: list[str] = []
    for (repo, revision), members in groups.items():
        try:
            info = api.model_info(repo, revision=revision)
            commit = info.sha
            if not commit:
                raise ResolveError(f"{repo}@{revision}: the Hub returned no commit id")
            files = {
                f.path: f
                for f in api.get_paths_info(repo, [m.path for m in members], revision=commit)
                if isinstance(f, RepoFile)
            }
        except Exception as exc:
            message = _explain(exc, api, repo, revision)
            errors.extend(f"{m.id}: {message}" for m in members)
            continue
        # The Hub says False, "auto" or "manual"; the lock records whether a token is needed.
        gated = None if info.gated is None else info.gated is not False
        for member in members:
            found = files.get(member.path)
            if found is None:
                errors.append(
                    f"{member.id}: {member.path!r} does not exist in {repo} at {commit} ({revision}); "
                    "check the entry's repo and path"
                )
                continue
            try:
                sha256, size = _content_hash(api, repo, commit, found)
            except Exception as exc:
                errors.append(f"{member.id}: {_explain(exc, api, repo, commit)}")
                continue
            resolved[member.id] = Resolved(
                revision=commit,
                sha256=sha256,
                size=size,
                gated=gated if isinstance(member, LockEntry) else None,
            )
    return resolved, errors


def _content_hash(api: HfApi, repo: str, commit: str, found: RepoFile) -> tuple[str, int]:
    """The file's sha256 and size: from LFS metadata, or by reading a (small) plain git file."""
    if found.lfs is not None:
        return found.lfs.sha256, found.lfs.size
    if found.size > GIT_OID_MAX_BYTES:
        raise ResolveError(
            f"{repo}/{found.path}: a {found.size}-byte plain git file is not expected; not read"
        )
    # The Hub gives plain files' git ids, not sha256: read the few bytes and hash them,
    # checking them against the git id the Hub advertised.
    url = hf_hub_url(repo, found.path, revision=commit, endpoint=api.endpoint)
    response = get_session().get(url, headers=build_hf_headers(token=api.token), follow_redirects=True)
    hf_raise_for_status(response)
    data = response.content
    if git_hash(data) != found.blob_id:
        raise ResolveError(
            f"{repo}/{found.path}@{commit}: the bytes read have git id {git_hash(data)}, the Hub lists "
            f"{found.blob_id}; try again"
        )
    return hashlib.sha256(data).hexdigest(), len(data)


def _explain(exc: BaseException, api: HfApi, repo: str, revision: str) -> str:
    if isinstance(exc, ResolveError):
        return str(exc)
    return describe_hub_error(
        exc, repo=repo, revision=revision, endpoint=api.endpoint, has_token=bool(api.token or get_token())
    )


def select(lock: ModelLock, ids: Sequence[str] | None) -> list[Item]:
    """The lock's entries and licences, or those named in ``ids`` (unknown ids are an error)."""
    every: dict[str, Item] = {**lock.entries, **lock.licenses}
    if not ids:
        return list(every.values())
    unknown = [i for i in ids if i not in every]
    if unknown:
        raise LockError(
            f"no entry or licence {', '.join(map(repr, unknown))} in the lock; known: {', '.join(every)}"
        )
    return [every[i] for i in dict.fromkeys(ids)]


def describe_updates(updates: Mapping[str, Mapping[str, Any]], items: Sequence[Item]) -> list[str]:
    by_id = {i.id: i for i in items}
    lines = []
    for item_id, fields in updates.items():
        changes = ", ".join(f"{k}: {getattr(by_id[item_id], k, None)} -> {v}" for k, v in fields.items())
        lines.append(f"{item_id}: {changes}")
    return lines


# --- CLI -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if the Hub disagrees"
    )
    parser.add_argument("--lock", type=Path, help="models.lock.yaml to use (default: the shipped one)")
    parser.add_argument(
        "--entry",
        action="extend",
        nargs="+",
        metavar="ID",
        help="only these entries or licences (repeatable)",
    )
    parser.add_argument(
        "--upgrade", action="store_true", help="resolve main even for entries pinned to a commit"
    )
    parser.add_argument("--token-file", type=Path, help="read the Hugging Face token from this file")


def run(args: argparse.Namespace) -> int:
    try:
        token = start_hub_command(args.token_file, log_level="WARNING")
        lock = load_lock(args.lock)
        assert lock.source is not None
        items = select(lock, args.entry)
    except (LockError, FetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = HfApi(endpoint=(os.environ.get("HF_ENDPOINT") or None), token=token)
    resolved, errors = resolve_items(items, api, upgrade=args.upgrade)
    if errors:
        print("error: could not resolve against the Hub:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 2
    updates = updates_for(items, resolved)
    text = lock.source.read_text(encoding="utf-8")
    if not updates:
        print(f"{lock.source}: {len(items)} entries match the Hub")
        return 0
    try:
        new_text = apply_updates(text, updates, COMMENT)
    except LockError as exc:
        print(f"error: the Hub's answers would make an invalid lock: {exc}", file=sys.stderr)
        return 2
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=f"{lock.source} (lock)",
                tofile=f"{lock.source} (Hub)",
            )
        )
        print(f"{len(updates)} of {len(items)} entries differ from the Hub", file=sys.stderr)
        return 1
    write_atomic(lock.source, new_text)
    for line in describe_updates(updates, items):
        print(line)
    print(f"{lock.source}: updated {len(updates)} of {len(items)} entries")
    return 0
