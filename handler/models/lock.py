"""models.lock.yaml: the locked model manifest, loaded and validated.

The file names every model file by Hugging Face repo, path and revision, with its SHA-256 and
size (``null`` where not yet known: ``python -m handler lock`` fills them), the ComfyUI models
folder and file name it is seen under, and its licence. Model *sets* map template roles
(``checkpoint``, ``text_encoder``, ...) to entries: a set is what an image variant bakes and
what the templates resolve their loader inputs to.

A ``licenses`` section names licence texts that must travel with the weights (a baked image
redistributes them): each is a file in a Hugging Face repo, pinned like an entry, fetched into
``<dest>/licenses/<filename>`` next to the models. An entry's ``license`` is either a key of that
section or a plain identifier (``mit``, ``apache-2.0``) with no file to ship.

Loading is pure (text in, ``ModelLock`` out) and reports the offending entry and field.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

SCHEMA_VERSION = 1
DEFAULT_LOCK_PATH = Path(__file__).resolve().parents[2] / "models.lock.yaml"

# The ComfyUI model folders LTX-2 workflows read (folder_paths.py names).
COMFYUI_FOLDERS = frozenset(
    {
        "checkpoints",
        "text_encoders",
        "clip",
        "loras",
        "latent_upscale_models",
        "diffusion_models",
        "unet",
        "vae",
        "upscale_models",
        "clip_vision",
        "controlnet",
        "embeddings",
        "audio_encoders",
    }
)
ENTRY_ROLES = frozenset(
    {"checkpoint", "text_encoder", "lora", "upscaler", "diffusion_model", "vae", "ic_lora"}
)
ENTRY_FIELDS = (
    "role",
    "repo",
    "path",
    "revision",
    "sha256",
    "size",
    "folder",
    "filename",
    "license",
    "gated",
)
_REQUIRED_FIELDS = ("role", "repo", "path", "folder", "filename", "license")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENTRY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class LockError(ValueError):
    """The lock file is malformed; the message names the file, entry and field."""


@dataclass(frozen=True)
class LockEntry:
    """One model file, pinned."""

    id: str
    role: str
    repo: str
    path: str
    revision: str | None
    sha256: str | None
    size: int | None
    folder: str
    filename: str
    license: str
    gated: bool | None = None

    @property
    def relpath(self) -> str:
        """Where ComfyUI sees the file, relative to a models root: ``<folder>/<filename>``."""
        return f"{self.folder}/{self.filename}"

    @property
    def revision_or_main(self) -> str:
        return self.revision or "main"

    @property
    def fully_pinned(self) -> bool:
        return self.revision is not None and self.sha256 is not None and self.size is not None


@dataclass(frozen=True)
class LicenseFile:
    """A licence text shipped with the weights that use it."""

    id: str
    repo: str
    path: str
    revision: str | None
    sha256: str | None
    size: int | None
    filename: str

    @property
    def relpath(self) -> str:
        return f"licenses/{self.filename}"

    @property
    def revision_or_main(self) -> str:
        return self.revision or "main"


@dataclass(frozen=True)
class ModelSet:
    """A named set of entries, keyed by the template role each fills."""

    name: str
    description: str
    models: Mapping[str, str]  # role -> entry id


@dataclass(frozen=True)
class ModelLock:
    entries: Mapping[str, LockEntry]
    sets: Mapping[str, ModelSet]
    licenses: Mapping[str, LicenseFile]
    digest: str  # sha256 of the file's bytes: what an image records as "lock digest"
    source: Path | None = None

    def set(self, name: str) -> ModelSet:
        try:
            return self.sets[name]
        except KeyError:
            raise LockError(
                f"unknown model set {name!r}; the lock defines: {', '.join(sorted(self.sets)) or 'none'}"
            ) from None

    def set_entries(self, name: str) -> list[LockEntry]:
        """The set's entries in declaration order, each once (two roles may share a file)."""
        seen: dict[str, LockEntry] = {}
        for entry_id in self.set(name).models.values():
            seen.setdefault(entry_id, self.entries[entry_id])
        return list(seen.values())

    def set_licenses(self, name: str) -> list[LicenseFile]:
        """Licence texts the set's entries need shipped with them."""
        ids = dict.fromkeys(e.license for e in self.set_entries(name) if e.license in self.licenses)
        return [self.licenses[i] for i in ids]

    def role_filenames(self, name: str) -> dict[str, str]:
        """role -> the file name ComfyUI sees, for the templates."""
        return {role: self.entries[eid].filename for role, eid in self.set(name).models.items()}

    def __iter__(self) -> Iterator[LockEntry]:
        return iter(self.entries.values())


@dataclass
class _Problems:
    where: str
    items: list[str] = field(default_factory=list)

    def add(self, location: str, message: str) -> None:
        self.items.append(f"{location}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            listing = "\n  ".join(self.items)
            raise LockError(f"{self.where} is not a valid model lock:\n  {listing}")


def _represent_none(representer: Any, _data: None) -> Any:
    # ruamel's round-trip dumper writes None as an empty value; the lock spells "unknown" as `null`.
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.representer.add_representer(type(None), _represent_none)
    return yaml


def parse_lock(text: str, source: Path | None = None) -> ModelLock:
    """Parse and validate lock text; every problem is reported at once."""
    where = str(source) if source else "models.lock.yaml"
    try:
        document = _yaml().load(text)
    except YAMLError as exc:
        raise LockError(f"{where} is not valid YAML: {exc}") from None
    problems = _Problems(where)
    if not isinstance(document, Mapping):
        raise LockError(f"{where}: expected a mapping with 'schema', 'entries' and 'sets'")
    if document.get("schema") != SCHEMA_VERSION:
        problems.add("schema", f"expected {SCHEMA_VERSION}, got {document.get('schema')!r}")
    unknown_top = set(document) - {"schema", "entries", "sets", "licenses"}
    if unknown_top:
        problems.add("(top level)", f"unknown keys {sorted(unknown_top)}")

    entries: dict[str, LockEntry] = {}
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, Mapping) or not raw_entries:
        problems.add("entries", "expected a non-empty mapping of entry id -> entry")
        raw_entries = {}
    for entry_id, raw in raw_entries.items():
        entry = _parse_entry(str(entry_id), raw, problems)
        if entry is not None:
            entries[entry.id] = entry

    licenses: dict[str, LicenseFile] = {}
    raw_licenses = document.get("licenses") or {}
    if not isinstance(raw_licenses, Mapping):
        problems.add("licenses", "expected a mapping of licence id -> licence file")
        raw_licenses = {}
    for license_id, raw in raw_licenses.items():
        license_file = _parse_license(str(license_id), raw, problems)
        if license_file is not None:
            licenses[license_file.id] = license_file
    _check_license_filenames(licenses, problems)

    sets: dict[str, ModelSet] = {}
    raw_sets = document.get("sets")
    if not isinstance(raw_sets, Mapping) or not raw_sets:
        problems.add("sets", "expected a non-empty mapping of set name -> set")
        raw_sets = {}
    for set_name, raw in raw_sets.items():
        model_set = _parse_set(str(set_name), raw, raw_entries, problems)
        if model_set is not None:
            sets[model_set.name] = model_set
    for model_set in sets.values():
        _check_set_collisions(model_set, entries, problems)

    problems.raise_if_any()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return ModelLock(entries=entries, sets=sets, licenses=licenses, digest=digest, source=source)


def load_lock(path: Path | str | None = None) -> ModelLock:
    """Load ``path`` (default: the lock shipped with the worker)."""
    lock_path = Path(path) if path else DEFAULT_LOCK_PATH
    try:
        text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"model lock not found at {lock_path}") from None
    return parse_lock(text, source=lock_path)


def _parse_entry(entry_id: str, raw: Any, problems: _Problems) -> LockEntry | None:
    loc = f"entries.{entry_id}"
    if not _ENTRY_ID.match(entry_id):
        problems.add(loc, "entry ids are lowercase letters, digits, '.', '_' and '-'")
    if not isinstance(raw, Mapping):
        problems.add(loc, "expected a mapping of fields")
        return None
    before = len(problems.items)
    unknown = set(raw) - set(ENTRY_FIELDS)
    if unknown:
        problems.add(loc, f"unknown fields {sorted(unknown)}; known: {', '.join(ENTRY_FIELDS)}")
    for name in _REQUIRED_FIELDS:
        if not isinstance(raw.get(name), str) or not raw.get(name):
            problems.add(f"{loc}.{name}", f"required text field, got {raw.get(name)!r}")
    if len(problems.items) > before:
        return None

    role, repo, path = raw["role"], raw["repo"], raw["path"]
    folder, filename = raw["folder"], raw["filename"]
    if role not in ENTRY_ROLES:
        problems.add(f"{loc}.role", f"expected one of {sorted(ENTRY_ROLES)}, got {role!r}")
    if not _REPO.match(repo):
        problems.add(f"{loc}.repo", f"expected 'org/name', got {repo!r}")
    _check_repo_path(f"{loc}.path", path, problems)
    if folder not in COMFYUI_FOLDERS:
        problems.add(
            f"{loc}.folder", f"expected a ComfyUI models folder {sorted(COMFYUI_FOLDERS)}, got {folder!r}"
        )
    _check_bare_filename(f"{loc}.filename", filename, problems)

    _check_pins(loc, raw, problems)
    gated = raw.get("gated")
    if gated is not None and not isinstance(gated, bool):
        problems.add(f"{loc}.gated", f"expected true, false or null (unknown), got {gated!r}")
    if len(problems.items) > before:
        return None
    revision, sha256, size = raw.get("revision"), raw.get("sha256"), raw.get("size")
    return LockEntry(
        id=entry_id,
        role=role,
        repo=repo,
        path=path,
        revision=revision,
        sha256=sha256,
        size=size,
        folder=folder,
        filename=filename,
        license=raw["license"],
        gated=gated,
    )


def _check_repo_path(loc: str, path: str, problems: _Problems) -> None:
    if path.startswith("/") or ".." in path.split("/") or path.endswith("/") or "\\" in path:
        problems.add(loc, f"expected a file path inside the repo, got {path!r}")


def _check_bare_filename(loc: str, filename: str, problems: _Problems) -> None:
    # The file lands in <dest>/<folder>/ (or licenses/): no separators, nothing that leaves it.
    if "/" in filename or "\\" in filename or filename in {".", ".."}:
        problems.add(loc, f"expected a bare file name, got {filename!r}")


def _check_pins(loc: str, raw: Mapping[str, Any], problems: _Problems) -> None:
    revision = raw.get("revision")
    if revision is not None and not (isinstance(revision, str) and _HEX40.match(revision)):
        problems.add(f"{loc}.revision", f"expected a 40-hex commit or null (unknown), got {revision!r}")
    sha256 = raw.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.match(sha256)):
        problems.add(f"{loc}.sha256", f"expected 64 lowercase hex digits or null (unknown), got {sha256!r}")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        problems.add(f"{loc}.size", f"expected a positive byte count or null (unknown), got {size!r}")


_LICENSE_FIELDS = ("repo", "path", "revision", "sha256", "size", "filename")


def _parse_license(license_id: str, raw: Any, problems: _Problems) -> LicenseFile | None:
    loc = f"licenses.{license_id}"
    if not isinstance(raw, Mapping):
        problems.add(loc, "expected a mapping of fields")
        return None
    before = len(problems.items)
    unknown = set(raw) - set(_LICENSE_FIELDS)
    if unknown:
        problems.add(loc, f"unknown fields {sorted(unknown)}; known: {', '.join(_LICENSE_FIELDS)}")
    for name in ("repo", "path", "filename"):
        if not isinstance(raw.get(name), str) or not raw.get(name):
            problems.add(f"{loc}.{name}", f"required text field, got {raw.get(name)!r}")
    if len(problems.items) > before:
        return None
    if not _REPO.match(raw["repo"]):
        problems.add(f"{loc}.repo", f"expected 'org/name', got {raw['repo']!r}")
    _check_repo_path(f"{loc}.path", raw["path"], problems)
    _check_bare_filename(f"{loc}.filename", raw["filename"], problems)
    _check_pins(loc, raw, problems)
    if len(problems.items) > before:
        return None
    return LicenseFile(
        id=license_id,
        repo=raw["repo"],
        path=raw["path"],
        revision=raw.get("revision"),
        sha256=raw.get("sha256"),
        size=raw.get("size"),
        filename=raw["filename"],
    )


def _parse_set(name: str, raw: Any, raw_entries: Mapping[str, Any], problems: _Problems) -> ModelSet | None:
    loc = f"sets.{name}"
    if not isinstance(raw, Mapping):
        problems.add(loc, "expected a mapping with 'description' and 'models'")
        return None
    unknown = set(raw) - {"description", "models"}
    if unknown:
        problems.add(loc, f"unknown keys {sorted(unknown)}")
    models = raw.get("models")
    if not isinstance(models, Mapping) or not models:
        problems.add(f"{loc}.models", "expected a non-empty mapping of role -> entry id")
        return None
    ok = True
    for role, entry_id in models.items():
        if not _ROLE_NAME.match(str(role)):
            problems.add(f"{loc}.models.{role}", "role names are lowercase identifiers")
            ok = False
        if entry_id not in raw_entries:
            problems.add(f"{loc}.models.{role}", f"no entry {entry_id!r} in entries")
            ok = False
    if not ok:
        return None
    return ModelSet(
        name=name,
        description=str(raw.get("description", "")),
        models={str(role): str(entry_id) for role, entry_id in models.items()},
    )


def _check_license_filenames(licenses: Mapping[str, LicenseFile], problems: _Problems) -> None:
    # Every licence lands in <dest>/licenses/<filename>: two ids must not share a file name.
    seen: dict[str, str] = {}
    for license_file in licenses.values():
        other = seen.setdefault(license_file.filename, license_file.id)
        if other != license_file.id:
            problems.add(
                f"licenses.{license_file.id}.filename",
                f"{license_file.filename!r} is already used by licence {other!r}",
            )


def _check_set_collisions(model_set: ModelSet, entries: Mapping[str, LockEntry], problems: _Problems) -> None:
    seen: dict[str, str] = {}
    for entry_id in dict.fromkeys(model_set.models.values()):
        entry = entries.get(entry_id)
        if entry is None:
            continue
        other = seen.setdefault(entry.relpath, entry_id)
        if other != entry_id:
            problems.add(
                f"sets.{model_set.name}",
                f"entries {other!r} and {entry_id!r} are both seen by ComfyUI as {entry.relpath}",
            )


def dump_yaml(document: Any) -> str:
    """Serialise a round-trip document (comments and order kept): used by `lock` and TOFU."""
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    return buffer.getvalue()


def load_document(text: str) -> Any:
    """The lock as a round-trip document, for edits that keep comments and order."""
    return _yaml().load(text)
