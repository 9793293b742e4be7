"""What the Hugging Face double serves: repos, commits and files, built from a small spec.

A spec is a mapping (JSON or YAML)::

    tokens:                      # optional: token -> repos it may read when gated/private
      hf_good: [acme/gated]
    repos:
      acme/model:
        gated: false             # false | "auto" | "manual"
        private: false
        commits:                 # oldest first; `main` points at the last one
          - files:
              weights.safetensors: {size: 1048576, seed: 1}    # generated, served as LFS
              LICENSE: {text: "Licence text\\n"}                # a plain git file
              big.bin: {source: /path/to/file}                  # an existing file, LFS
          - files:
              weights.safetensors: {size: 1048577, seed: 2}    # a re-upload in a later commit

Each commit's tree is the previous tree updated with its ``files`` (a ``null`` value deletes a
path). Commit ids are 40-hex, derived from the repo name and the commit's content, or given
with ``id:``. Generated files are deterministic pseudo-random bytes (incompressible, like
weights), written once under ``<root>/blobs/<sha256>`` and reused across runs with the same root.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_GEN_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Blob:
    """One file's bytes as stored by the double."""

    sha256: str
    size: int
    path: Path  # where the bytes are on disk
    lfs: bool
    git_oid: str  # git blob id: of the content (plain file) or of the LFS pointer (LFS file)
    pointer_size: int | None  # size of the LFS pointer file, for LFS files

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class Repo:
    repo_id: str
    gated: bool | str = False
    private: bool = False
    commits: list[str] = field(default_factory=list)  # oldest first
    trees: dict[str, dict[str, Blob]] = field(default_factory=dict)  # commit -> path -> blob
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit

    def resolve(self, revision: str) -> str | None:
        """A branch name or a full commit id to a commit id; None when unknown."""
        if revision in self.refs:
            return self.refs[revision]
        if revision in self.trees:
            return revision
        return None


def git_blob_oid(data: bytes) -> str:
    """The id git gives a blob: sha1 over ``blob <size>\\0`` and the bytes."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def generated_bytes(seed: Any, size: int) -> bytes:
    """The deterministic content of a generated file (small sizes; tests use it to compare)."""
    return b"".join(_generate_chunks(seed, size))


def _generate_chunks(seed: Any, size: int):
    rng = random.Random(f"hf-double:{seed}")
    remaining = size
    while remaining > 0:
        step = min(_GEN_CHUNK, remaining)
        yield rng.randbytes(step)
        remaining -= step


class BlobStore:
    """Content-addressed file store under ``root``: generated files are made once per root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "generated.json"
        try:
            self._index: dict[str, str] = json.loads(self._index_path.read_text())
        except (FileNotFoundError, ValueError):
            self._index = {}

    def blob_for(self, spec: Mapping[str, Any], *, where: str) -> Blob:
        if "text" in spec:
            data = str(spec["text"]).encode("utf-8")
            return self._store_bytes(data, lfs=bool(spec.get("lfs", False)))
        if "bytes_hex" in spec:
            return self._store_bytes(bytes.fromhex(spec["bytes_hex"]), lfs=bool(spec.get("lfs", True)))
        if "source" in spec:
            return self._store_file(Path(spec["source"]), lfs=bool(spec.get("lfs", True)))
        if "size" in spec:
            size = int(spec["size"])
            if size < 0:
                raise ValueError(f"{where}: size must be >= 0, got {size}")
            return self._store_generated(spec.get("seed", where), size, lfs=bool(spec.get("lfs", True)))
        raise ValueError(
            f"{where}: a file needs one of text, bytes_hex, source or size (+seed), got {dict(spec)}"
        )

    def _store_bytes(self, data: bytes, *, lfs: bool) -> Blob:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blobs / sha
        if not path.exists():
            tmp = path.with_name(f"{sha}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return self._blob(sha, len(data), path, lfs, data if not lfs else None)

    def _store_file(self, source: Path, *, lfs: bool) -> Blob:
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            while chunk := handle.read(_GEN_CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
        path = self.blobs / sha
        if not path.exists():
            try:
                os.link(source, path)
            except OSError:
                # Different filesystem: serve the file where it is.
                path = source
        data = path.read_bytes() if not lfs else None
        return self._blob(sha, source.stat().st_size, path, lfs, data)

    def _store_generated(self, seed: Any, size: int, *, lfs: bool) -> Blob:
        key = f"{seed!r}:{size}"
        sha = self._index.get(key)
        if sha is None or not (self.blobs / sha).is_file():
            tmp = self.blobs / f"gen.{os.getpid()}.{abs(hash(key))}.tmp"
            digest = hashlib.sha256()
            with tmp.open("wb") as handle:
                for chunk in _generate_chunks(seed, size):
                    digest.update(chunk)
                    handle.write(chunk)
            sha = digest.hexdigest()
            os.replace(tmp, self.blobs / sha)
            self._index[key] = sha
            index_tmp = self._index_path.with_suffix(f".{os.getpid()}.tmp")
            index_tmp.write_text(json.dumps(self._index, indent=1))
            os.replace(index_tmp, self._index_path)
        path = self.blobs / sha
        data = path.read_bytes() if not lfs else None
        return self._blob(sha, size, path, lfs, data)

    @staticmethod
    def _blob(sha: str, size: int, path: Path, lfs: bool, data: bytes | None) -> Blob:
        if lfs:
            pointer = lfs_pointer(sha, size)
            return Blob(sha, size, path, True, git_blob_oid(pointer), len(pointer))
        assert data is not None
        return Blob(sha, size, path, False, git_blob_oid(data), None)


def commit_id(repo_id: str, parent: str | None, tree: Mapping[str, Blob]) -> str:
    listing = "\n".join(f"{p} {b.git_oid}" for p, b in sorted(tree.items()))
    return hashlib.sha1(f"{repo_id}\n{parent}\n{listing}".encode(), usedforsecurity=False).hexdigest()


def build_repo(repo_id: str, spec: Mapping[str, Any], store: BlobStore, previous: Repo | None = None) -> Repo:
    """A repo from its spec; ``previous`` lets a later call append commits (a re-upload)."""
    repo = previous or Repo(repo_id=repo_id)
    if "gated" in spec:
        repo.gated = spec["gated"]
    if "private" in spec:
        repo.private = bool(spec["private"])
    for index, commit_spec in enumerate(spec.get("commits") or []):
        parent = repo.commits[-1] if repo.commits else None
        tree = dict(repo.trees[parent]) if parent else {}
        for path, file_spec in (commit_spec.get("files") or {}).items():
            if file_spec is None:
                tree.pop(path, None)
            else:
                tree[path] = store.blob_for(file_spec, where=f"{repo_id}:{path}")
        commit = commit_spec.get("id") or commit_id(repo_id, parent, tree)
        if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
            raise ValueError(f"{repo_id} commit {index}: id must be 40 lowercase hex, got {commit!r}")
        repo.commits.append(commit)
        repo.trees[commit] = tree
        repo.refs["main"] = commit
    for branch, target in (spec.get("refs") or {}).items():
        repo.refs[branch] = repo.resolve(target) or target
    return repo


def load_spec(path: Path) -> dict[str, Any]:
    """Read a spec file: JSON, or YAML when the name ends in .yaml/.yml."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        from ruamel.yaml import YAML

        return YAML(typ="safe").load(text)
    return json.loads(text)
