"""Show where each model of the active set is found (image, network volume, RunPod cache, download).

At startup the worker resolves every file of the active model set on its own, in this order,
and takes the first candidate whose size matches the lock:

1. ``MODELS_DIR`` (``<dir>/<folder>/<file>``), when set;
2. the image's baked directory (build info ``models_dir``, or ``BAKED_MODELS_DIR``);
3. the network volume, ``/runpod-volume/models/<folder>/<file>``;
4. the same volume in the Pod layout, ``/runpod-volume/ComfyUI/models/<folder>/<file>``;
5. RunPod's cached-model store, ``/runpod-volume/huggingface-cache/hub/models--ORG--NAME/``:
   ``refs/main`` names the snapshot, the file is ``snapshots/<rev>/<path in repo>`` (usually a
   symlink into ``blobs/``); a pinned revision and the other snapshots are tried after it;
6. the download directory (``DOWNLOAD_DIR``, default ``/runpod-volume/models`` or container disk),
   and, when ``ALLOW_DOWNLOADS`` is on, a verified download into it.

In the folder-based places a file is also looked for under ComfyUI's legacy folder names
(``clip`` for ``text_encoders``, ``unet`` for ``diffusion_models``), as ComfyUI itself would.
A wrong-size candidate is skipped with a warning and the next place tried. Locating costs
``stat`` calls only; hashing happens on download, with ``VERIFY_MODELS=full`` or on request
(``--verify``), and is remembered (``handler.models.verified``).

The user's own model files in the volume's model folders (their LoRAs, extra checkpoints) are
reported as *extras* and wired into ComfyUI next to the lock's files (``handler.models.wiring``).

Library use (the worker)::

    prepared = prepare_models(settings)        # locate, download if allowed, wire ComfyUI
    comfyui_cmd += prepared.comfyui_args        # --extra-model-paths-config <generated yaml>
    prepared.report.missing_error()             # None when the active set is complete
    prepared.report.to_dict()                   # the report that goes into every job result

Command line: ``python -m handler locate [--json] [--set S] [--lock PATH] [--verify]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import stat as statmod
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handler.buildinfo import BuildInfo, read_build_info
from handler.fsutil import human_size
from handler.log import configure_logging
from handler.models.lock import LockEntry, LockError, ModelLock, load_lock
from handler.models.verified import VerifiedStore, measure
from handler.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# Sources, in search order. "downloaded" is both the download directory and a fresh download.
SOURCE_MODELS_DIR = "models_dir"
SOURCE_BAKED = "baked"
SOURCE_VOLUME = "volume"
SOURCE_VOLUME_COMFYUI = "volume-comfyui"
SOURCE_RUNPOD_CACHE = "runpod-cache"
SOURCE_DOWNLOADED = "downloaded"
SOURCES = (
    SOURCE_MODELS_DIR,
    SOURCE_BAKED,
    SOURCE_VOLUME,
    SOURCE_VOLUME_COMFYUI,
    SOURCE_RUNPOD_CACHE,
    SOURCE_DOWNLOADED,
)
# How each source is named to a person reading a report.
SOURCE_LABELS = {
    SOURCE_MODELS_DIR: "MODELS_DIR",
    SOURCE_BAKED: "image",
    SOURCE_VOLUME: "network volume",
    SOURCE_VOLUME_COMFYUI: "network volume (Pod layout)",
    SOURCE_RUNPOD_CACHE: "RunPod model cache",
    SOURCE_DOWNLOADED: "download directory",
}

# ComfyUI's folder_paths.map_legacy: files in `clip`/`unet` are seen as text_encoders/diffusion_models.
LEGACY_FOLDERS: Mapping[str, tuple[str, ...]] = {"text_encoders": ("clip",), "diffusion_models": ("unet",)}
CANONICAL_FOLDER: Mapping[str, str] = {"clip": "text_encoders", "unet": "diffusion_models"}

VOLUME_MODELS = Path("models")
VOLUME_COMFYUI_MODELS = Path("ComfyUI") / "models"
VOLUME_HF_HUB = Path("huggingface-cache") / "hub"

# Extras: what counts as a model file in the report, and what is never one.
MODEL_EXTENSIONS = frozenset(
    {".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".gguf", ".onnx"}
)
_NOT_MODEL_FOLDERS = frozenset({"licenses"})
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".incomplete", ".download", ".downloading", ".lock")
# Bounds the walk of a user's volume for the report (links are per top-level entry, not per file).
MAX_EXTRA_FILES = 2000
# Extras listed in a job result's report; the rest are counted.
MAX_EXTRAS_IN_RESULT = 50


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocatedFile:
    """A file of the active set and where it was found."""

    id: str
    roles: tuple[str, ...]
    folder: str
    filename: str
    source: str  # one of SOURCES
    path: Path
    size: int
    verified: bool | None  # True: sha256 matched the lock (now, remembered, at download or at build)

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"


@dataclass(frozen=True)
class MissingFile:
    """A file of the active set found nowhere; ``looked_in`` names every place tried and why not."""

    id: str
    roles: tuple[str, ...]
    folder: str
    filename: str
    looked_in: tuple[str, ...]

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"


@dataclass(frozen=True)
class ExtraFile:
    """A user's own model file on the volume: visible to ComfyUI, not in the lock, not verified."""

    folder: str
    filename: str  # as ComfyUI lists it: relative to the folder, e.g. "style/my-lora.safetensors"
    path: Path
    size: int

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"


@dataclass(frozen=True)
class ModelReport:
    """Where every model file is: logged at startup, returned in every job result."""

    model_set: str | None
    files: tuple[LocatedFile, ...]
    missing: tuple[MissingFile, ...]
    extras: tuple[ExtraFile, ...]
    problem: str | None = None  # why no set could be located (no MODEL_SET, unknown set)
    hints: tuple[str, ...] = ()  # what the user can do about missing files
    warnings: tuple[str, ...] = ()  # skipped candidates and other things worth a look

    @property
    def complete(self) -> bool:
        """True when a set is active and every one of its files was found."""
        return self.problem is None and self.model_set is not None and not self.missing

    def file_for(self, folder: str, filename: str) -> LocatedFile | None:
        """The located file ComfyUI lists as ``filename`` in ``folder`` (legacy names allowed)."""
        folder = CANONICAL_FOLDER.get(folder, folder)
        return next(
            (
                f
                for f in self.files
                if CANONICAL_FOLDER.get(f.folder, f.folder) == folder and f.filename == filename
            ),
            None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (compact: it goes into every job result)."""
        data: dict[str, Any] = {
            "model_set": self.model_set,
            "complete": self.complete,
            "files": [
                {
                    "id": f.id,
                    "file": f.relpath,
                    "source": f.source,
                    "path": str(f.path),
                    "size": f.size,
                    "verified": f.verified,
                }
                for f in self.files
            ],
            "missing": [
                {"id": m.id, "file": m.relpath, "looked_in": list(m.looked_in)} for m in self.missing
            ],
            "extras": [
                {"file": e.relpath, "path": str(e.path), "size": e.size}
                for e in self.extras[:MAX_EXTRAS_IN_RESULT]
            ],
        }
        if len(self.extras) > MAX_EXTRAS_IN_RESULT:
            data["extras_not_shown"] = len(self.extras) - MAX_EXTRAS_IN_RESULT
        if self.problem:
            data["problem"] = self.problem
        return data

    def log_block(self) -> str:
        """The startup log block: a headline, then one aligned line per file, extra and gap."""
        return "\n".join([self.headline(), *format_table(self, indent="  ")])

    def headline(self) -> str:
        if self.problem:
            head = f"Models: {self.problem}"
        else:
            total = sum(f.size for f in self.files)
            count = len(self.files) + len(self.missing)
            head = f"Models: set {self.model_set}, {len(self.files)} of {count} files found ({human_size(total)})"
            if self.missing:
                head += f", {len(self.missing)} MISSING"
        if self.extras:
            head += f"; {len(self.extras)} extra file{'s' if len(self.extras) != 1 else ''} from the volume"
        return head

    def missing_error(self) -> str | None:
        """One paragraph naming each missing file and every place looked; None when complete."""
        if self.problem:
            return self.problem
        if not self.missing:
            return None
        parts = [
            f"{len(self.missing)} model file{'s' if len(self.missing) != 1 else ''} of set "
            f"{self.model_set} {'are' if len(self.missing) != 1 else 'is'} missing."
        ]
        for item in self.missing:
            parts.append(
                f"{item.relpath} (entry {item.id}) not found; looked in: {'; '.join(item.looked_in)}."
            )
        parts.extend(self.hints)
        return " ".join(parts)

    def job_error(self, prompt: Mapping[str, Any], lock: ModelLock | None = None) -> str | None:
        """A clear error when an API-format prompt loads a model this worker cannot serve.

        Errors for: a file of the active set that is missing (naming where it was looked for);
        a lock file of another set (naming the set(s) it belongs to); any lock file when no set
        is active. Names that are neither (a user's own files) are left to ComfyUI's validation.
        """
        problems = []
        other_sets = _lock_names(lock, self.model_set) if lock is not None else {}
        for node_id, folder, filename in models_needed_by(prompt):
            canonical = CANONICAL_FOLDER.get(folder, folder)
            if self.file_for(canonical, filename) is not None:
                continue
            gone = next((m for m in self.missing if m.folder == canonical and m.filename == filename), None)
            where = f"node {node_id} needs {canonical}/{filename}"
            if gone is not None:
                problems.append(f"{where}, which was not found; looked in: {'; '.join(gone.looked_in)}")
            elif (canonical, filename) in other_sets:
                entry_id, sets = other_sets[(canonical, filename)]
                if self.model_set is None:
                    problems.append(
                        f"{where} (lock entry {entry_id}, set {', '.join(sets)}), but {self.problem}"
                    )
                else:
                    problems.append(
                        f"{where} (lock entry {entry_id}), which belongs to model set {', '.join(sets)}, "
                        f"not to this worker's set {self.model_set}; use a worker for that set"
                        + (" or set MODEL_SET (slim images)" if len(sets) == 1 else "")
                    )
        if not problems:
            return None
        return "; ".join(problems)


@dataclass(frozen=True)
class PreparedModels:
    """The outcome of startup model preparation: the report and ComfyUI's extra arguments."""

    report: ModelReport
    comfyui_args: list[str]


def format_table(report: ModelReport, indent: str = "") -> list[str]:
    """Aligned rows FILE / SOURCE / SIZE / VERIFIED / PATH for found files and extras, then gaps."""
    rows = [("FILE", "SOURCE", "SIZE", "VERIFIED", "PATH")]
    for f in report.files:
        verified = {True: "yes", False: "NO", None: "-"}[f.verified]
        rows.append((f.relpath, f.source, human_size(f.size), verified, str(f.path)))
    for e in report.extras:
        rows.append((e.relpath, "extra", human_size(e.size), "-", str(e.path)))
    lines = []
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append(indent + "  ".join([*cells, row[4]]).rstrip())
    for m in report.missing:
        lines.append(f"{indent}MISSING {m.relpath} (entry {m.id}); looked in:")
        lines.extend(f"{indent}    {place}" for place in m.looked_in)
    return lines


# --------------------------------------------------------------------------------------------
# Which set, and where to look (pure)
# --------------------------------------------------------------------------------------------


def active_model_set(
    settings: Settings, build_info: BuildInfo, lock: ModelLock, override: str | None = None
) -> tuple[str | None, str | None, list[str]]:
    """Which model set is active: the image's when it bakes one, else ``MODEL_SET``.

    Args:
        settings: the worker's settings (``MODEL_SET``).
        build_info: the image's build info (a baked image's set wins over ``MODEL_SET``).
        lock: the model lock; the set must be one of its sets.
        override: a set asked for explicitly (a command line's ``--set``): wins over both.

    Returns:
        (set name, problem, warnings): the name is None when no set is active, and the problem
        then says why and what to do.
    """
    warnings = []
    known = ", ".join(sorted(lock.sets)) or "none"
    if override is not None:
        name = override
        origin = "--set"
    elif build_info.is_baked:
        name = build_info.model_set
        origin = f"the image's build info ({build_info.variant} image)"
        if settings.model_set and settings.model_set != name:
            warnings.append(
                f"MODEL_SET={settings.model_set} is ignored: this {build_info.variant} image bakes set {name}"
            )
    else:
        name = settings.model_set
        origin = "MODEL_SET"
        if name is None:
            return (
                None,
                "no model set is active: this image has no baked models and MODEL_SET is not set; "
                f"set the MODEL_SET environment variable of the endpoint to one of: {known}",
                warnings,
            )
    if name not in lock.sets:
        return None, f"unknown model set {name!r} (from {origin}); the lock defines: {known}", warnings
    return name, None, warnings


def baked_dir(settings: Settings, build_info: BuildInfo) -> Path:
    """``BAKED_MODELS_DIR`` when set explicitly, else the image's recorded directory, else the default."""
    if "baked_models_dir" not in settings.model_fields_set and build_info.models_dir:
        return Path(build_info.models_dir)
    return settings.baked_models_dir


def container_download_dir(settings: Settings) -> Path:
    """Downloads on container disk (no volume, or a read-only one): lost when the worker goes."""
    return settings.worker_home / "downloads"


def default_download_dir(settings: Settings, volume_present: bool) -> Path:
    """``DOWNLOAD_DIR``, else the volume's models folder, else container disk under WORKER_HOME."""
    if settings.download_dir is not None:
        return settings.download_dir
    if volume_present:
        return settings.runpod_volume / VOLUME_MODELS
    return container_download_dir(settings)


def model_roots(settings: Settings, build_info: BuildInfo, download_dir: Path) -> list[tuple[str, Path]]:
    """Folder-layout places in search order, as (source, root); each path once (first source wins)."""
    roots: list[tuple[str, Path]] = []
    if settings.models_dir is not None:
        roots.append((SOURCE_MODELS_DIR, settings.models_dir))
    roots.append((SOURCE_BAKED, baked_dir(settings, build_info)))
    roots.append((SOURCE_VOLUME, settings.runpod_volume / VOLUME_MODELS))
    roots.append((SOURCE_VOLUME_COMFYUI, settings.runpod_volume / VOLUME_COMFYUI_MODELS))
    roots.append((SOURCE_DOWNLOADED, download_dir))
    roots.append((SOURCE_DOWNLOADED, container_download_dir(settings)))
    seen: set[Path] = set()
    unique = []
    for source, root in roots:
        key = Path(os.path.normpath(root))
        if key not in seen:
            seen.add(key)
            unique.append((source, root))
    return unique


def hf_cache_repo_dir(hub: Path, repo: str) -> Path:
    """The Hugging Face cache folder of a model repo: ``hub/models--ORG--NAME``."""
    # Imported here: huggingface_hub's download module costs ~0.15 s, and only volumes with a
    # RunPod cache need it.
    from huggingface_hub.file_download import repo_folder_name

    return hub / repo_folder_name(repo_id=repo, repo_type="model")


def snapshot_order(refs_main: str | None, pinned: str | None, snapshots: Iterable[str]) -> list[str]:
    """Snapshots to try: the one ``refs/main`` names, the lock's pinned revision, then the rest."""
    order = [rev for rev in (refs_main, pinned) if rev]
    order.extend(sorted(s for s in snapshots if not s.startswith(".")))
    return list(dict.fromkeys(order))


@dataclass(frozen=True)
class Candidate:
    """A place a file may be. ``gone`` says why it cannot be there, known without a stat."""

    source: str
    path: Path
    gone: str | None = None


@dataclass(frozen=True)
class SearchRoot:
    """A folder-layout place and whether it exists (one stat, done once per locate)."""

    source: str
    path: Path
    present: bool


@dataclass(frozen=True)
class CachedRepo:
    """What RunPod's cache holds for one repo: its folder, ``refs/main`` and its snapshots."""

    repo: str
    path: Path
    present: bool
    refs_main: str | None = None
    snapshots: tuple[str, ...] = ()


def candidates_for(
    entry: LockEntry, roots: Sequence[SearchRoot], cache: CachedRepo | None
) -> list[Candidate]:
    """Every place where ``entry`` may be, in search order.

    Places whose folder does not exist are kept (with ``gone`` set) so a report can name them;
    ``cache`` is RunPod's cache for the entry's repo, searched before the download directories.
    """
    candidates: list[Candidate] = []
    folders = (entry.folder, *LEGACY_FOLDERS.get(entry.folder, ()))

    def add_root(root: SearchRoot) -> None:
        if not root.present:
            gone = f"no folder {root.path}"
            candidates.append(Candidate(root.source, root.path / entry.folder / entry.filename, gone))
            return
        candidates.extend(Candidate(root.source, root.path / folder / entry.filename) for folder in folders)

    for root in roots:
        if root.source != SOURCE_DOWNLOADED:
            add_root(root)
    if cache is not None:
        revisions = snapshot_order(cache.refs_main, entry.revision, cache.snapshots)
        if not cache.present:
            candidates.append(Candidate(SOURCE_RUNPOD_CACHE, cache.path, "not cached"))
        elif not revisions:
            candidates.append(Candidate(SOURCE_RUNPOD_CACHE, cache.path, "no refs/main and no snapshots"))
        else:
            candidates.extend(
                Candidate(SOURCE_RUNPOD_CACHE, cache.path / "snapshots" / rev / entry.path)
                for rev in revisions
            )
    for root in roots:
        if root.source == SOURCE_DOWNLOADED:
            add_root(root)
    return candidates


StatFn = Callable[[Path], os.stat_result]


def choose_candidate(
    entry: LockEntry,
    candidates: Sequence[Candidate],
    stat: StatFn,
    rejected: Mapping[Path, str] | None = None,
) -> tuple[tuple[Candidate, os.stat_result] | None, list[str], list[str]]:
    """The first candidate that is a regular file of the lock's size (stat follows symlinks).

    Returns (hit or None, what was seen at each place tried, warnings for wrong-size files).
    ``rejected`` maps paths already found bad (a hash mismatch) to the reason. An entry whose
    size the lock does not know accepts any non-empty file.
    """
    looked: list[str] = []
    warnings: list[str] = []
    rejected = rejected or {}
    for candidate in candidates:
        where = f"{SOURCE_LABELS[candidate.source]}: {candidate.path}"
        if candidate.gone is not None:
            looked.append(f"{where} ({candidate.gone})")
            continue
        if candidate.path in rejected:
            looked.append(f"{where} ({rejected[candidate.path]})")
            continue
        try:
            st = stat(candidate.path)
        except FileNotFoundError:
            looked.append(f"{where} (absent)")
            continue
        except NotADirectoryError:
            looked.append(f"{where} (absent: a parent is not a folder)")
            continue
        except OSError as exc:
            looked.append(f"{where} (unreadable: {exc.strerror or exc})")
            continue
        if not statmod.S_ISREG(st.st_mode):
            looked.append(f"{where} (not a regular file)")
            continue
        if entry.size is not None and st.st_size != entry.size:
            looked.append(f"{where} (wrong size: {st.st_size} bytes, the lock says {entry.size})")
            warnings.append(
                f"skipping {candidate.path}: {st.st_size} bytes, but {entry.relpath} (entry {entry.id}) "
                f"is {entry.size} bytes in the lock; trying the next place"
            )
            continue
        if entry.size is None and st.st_size == 0:
            looked.append(f"{where} (empty file)")
            continue
        return (candidate, st), looked, warnings
    return None, looked, warnings


# --------------------------------------------------------------------------------------------
# Locating (stat only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraLink:
    """A top-level entry of a volume model folder that the symlink farm exposes to ComfyUI."""

    folder: str  # canonical ComfyUI folder name
    name: str
    target: Path


@dataclass
class _Survey:
    """The places of one locate run: root presence and RunPod cache contents, each looked up once."""

    settings: Settings
    roots: list[SearchRoot]
    volume_present: bool
    hub: Path
    hub_present: bool
    download_dir: Path
    repos: dict[str, CachedRepo] = field(default_factory=dict)

    def cached_repo(self, entry: LockEntry) -> CachedRepo | None:
        """RunPod's cache for the entry's repo (read once per repo), None without a volume."""
        if not self.volume_present:
            return None
        if entry.repo not in self.repos:
            self.repos[entry.repo] = _read_cached_repo(self.hub, entry.repo, self.hub_present)
        return self.repos[entry.repo]


def _read_cached_repo(hub: Path, repo: str, hub_present: bool) -> CachedRepo:
    path = hf_cache_repo_dir(hub, repo)
    if not hub_present:
        return CachedRepo(repo, path, False)
    try:
        snapshots = tuple(sorted(p.name for p in os.scandir(path / "snapshots") if p.is_dir()))
    except OSError:
        return CachedRepo(repo, path, path.is_dir())
    try:
        refs_main = (path / "refs" / "main").read_text(encoding="utf-8").strip() or None
    except OSError:
        refs_main = None
    return CachedRepo(repo, path, True, refs_main, snapshots)


def _survey(settings: Settings, build_info: BuildInfo) -> _Survey:
    volume_present = settings.runpod_volume.is_dir()
    download_dir = default_download_dir(settings, volume_present)
    roots = []
    for source, root in model_roots(settings, build_info, download_dir):
        under_volume = source in (SOURCE_VOLUME, SOURCE_VOLUME_COMFYUI)
        present = (volume_present or not under_volume) and root.is_dir()
        roots.append(SearchRoot(source, root, present))
    hub = settings.runpod_volume / VOLUME_HF_HUB
    hub_present = volume_present and hub.is_dir()
    return _Survey(settings, roots, volume_present, hub, hub_present, download_dir)


def _roles_by_entry(lock: ModelLock, set_name: str) -> dict[str, tuple[str, ...]]:
    roles: dict[str, list[str]] = {}
    for role, entry_id in lock.set(set_name).models.items():
        roles.setdefault(entry_id, []).append(role)
    return {entry_id: tuple(r) for entry_id, r in roles.items()}


def _lock_names(
    lock: ModelLock | None, active: str | None
) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """(folder, filename) of every lock entry outside the active set -> (entry id, its sets)."""
    if lock is None:
        return {}
    active_ids = set(lock.set(active).models.values()) if active in lock.sets else set()
    names: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for entry in lock:
        if entry.id in active_ids:
            continue
        sets = tuple(sorted(s.name for s in lock.sets.values() if entry.id in s.models.values()))
        names[(entry.folder, entry.filename)] = (entry.id, sets)
    return names


@dataclass(frozen=True)
class _Fresh:
    """What this run learnt about a file beyond stat: downloaded now (and verified by fetch)."""

    source: str
    verified: bool | None


def _locate(
    settings: Settings,
    lock: ModelLock,
    build_info: BuildInfo,
    *,
    store: VerifiedStore | None,
    rejected: Mapping[Path, str] | None = None,
    fresh: Mapping[Path, _Fresh] | None = None,
    notes: Mapping[str, Sequence[str]] | None = None,
    model_set: str | None = None,
) -> tuple[ModelReport, list[ExtraLink]]:
    set_name, problem, warnings = active_model_set(settings, build_info, lock, override=model_set)
    survey = _survey(settings, build_info)
    rejected = dict(rejected or {})
    fresh = fresh or {}
    notes = notes or {}
    trust_baked = (
        build_info.is_baked and build_info.models_verified and build_info.lock_digest in (None, lock.digest)
    )
    files: list[LocatedFile] = []
    missing: list[MissingFile] = []
    if set_name is not None:
        roles = _roles_by_entry(lock, set_name)
        for entry in lock.set_entries(set_name):
            candidates = candidates_for(entry, survey.roots, survey.cached_repo(entry))
            while True:
                hit, looked, skipped = choose_candidate(entry, candidates, os.stat, rejected)
                warnings.extend(w for w in skipped if w not in warnings)
                if hit is None:
                    break
                candidate, st = hit
                verified, reason = _verification(entry, candidate, st, store, trust_baked, fresh)
                if reason is None:
                    break
                rejected[candidate.path] = reason  # a remembered mismatch: try the next place
                warnings.append(f"skipping {candidate.path}: {reason}")
            if hit is None:
                missing.append(
                    MissingFile(
                        entry.id,
                        roles[entry.id],
                        entry.folder,
                        entry.filename,
                        tuple([*looked, *notes.get(entry.id, ())]),
                    )
                )
                continue
            candidate, st = hit
            source = fresh[candidate.path].source if candidate.path in fresh else candidate.source
            files.append(
                LocatedFile(
                    entry.id,
                    roles[entry.id],
                    entry.folder,
                    entry.filename,
                    source,
                    candidate.path,
                    st.st_size,
                    verified,
                )
            )
    located_names = {(f.folder, f.filename) for f in files}
    lock_names = {(e.folder, e.filename) for e in lock}
    extras, links = _scan_extras(survey, located_names | lock_names)
    all_hints = []
    if missing and not settings.allow_downloads:
        all_hints.append(
            "Downloads are off: set ALLOW_DOWNLOADS=true (and HF_TOKEN for gated repos) to fetch missing "
            f"files at startup, or put them on the network volume as {settings.runpod_volume / VOLUME_MODELS}"
            "/<folder>/<file>."
        )
    report = ModelReport(
        model_set=set_name,
        files=tuple(files),
        missing=tuple(missing),
        extras=tuple(extras),
        problem=problem,
        hints=tuple(all_hints),
        warnings=tuple(warnings),
    )
    return report, links


def _verification(
    entry: LockEntry,
    candidate: Candidate,
    st: os.stat_result,
    store: VerifiedStore | None,
    trust_baked: bool,
    fresh: Mapping[Path, _Fresh],
) -> tuple[bool | None, str | None]:
    """(verified, rejection reason): what is known about the file's hash without reading it."""
    if candidate.path in fresh:
        return fresh[candidate.path].verified, None
    if candidate.source == SOURCE_BAKED and trust_baked:
        return (True if entry.sha256 else None), None
    if store is None:
        return None, None
    digest = store.lookup(candidate.path, st)
    if digest is None or entry.sha256 is None:
        return None, None
    if digest == entry.sha256:
        return True, None
    return None, f"sha256 {digest} (remembered) does not match the lock's {entry.sha256}"


def _is_model_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS


def _skip_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES)


def _scan_extras(survey: _Survey, taken: set[tuple[str, str]]) -> tuple[list[ExtraFile], list[ExtraLink]]:
    """The user's own files in the volume's (and MODELS_DIR's) model folders.

    Every top-level entry of each folder becomes one link (a file, or a sub-folder ComfyUI will
    walk); lock file names never do, so ComfyUI sees the lock's names only where they were
    located. The first place wins when two hold the same name.
    """
    extras: list[ExtraFile] = []
    links: list[ExtraLink] = []
    claimed = set(taken)
    budget = [MAX_EXTRA_FILES]
    for root in survey.roots:
        if not root.present or root.source not in (SOURCE_MODELS_DIR, SOURCE_VOLUME, SOURCE_VOLUME_COMFYUI):
            continue
        try:
            folders = sorted(e.name for e in os.scandir(root.path) if e.is_dir() and not _skip_name(e.name))
        except OSError as exc:
            log.warning("cannot list %s for extra models: %s", root.path, exc)
            continue
        for folder_name in folders:
            if folder_name in _NOT_MODEL_FOLDERS:
                continue
            folder = CANONICAL_FOLDER.get(folder_name, folder_name)
            try:
                entries = sorted(os.scandir(root.path / folder_name), key=lambda e: e.name)
            except OSError as exc:
                log.warning("cannot list %s for extra models: %s", root.path / folder_name, exc)
                continue
            for item in entries:
                if _skip_name(item.name) or (folder, item.name) in claimed:
                    continue
                try:
                    is_dir = item.is_dir()
                    size = 0 if is_dir else item.stat().st_size
                except OSError:
                    continue  # a dangling link: ComfyUI could not load it either
                claimed.add((folder, item.name))
                path = Path(item.path)
                links.append(ExtraLink(folder, item.name, path))
                if is_dir:
                    extras.extend(_walk_extras(folder, item.name, path, budget))
                elif _is_model_file(item.name):
                    extras.append(ExtraFile(folder, item.name, path, size))
    return extras, links


def _walk_extras(folder: str, top: str, directory: Path, budget: list[int]) -> list[ExtraFile]:
    """Model files under a user's sub-folder, named as ComfyUI lists them (``top/sub/file``).

    Follows folder symlinks like ComfyUI does, but visits each real folder once (a link cycle
    on a volume must not hang startup), and stops at the ``budget`` of files.
    """
    found: list[ExtraFile] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not _skip_name(d))
        for name in sorted(filenames):
            if budget[0] <= 0:
                return found
            if _skip_name(name) or not _is_model_file(name):
                continue
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                relative = path.relative_to(directory).as_posix()
                found.append(ExtraFile(folder, f"{top}/{relative}", path, path.stat().st_size))
                budget[0] -= 1
    return found


def locate_models(
    settings: Settings,
    lock: ModelLock,
    build_info: BuildInfo,
    *,
    store: VerifiedStore | None = None,
) -> ModelReport:
    """Find every file of the active set (stat only: no hashing, no download) and the extras.

    Args:
        settings: worker settings (MODELS_DIR, RUNPOD_VOLUME_PATH, MODEL_SET, ...).
        lock: the model lock.
        build_info: the image's build info (decides the set for baked images).
        store: verification records to consult (default: the volume's and the container's);
            a file counts as verified when a record matches its path, size and mtime.

    Returns:
        The report; wrong-size candidates that were skipped are in ``report.warnings``.
    """
    if store is None:
        store = VerifiedStore.for_settings(settings)
    report, _ = _locate(settings, lock, build_info, store=store)
    return report


# --------------------------------------------------------------------------------------------
# Verification on request and downloads
# --------------------------------------------------------------------------------------------


def _verify_located(
    report: ModelReport,
    lock: ModelLock,
    store: VerifiedStore,
    *,
    include_trusted: bool,
    max_workers: int = 2,
) -> tuple[dict[Path, str], int]:
    """Hash every located file not already known good: ({path: reason} for mismatches, files hashed)."""
    todo = [
        f
        for f in report.files
        if lock.entries[f.id].sha256
        and (f.verified is None or (include_trusted and f.source == SOURCE_BAKED))
    ]
    if not todo:
        return {}, 0
    log.info("verifying %d model file(s) by sha256 (%s)", len(todo), human_size(sum(f.size for f in todo)))

    def check(f: LocatedFile) -> tuple[LocatedFile, str | None]:
        return f, measure(f.path, store)

    bad: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        for f, digest in pool.map(check, todo):
            expected = lock.entries[f.id].sha256
            if digest is None:
                bad[f.path] = "changed while it was being hashed"
            elif digest != expected:
                bad[f.path] = f"sha256 {digest} does not match the lock's {expected}"
                log.error("%s (%s, %s): %s", f.relpath, f.source, f.path, bad[f.path])
            else:
                log.info("verified %s (%s)", f.relpath, f.path)
    return bad, len(todo)


def _verify_until_stable(
    settings: Settings,
    lock: ModelLock,
    build_info: BuildInfo,
    store: VerifiedStore,
    report: ModelReport,
    links: list[ExtraLink],
    rejected: dict[Path, str],
    *,
    include_trusted: bool,
    model_set: str | None = None,
) -> tuple[ModelReport, list[ExtraLink]]:
    """Hash the located files; a mismatch rejects that copy and the next place is located and hashed.

    Ends because every pass either rejects a new path (finitely many) or finds nothing to do.
    """
    for f in report.files:
        if lock.entries[f.id].sha256 is None:
            log.warning("cannot verify %s (entry %s): the lock has no sha256 for it yet", f.relpath, f.id)
    while True:
        bad, hashed = _verify_located(report, lock, store, include_trusted=include_trusted)
        include_trusted = False  # baked files are hashed at most once per call
        rejected.update(bad)
        if hashed:
            report, links = _locate(
                settings, lock, build_info, store=store, rejected=rejected, model_set=model_set
            )
        if not bad:
            return report, links


def _writable_dir(path: Path) -> str | None:
    """None when files can be created in ``path`` (made if needed), else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def choose_download_dir(settings: Settings) -> tuple[Path | None, list[str]]:
    """Where downloads go, and notes: the configured or default place, else container disk."""
    volume_present = settings.runpod_volume.is_dir()
    preferred = default_download_dir(settings, volume_present)
    problem = _writable_dir(preferred)
    if problem is None:
        return preferred, []
    note = f"download directory {preferred} is not writable ({problem})"
    if settings.download_dir is not None:
        return None, [note]
    fallback = container_download_dir(settings)
    if fallback != preferred and _writable_dir(fallback) is None:
        log.warning(
            "%s; downloading to container disk at %s instead (lost when the worker stops)", note, fallback
        )
        return fallback, [note]
    return None, [note]


def _download_missing(
    settings: Settings, lock: ModelLock, report: ModelReport, store: VerifiedStore
) -> tuple[dict[Path, _Fresh], dict[str, list[str]]]:
    """Fetch the missing files that can be fetched: (fresh files by path, notes per entry id).

    One ``fetch_entries`` call for all of them: it transfers files in parallel, books disk
    space across them, and holds a per-file lease on the destination so workers sharing the
    volume download each file once and wait for each other's. Every file is attempted; the
    ones that fail are named in their entry's notes.
    """
    from handler.models.fetch import FetchError, fetch_entries

    notes: dict[str, list[str]] = {}
    downloadable = []
    for missing in report.missing:
        entry = lock.entries[missing.id]
        if entry.sha256 is None:
            notes[entry.id] = [
                f"download: not attempted, the lock has no sha256 for {entry.repo}/{entry.path} "
                "(run `python -m handler lock`, or `python -m handler fetch --trust-on-first-use`)"
            ]
        else:
            downloadable.append(entry)
    if not downloadable:
        return {}, notes
    dest, dest_notes = choose_download_dir(settings)
    if dest is None:
        for entry in downloadable:
            notes[entry.id] = [f"download: not attempted, {'; '.join(dest_notes)}"]
        return {}, notes
    log.info(
        "downloading %d missing model file(s) into %s: %s",
        len(downloadable),
        dest,
        ", ".join(e.relpath for e in downloadable),
    )
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    # A file already at its destination yet missing from the report was rejected by hash (now
    # or remembered): fetch must hash it, not keep it for its size, so a bad copy is replaced.
    suspect = [e.id for e in downloadable if (dest / e.relpath).exists()]
    failures: dict[str, str] = {}
    try:
        outcomes = fetch_entries(
            downloadable,
            dest,
            endpoint=settings.hf_endpoint,
            token=token,
            max_workers=4,
            show_progress=False,
            verify_present=suspect,
        )
    except FetchError as exc:
        outcomes = exc.outcomes
        failures = dict(exc.failures) or {e.id: str(exc) for e in downloadable}
    except OSError as exc:  # the destination itself failed (e.g. vanished mount)
        outcomes = []
        failures = {e.id: f"{exc.strerror or exc}" for e in downloadable}
    for entry in downloadable:
        if entry.id in failures:
            where = f"{entry.repo}/{entry.path}@{entry.revision_or_main}"
            log.error("download of %s (%s) failed: %s", entry.relpath, where, failures[entry.id])
            notes[entry.id] = [f"download from {where} into {dest}: failed: {failures[entry.id]}"]
    fresh: dict[Path, _Fresh] = {}
    for outcome in outcomes:
        entry = lock.entries[outcome.id]
        path = Path(outcome.path)
        # Every fetch process verifies before its atomic rename; "present" only when fetch saw
        # a file of the right size it did not hash itself (someone else's copy).
        verified = outcome.action != "present" or outcome.sha256 == entry.sha256
        fresh[path] = _Fresh(SOURCE_DOWNLOADED, True if verified else None)
        log.info("%s: %s %s (%s)", entry.relpath, outcome.action, path, human_size(outcome.size))
        if verified and outcome.sha256 == entry.sha256:
            with contextlib.suppress(OSError):
                store.remember(path, entry.sha256, path.stat())
    return fresh, notes


# --------------------------------------------------------------------------------------------
# Startup: locate, verify, download, wire
# --------------------------------------------------------------------------------------------


def state_dir(settings: Settings) -> Path:
    """Where the worker keeps generated state (symlink farm, extra_model_paths.yaml)."""
    return settings.worker_home / "state"


def prepare_models(
    settings: Settings, *, lock: ModelLock | None = None, build_info: BuildInfo | None = None
) -> PreparedModels:
    """Startup: locate the active set, verify/download as configured, wire ComfyUI, log the report.

    Never raises for missing files: they are in ``report.missing`` and ``report.missing_error()``
    says what to do (the first job returns that). Raises ``LockError`` for an unreadable lock.
    """
    lock = lock or load_lock(settings.models_lock)
    build_info = build_info or read_build_info(settings.build_info_path)
    store = VerifiedStore.for_settings(settings)
    report, links = _locate(settings, lock, build_info, store=store)
    rejected: dict[Path, str] = {}
    if settings.verify_models == "full" and report.files:
        report, links = _verify_until_stable(
            settings, lock, build_info, store, report, links, rejected, include_trusted=False
        )
    if report.missing and settings.allow_downloads:
        fresh, notes = _download_missing(settings, lock, report, store)
        for path, got in fresh.items():
            if got.verified:  # a verified new copy replaced a rejected one
                rejected.pop(path, None)
        report, links = _locate(
            settings, lock, build_info, store=store, rejected=rejected, fresh=fresh, notes=notes
        )
    for warning in report.warnings:
        log.warning("%s", warning)

    from handler.models.wiring import wire_models

    yaml_path = wire_models(report, links, state_dir(settings), settings.model_paths_yaml)
    if report.missing or report.problem:
        log.warning("%s", report.log_block())
        log.warning("%s", report.missing_error())
    else:
        log.info("%s", report.log_block())
    return PreparedModels(report=report, comfyui_args=["--extra-model-paths-config", str(yaml_path)])


# --------------------------------------------------------------------------------------------
# Jobs: which models a prompt loads
# --------------------------------------------------------------------------------------------

# Core loader classes the LTX-2 workflows use: input name -> the models folder it lists.
LOADER_INPUTS: Mapping[str, Mapping[str, str]] = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "LTXAVTextEncoderLoader": {"text_encoder": "text_encoders", "ckpt_name": "checkpoints"},
    "LTXVAudioVAELoader": {"ckpt_name": "checkpoints"},
    "LatentUpscaleModelLoader": {"model_name": "latent_upscale_models"},
    "LoraLoaderModelOnly": {"lora_name": "loras"},
    "LoraLoader": {"lora_name": "loras"},
    "UNETLoader": {"unet_name": "diffusion_models"},
    "VAELoader": {"vae_name": "vae"},
    "CLIPLoader": {"clip_name": "text_encoders"},
}


def models_needed_by(prompt: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(node id, folder, file name) for each model file an API-format prompt's loaders name."""
    needed = []
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping):
            continue
        inputs = node.get("inputs")
        spec = LOADER_INPUTS.get(str(node.get("class_type")))
        if spec is None or not isinstance(inputs, Mapping):
            continue
        for input_name, folder in spec.items():
            value = inputs.get(input_name)
            if isinstance(value, str) and value:
                needed.append((str(node_id), folder, value))
    return needed


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument(
        "--set", dest="model_set", help="model set to locate (default: the image's, or MODEL_SET)"
    )
    parser.add_argument(
        "--lock", type=Path, help="models.lock.yaml to use (default: MODELS_LOCK or the shipped one)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="hash every located file against the lock (remembered, so each file is hashed once)",
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the set is complete (and verified, with --verify), 1 when not, 2 on bad config."""
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, as_json=False, secrets=settings.secret_values())
        lock = load_lock(args.lock or settings.models_lock)
        build_info = read_build_info(settings.build_info_path)
    except (SettingsError, LockError, ValueError) as exc:
        print(f"locate: {exc}", file=sys.stderr)
        return 2
    store = VerifiedStore.for_settings(settings)
    report, links = _locate(settings, lock, build_info, store=store, model_set=args.model_set or None)
    rejected: dict[Path, str] = {}
    if args.verify and report.files:
        report, _ = _verify_until_stable(
            settings,
            lock,
            build_info,
            store,
            report,
            links,
            rejected,
            include_trusted=True,
            model_set=args.model_set or None,
        )
    for warning in report.warnings:
        log.warning("%s", warning)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.headline())
        for line in format_table(report):
            print(line)
        for hint in report.hints:  # the table already names every missing file and place
            print(f"\n{hint}")
    return 0 if report.complete and not rejected else 1
