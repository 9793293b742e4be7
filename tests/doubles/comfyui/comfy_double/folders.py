"""Where the double's files live, with ComfyUI's ``folder_paths`` semantics.

- the base directory holds ``models/``, ``input/``, ``output/``, ``temp/``, ``user/``,
  ``custom_nodes/`` (``--base-directory``; ``--input/--output-directory`` move those two,
  ``--temp-directory X`` means ``X/temp``);
- model folders are the registered ones plus every path of the ``extra_model_paths.yaml`` files
  (sections with ``base_path``, ``is_default``, and folder keys holding one path or several on
  separate lines, relative to ``base_path`` or else to the YAML file);
- file lists are recursive, follow symlinks, filter by extension and are sorted;
- save paths follow ``get_save_image_path``: the prefix's directory part is the subfolder and the
  counter is one more than the highest ``<prefix>_<counter>_`` already in that folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .schema import LEGACY_FOLDER_NAMES, SUPPORTED_PT_EXTENSIONS
from .yamlish import parse_yaml_subset

# Folder name -> (paths relative to "models/" or, with an "@output/" prefix, to the output dir).
# The order and the output-dir entries are those recorded from ComfyUI 0.26.0's
# /internal/folder_paths.
_REGISTERED_FOLDERS: list[tuple[str, list[str]]] = [
    ("checkpoints", ["checkpoints", "@output/checkpoints"]),
    ("configs", ["configs"]),
    ("loras", ["loras", "@output/loras"]),
    ("vae", ["vae", "@output/vae"]),
    ("text_encoders", ["text_encoders", "clip", "@output/clip"]),
    ("diffusion_models", ["unet", "diffusion_models", "@output/diffusion_models"]),
    ("clip_vision", ["clip_vision"]),
    ("style_models", ["style_models"]),
    ("embeddings", ["embeddings"]),
    ("diffusers", ["diffusers"]),
    ("vae_approx", ["vae_approx"]),
    ("controlnet", ["controlnet", "t2i_adapter"]),
    ("gligen", ["gligen"]),
    ("upscale_models", ["upscale_models"]),
    ("latent_upscale_models", ["latent_upscale_models"]),
    ("custom_nodes", ["@base/custom_nodes"]),
    ("hypernetworks", ["hypernetworks"]),
    ("photomaker", ["photomaker"]),
    ("classifiers", ["classifiers"]),
    ("model_patches", ["model_patches"]),
    ("audio_encoders", ["audio_encoders"]),
    ("background_removal", ["background_removal"]),
    ("frame_interpolation", ["frame_interpolation"]),
    ("geometry_estimation", ["geometry_estimation"]),
    ("optical_flow", ["optical_flow"]),
    ("detection", ["detection"]),
]

# Folders 0.26.0 registers that 0.3.64 did not (its /models list lacks them).
FOLDERS_NEW_IN_0_26 = frozenset(
    {
        "latent_upscale_models",
        "background_removal",
        "frame_interpolation",
        "geometry_estimation",
        "optical_flow",
        "detection",
    }
)

_ALL_FILES: frozenset[str] = frozenset()
_FOLDER_EXTENSIONS: dict[str, frozenset[str]] = {
    "configs": frozenset({".yaml"}),
    "custom_nodes": _ALL_FILES,
    "diffusers": _ALL_FILES,
}


class ExtraModelPathsError(ValueError):
    """An extra model paths file could not be read or has the wrong shape."""


@dataclass
class FolderPaths:
    """The double's directories and registered model folders."""

    base_dir: Path
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    folders: dict[str, list[Path]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    @classmethod
    def create(
        cls,
        base_dir: str | os.PathLike[str],
        *,
        input_dir: str | os.PathLike[str] | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        temp_parent: str | os.PathLike[str] | None = None,
    ) -> FolderPaths:
        """Directories as ComfyUI derives them from its flags (all made absolute)."""
        base = Path(os.path.abspath(base_dir))
        paths = cls(
            base_dir=base,
            input_dir=Path(os.path.abspath(input_dir)) if input_dir else base / "input",
            output_dir=Path(os.path.abspath(output_dir)) if output_dir else base / "output",
            temp_dir=Path(os.path.abspath(temp_parent)) / "temp" if temp_parent else base / "temp",
        )
        for name, relatives in _REGISTERED_FOLDERS:
            resolved = []
            for relative in relatives:
                if relative.startswith("@output/"):
                    resolved.append(paths.output_dir / relative[len("@output/") :])
                elif relative.startswith("@base/"):
                    resolved.append(base / relative[len("@base/") :])
                else:
                    resolved.append(paths.models_dir / relative)
            paths.folders[name] = resolved
        return paths

    def add_model_folder_path(self, folder_name: str, path: str | os.PathLike[str], is_default: bool) -> None:
        """Register one more path for a folder (first when ``is_default``), as ComfyUI does."""
        folder_name = LEGACY_FOLDER_NAMES.get(folder_name, folder_name)
        entries = self.folders.setdefault(folder_name, [])
        path = Path(path)
        if path in entries:
            entries.remove(path)
        if is_default:
            entries.insert(0, path)
        else:
            entries.append(path)

    def load_extra_path_config(self, yaml_path: str | os.PathLike[str]) -> None:
        """Apply one ``extra_model_paths.yaml``.

        Raises:
            ExtraModelPathsError: the file is missing, unreadable, or not sections of folder keys.
        """
        yaml_path = os.path.abspath(yaml_path)
        try:
            with open(yaml_path, encoding="utf-8") as handle:
                config = parse_yaml_subset(handle.read())
        except OSError as exc:
            raise ExtraModelPathsError(f"cannot read extra model paths config {yaml_path}: {exc}") from exc
        except ValueError as exc:
            raise ExtraModelPathsError(f"{yaml_path}: {exc}") from exc
        if config is None:
            return
        if not isinstance(config, dict):
            raise ExtraModelPathsError(f"{yaml_path}: expected sections of folder paths")
        yaml_dir = os.path.dirname(yaml_path)
        for section_name, section in config.items():
            if section is None:
                continue
            if not isinstance(section, dict):
                raise ExtraModelPathsError(
                    f"{yaml_path}: section {section_name!r} must map folder names to paths, got {section!r}"
                )
            section = dict(section)
            base_path = section.pop("base_path", None)
            if base_path is not None:
                base_path = os.path.expandvars(os.path.expanduser(str(base_path)))
                if not os.path.isabs(base_path):
                    base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
            is_default = bool(section.pop("is_default", False))
            for folder_name, value in section.items():
                if not isinstance(value, str):
                    raise ExtraModelPathsError(
                        f"{yaml_path}: {section_name}.{folder_name} must be a path or paths on separate "
                        f"lines, got {value!r}"
                    )
                for line in value.split("\n"):
                    if not line:
                        continue
                    if base_path:
                        full_path = os.path.join(base_path, line)
                    elif not os.path.isabs(line):
                        full_path = os.path.abspath(os.path.join(yaml_dir, line))
                    else:
                        full_path = line
                    normalized = os.path.normpath(full_path)
                    self.log.append(f"Adding extra search path {folder_name} {normalized}")
                    self.add_model_folder_path(folder_name, normalized, is_default)

    def folder_names(self) -> list[str]:
        return list(self.folders)

    def extensions(self, folder_name: str) -> frozenset[str]:
        return _FOLDER_EXTENSIONS.get(folder_name, SUPPORTED_PT_EXTENSIONS)

    def get_filename_list(self, folder_name: str) -> list[str]:
        """Files ComfyUI lists for a model folder: recursive, symlinks followed, sorted."""
        folder_name = LEGACY_FOLDER_NAMES.get(folder_name, folder_name)
        extensions = self.extensions(folder_name)
        found: set[str] = set()
        for root in self.folders.get(folder_name, []):
            found.update(list_files(root, extensions))
        return sorted(found)

    def get_full_path(self, folder_name: str, filename: str) -> Path | None:
        """The first existing file named ``filename`` in the folder's paths."""
        folder_name = LEGACY_FOLDER_NAMES.get(folder_name, folder_name)
        relative = os.path.relpath(os.path.join("/", filename), "/")
        for root in self.folders.get(folder_name, []):
            candidate = root / relative
            if candidate.is_file():
                return candidate
        return None

    def folder_listing(self) -> dict[str, list[str]]:
        """Every folder's file list (what the loaders' combos show)."""
        return {name: self.get_filename_list(name) for name in self.folders}

    def input_files(self) -> list[str]:
        """Top-level files of the input folder (what LoadImage and friends list)."""
        try:
            return sorted(entry.name for entry in os.scandir(self.input_dir) if entry.is_file())
        except FileNotFoundError:
            return []

    def directory_by_type(self, type_name: str) -> Path | None:
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(type_name)

    def annotated_filepath(self, name: str) -> tuple[str, Path | None]:
        """Split ``"name [input]"``-style annotations: (name, directory or None)."""
        for tag in ("output", "input", "temp"):
            suffix = f"[{tag}]"
            if name.endswith(suffix):
                return name[: -len(suffix) - 1] if name.endswith(f" {suffix}") else name[: -len(suffix)], (
                    self.directory_by_type(tag)
                )
        return name, None

    def get_annotated_filepath(self, name: str, default_dir: Path | None = None) -> Path:
        name, directory = self.annotated_filepath(name)
        if directory is None:
            directory = default_dir or self.input_dir
        return directory / name

    def exists_annotated_filepath(self, name: str) -> bool:
        return os.path.exists(self.get_annotated_filepath(name))

    def registered_paths(self) -> dict[str, list[str]]:
        """``/internal/folder_paths``: folder name to its search paths."""
        return {name: [str(path) for path in paths] for name, paths in self.folders.items()}


def list_files(root: Path, extensions: frozenset[str]) -> list[str]:
    """Files under ``root`` (relative, ``/``-separated), following directory symlinks."""
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [name for name in dirnames if name != ".git"]
        relative_dir = os.path.relpath(dirpath, root)
        for filename in filenames:
            if extensions and os.path.splitext(filename)[1].lower() not in extensions:
                continue
            relative = filename if relative_dir == "." else os.path.join(relative_dir, filename)
            found.append(relative.replace(os.sep, "/"))
    return found


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    replacements = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": str(now.tm_mon).zfill(2),
        "%day%": str(now.tm_mday).zfill(2),
        "%hour%": str(now.tm_hour).zfill(2),
        "%minute%": str(now.tm_min).zfill(2),
        "%second%": str(now.tm_sec).zfill(2),
    }
    for key, value in replacements.items():
        prefix = prefix.replace(key, value)
    return prefix


class SavePathError(Exception):
    """A filename prefix points outside the output folder (ComfyUI raises a plain Exception)."""


def next_counter(existing: Iterable[str], filename: str) -> int:
    """1 + the highest counter of ``<filename>_<counter>_...`` among ``existing`` names."""
    prefix_len = len(filename)
    best = 0
    for name in existing:
        head = name[: prefix_len + 1]
        if os.path.normcase(head[:-1]) != os.path.normcase(filename) or head[-1:] != "_":
            continue
        try:
            digits = int(name[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        best = max(best, digits)
    return best + 1


def get_save_image_path(
    filename_prefix: str, output_dir: Path, width: int = 0, height: int = 0
) -> tuple[Path, str, int, str, str]:
    """ComfyUI's ``get_save_image_path``: (folder, filename, counter, subfolder, prefix).

    Raises:
        SavePathError: the prefix leads outside ``output_dir``.
    """
    if "%" in filename_prefix:
        filename_prefix = _compute_vars(filename_prefix, width, height)
    normalized = os.path.normpath(filename_prefix)
    subfolder = os.path.dirname(normalized)
    filename = os.path.basename(normalized)
    full_output_folder = os.path.join(str(output_dir), subfolder)
    common = os.path.commonpath((str(output_dir), os.path.abspath(full_output_folder)))
    if common != str(output_dir):
        raise SavePathError(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(full_output_folder)}"
            f"\n         output_dir: {output_dir}"
            f"\n         commonpath: {common}"
        )
    try:
        counter = next_counter(os.listdir(full_output_folder), filename)
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return Path(full_output_folder), filename, counter, subfolder, filename_prefix
