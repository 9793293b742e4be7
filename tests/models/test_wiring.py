"""Wiring: ComfyUI sees exactly the located files (and the volume's extras) under workflow names.

Two checks of the generated extra_model_paths.yaml: a faithful re-statement of how ComfyUI
reads it (utils/extra_config.py + folder_paths.py: sections, optional base_path, newline-
separated values, is_default first, legacy folder names, recursive listing through symlinks),
and the ComfyUI double started with --extra-model-paths-config, whose loader options must list
exactly the wired names.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import yaml

from handler.models import locate as loc
from handler.models import wiring
from tests.doubles.comfyui.launcher import start_double
from tests.models import conftest_locate as _fixtures
from tests.models.conftest_locate import SLIM, SPEC_BY_ID, baked_info, content_for, put, put_hf_cache, put_set

places = _fixtures.places
small_lock = _fixtures.small_lock

PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
LEGACY = {"unet": "diffusion_models", "clip": "text_encoders"}


# ---- ComfyUI's reading of model paths, restated for the test -----------------------------------


def comfyui_default_paths(comfy: Path) -> dict[str, list[str]]:
    models = comfy / "models"
    paths = {
        name: [str(models / name)]
        for name in ("checkpoints", "loras", "vae", "latent_upscale_models", "upscale_models", "clip_vision")
    }
    paths["text_encoders"] = [str(models / "text_encoders"), str(models / "clip")]
    paths["diffusion_models"] = [str(models / "unet"), str(models / "diffusion_models")]
    return paths


def comfyui_apply_config(paths: dict[str, list[str]], yaml_path: Path) -> None:
    config = yaml.safe_load(yaml_path.read_text())
    for conf in config.values():
        if conf is None:
            continue
        conf = dict(conf)
        base = conf.pop("base_path", None)
        if base is not None:
            base = os.path.expandvars(os.path.expanduser(base))
        is_default = conf.pop("is_default", False)
        for folder, value in conf.items():
            for line in value.split("\n"):
                if not line:
                    continue
                if base is not None:
                    full = os.path.join(base, line)
                elif os.path.isabs(line):
                    full = line
                else:
                    full = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(yaml_path)), line))
                folder_paths = paths.setdefault(LEGACY.get(folder, folder), [])
                if is_default:
                    folder_paths.insert(0, full)
                else:
                    folder_paths.append(full)


def comfyui_filenames(paths: dict[str, list[str]], folder: str) -> list[str]:
    names: set[str] = set()
    for directory in paths.get(folder, []):
        if not os.path.isdir(directory):
            continue
        for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), directory)
                if os.path.splitext(rel)[1].lower() in PT_EXTENSIONS:
                    names.add(rel)
    return sorted(names)


def comfyui_full_path(paths: dict[str, list[str]], folder: str, name: str) -> str | None:
    for directory in paths.get(folder, []):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


# ---- pure parts ------------------------------------------------------------------------------


def test_yaml_text_is_read_by_comfyui_as_absolute_default_paths(tmp_path):
    farm = tmp_path / "odd $HOME ~ path" / "models"
    text = wiring.extra_model_paths_text(farm, ["loras", "checkpoints", "loras", "my: odd folder"])
    config = yaml.safe_load(text)
    assert config == {
        "ltx_worker": {
            "is_default": True,
            "checkpoints": str(farm / "checkpoints"),
            "loras": str(farm / "loras"),
            "my: odd folder": str(farm / "my: odd folder"),
        }
    }
    target = tmp_path / "extra_model_paths.yaml"
    target.write_text(text)
    paths = comfyui_default_paths(tmp_path / "ComfyUI")
    comfyui_apply_config(paths, target)
    # no base_path: nothing is expanded or re-based, and the farm comes first
    assert paths["loras"][0] == str(farm / "loras")


def test_farm_layout_puts_located_files_before_extras(small_lock, tmp_path):
    located = loc.LocatedFile("x", ("lora",), "loras", "a.safetensors", "volume", tmp_path / "a", 1, None)
    report = loc.ModelReport("fp8", (located,), (), ())
    extras = [
        loc.ExtraLink("loras", "a.safetensors", tmp_path / "other-a"),
        loc.ExtraLink("loras", "mine.safetensors", tmp_path / "mine"),
        loc.ExtraLink("controlnet", "cn", tmp_path / "cn"),
    ]
    assert wiring.farm_layout(report, extras) == {
        "loras": {"a.safetensors": tmp_path / "a", "mine.safetensors": tmp_path / "mine"},
        "controlnet": {"cn": tmp_path / "cn"},
    }


# ---- the farm on disk ------------------------------------------------------------------------------


def test_sync_farm_creates_replaces_and_removes_links(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for p in (a, b, c):
        p.write_bytes(p.name.encode())
    farm = tmp_path / "farm"
    wiring.sync_farm(
        farm, {"loras": {"one.safetensors": a, "two.safetensors": b}, "vae": {"v.safetensors": c}}
    )
    assert os.readlink(farm / "loras" / "one.safetensors") == str(a)
    # second run: one re-pointed, one gone, a folder gone, an empty wanted folder kept
    wiring.sync_farm(farm, {"loras": {"one.safetensors": c}}, folders=["checkpoints"])
    assert sorted(os.listdir(farm)) == ["checkpoints", "loras"]
    assert os.listdir(farm / "loras") == ["one.safetensors"]
    assert (farm / "loras" / "one.safetensors").read_bytes() == b"c"
    assert os.listdir(farm / "checkpoints") == []


def test_sync_farm_never_deletes_real_files(tmp_path):
    farm = tmp_path / "farm"
    (farm / "loras").mkdir(parents=True)
    real = farm / "loras" / "real.safetensors"
    real.write_bytes(b"keep me")
    wiring.sync_farm(farm, {"loras": {}})
    assert real.read_bytes() == b"keep me"


def test_wire_falls_back_when_the_state_dir_is_not_writable(small_lock, places, tmp_path, monkeypatch):
    put_set(places.baked, small_lock, "fp8")
    report = loc.locate_models(places.settings(), small_lock, baked_info(places, lock=small_lock))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    monkeypatch.setattr(wiring, "_fallback_state_dir", lambda: tmp_path / "fallback")
    yaml_path = wiring.wire_models(report, [], blocked / "state")
    assert yaml_path == tmp_path / "fallback" / "extra_model_paths.yaml"
    assert (tmp_path / "fallback" / "models" / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors").is_file()


# ---- prepare_models: what ComfyUI ends up seeing ---------------------------------------------------


def test_comfyui_sees_exactly_the_located_files_and_the_extras(small_lock, places, tmp_path):
    # Baked image (fp8) + the user's volume: their own LoRAs (one in a sub-folder), a wrong-size
    # copy of a lock file, the other set's checkpoint. Plus ComfyUI's own models folder holding a
    # stale file under a lock name: the farm must win.
    put_set(places.baked, small_lock, "fp8", skip=("gemma",))
    put_hf_cache(
        places.hub,
        "Comfy-Org/ltx-2",
        {"split_files/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors": content_for("gemma")},
    )
    mine = places.volume_models / "loras" / "my-style.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    sub = places.pod_models / "loras" / "people" / "alice.safetensors"
    sub.parent.mkdir(parents=True)
    sub.write_bytes(b"alice")
    put(places.volume_models, "ckpt-bf16")
    put(places.volume_models, "upscaler", data=b"wrong size")
    comfy = tmp_path / "ComfyUI"
    stale = comfy / "models" / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")

    settings = places.settings()
    prepared = loc.prepare_models(settings, lock=small_lock, build_info=baked_info(places, lock=small_lock))
    assert prepared.report.complete
    assert prepared.comfyui_args[0] == "--extra-model-paths-config"
    yaml_path = Path(prepared.comfyui_args[1])
    assert yaml_path == places.worker_home / "state" / "extra_model_paths.yaml"

    paths = comfyui_default_paths(comfy)
    comfyui_apply_config(paths, yaml_path)
    assert comfyui_filenames(paths, "checkpoints") == ["ltx-2-19b-dev-fp8.safetensors"]
    assert comfyui_filenames(paths, "text_encoders") == ["gemma_3_12B_it_fp4_mixed.safetensors"]
    assert comfyui_filenames(paths, "loras") == [
        "ltx-2-19b-distilled-lora-384.safetensors",
        "ltx-2-19b-ic-lora-canny-control.safetensors",
        "my-style.safetensors",
        "people/alice.safetensors",
    ]
    assert comfyui_filenames(paths, "latent_upscale_models") == ["ltx-2-spatial-upscaler-x2-1.0.safetensors"]
    assert comfyui_filenames(paths, "diffusion_models") == ["lotus-depth-d-v1-1.safetensors"]
    assert comfyui_filenames(paths, "vae") == ["vae-ft-mse-840000-ema-pruned.safetensors"]
    # each name opens the located file, not the stale or wrong-size copies
    for f in prepared.report.files:
        full = comfyui_full_path(paths, f.folder, f.filename)
        assert os.path.realpath(full) == os.path.realpath(f.path), f.relpath
        assert Path(full).stat().st_size == f.size
    gemma = comfyui_full_path(paths, "text_encoders", "gemma_3_12B_it_fp4_mixed.safetensors")
    assert "/blobs/" in os.path.realpath(gemma)  # through the cache's snapshot link into blobs/
    assert Path(comfyui_full_path(paths, "loras", "people/alice.safetensors")).read_bytes() == b"alice"


def test_rewiring_drops_what_is_gone(small_lock, places):
    put_set(places.baked, small_lock, "fp8")
    mine = places.volume_models / "loras" / "my-style.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    info = baked_info(places, lock=small_lock)
    loc.prepare_models(places.settings(), lock=small_lock, build_info=info)
    farm = places.worker_home / "state" / "models"
    assert (farm / "loras" / "my-style.safetensors").exists()
    mine.unlink()
    loc.prepare_models(places.settings(), lock=small_lock, build_info=info)
    assert not os.path.lexists(farm / "loras" / "my-style.safetensors")
    assert (farm / "loras" / "ltx-2-19b-distilled-lora-384.safetensors").exists()


def test_missing_files_are_not_wired_and_model_paths_yaml_is_honoured(small_lock, places, tmp_path):
    put_set(places.volume_models, small_lock, "fp8", skip=("lotus",))
    put(places.pod_models, "lotus", data=b"too short")
    target = tmp_path / "conf" / "paths.yaml"
    settings = places.settings(MODEL_SET="fp8", MODEL_PATHS_YAML=str(target))
    prepared = loc.prepare_models(settings, lock=small_lock, build_info=SLIM)
    assert prepared.comfyui_args == ["--extra-model-paths-config", str(target)]
    assert [m.id for m in prepared.report.missing] == ["lotus"]
    paths: dict[str, list[str]] = {}
    comfyui_apply_config(paths, target)
    assert comfyui_filenames(paths, "diffusion_models") == []  # the wrong-size copy stays invisible


def test_verify_full_rejects_a_corrupt_copy_and_takes_the_next_source(small_lock, places):
    put_set(places.volume_models, small_lock, "fp8")
    corrupt = places.volume_models / "loras" / "ltx-2-19b-distilled-lora-384.safetensors"
    corrupt.write_bytes(b"\0" * SPEC_BY_ID["distilled-lora"].size)  # right size, wrong bytes
    put_hf_cache(
        places.hub,
        "Lightricks/LTX-2",
        {"ltx-2-19b-distilled-lora-384.safetensors": content_for("distilled-lora")},
    )
    settings = places.settings(MODEL_SET="fp8", VERIFY_MODELS="full")
    report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    lora = report.file_for("loras", "ltx-2-19b-distilled-lora-384.safetensors")
    assert lora.source == "runpod-cache" and lora.verified is True
    assert all(f.verified is True for f in report.files if small_lock.entries[f.id].sha256)
    # remembered on the volume: the next start knows without hashing, and still skips the bad copy
    records = places.volume / ".ltx-worker" / "verified"
    count = len(list(records.iterdir()))
    assert count == 7  # six good files + the corrupt copy's measured digest
    again = loc.locate_models(settings, small_lock, SLIM)
    assert again.file_for("loras", "ltx-2-19b-distilled-lora-384.safetensors").source == "runpod-cache"
    assert all(f.verified is True for f in again.files if small_lock.entries[f.id].sha256)


# ---- the ComfyUI double shows the wired names ------------------------------------------------------

LOADER_OPTIONS = {
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"),
    "LTXAVTextEncoderLoader": ("text_encoder", "text_encoders"),
    "LoraLoaderModelOnly": ("lora_name", "loras"),
    "LatentUpscaleModelLoader": ("model_name", "latent_upscale_models"),
    "UNETLoader": ("unet_name", "diffusion_models"),
    "VAELoader": ("vae_name", "vae"),
}


def _combo_options(spec) -> list[str]:
    # legacy [[options], {...}] or V3 ["COMBO", {"options": [...]}]
    if isinstance(spec[0], list):
        return list(spec[0])
    return list(spec[1]["options"])


def test_comfyui_double_lists_exactly_the_wired_names(small_lock, places, tmp_path):
    put_set(places.baked, small_lock, "fp8", skip=("lotus",))
    put(places.volume_models, "lotus", folder="unet")
    mine = places.volume_models / "loras" / "my-style.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    put(places.volume_models, "ckpt-bf16")  # the other set's checkpoint: not shown
    prepared = loc.prepare_models(
        places.settings(), lock=small_lock, build_info=baked_info(places, lock=small_lock)
    )
    expected = {folder: set() for _, folder in LOADER_OPTIONS.values()}
    for f in prepared.report.files:
        expected[f.folder].add(f.filename)
    for e in prepared.report.extras:
        expected.setdefault(e.folder, set()).add(e.filename)

    with start_double(tmp_path / "comfy", *prepared.comfyui_args) as double:
        for class_type, (input_name, folder) in LOADER_OPTIONS.items():
            with urllib.request.urlopen(f"{double.url}/object_info/{class_type}", timeout=10) as response:
                info = json.load(response)
            spec = info[class_type]["input"]["required"][input_name]
            # VAELoader also offers built-in choices that are no file ("pixel_space", taesd ...)
            files = {o for o in _combo_options(spec) if os.path.splitext(o)[1] in PT_EXTENSIONS}
            assert files == expected[folder], class_type


def test_default_startup_hashes_nothing(small_lock, places):
    # Right size, wrong bytes: only a hash could tell, and startup does not hash by default.
    put_set(places.volume_models, small_lock, "fp8")
    lora = places.volume_models / "loras" / "ltx-2-19b-distilled-lora-384.safetensors"
    lora.write_bytes(b"\0" * SPEC_BY_ID["distilled-lora"].size)
    report = loc.prepare_models(places.settings(MODEL_SET="fp8"), lock=small_lock, build_info=SLIM).report
    assert report.complete and all(f.verified is None for f in report.files)
    assert not (places.volume / ".ltx-worker").exists()


def test_verify_full_trusts_files_hashed_at_build_time(small_lock, places):
    put_set(places.baked, small_lock, "fp8")
    settings = places.settings(VERIFY_MODELS="full")
    report = loc.prepare_models(
        settings, lock=small_lock, build_info=baked_info(places, lock=small_lock)
    ).report
    assert report.complete and {f.source for f in report.files} == {"baked"}
    assert not (places.volume / ".ltx-worker").exists()  # nothing needed hashing
