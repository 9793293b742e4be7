"""Model location at startup: order of sources, sizes, extras, the report and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handler.models import locate as loc
from handler.models.lock import LockEntry
from handler.models.verified import VerifiedStore
from handler.settings import SettingsError
from tests.models import conftest_locate as _fixtures
from tests.models.conftest_locate import (
    REV_MAIN,
    REV_OLD,
    SLIM,
    SPEC_BY_ID,
    Places,
    baked_info,
    content_for,
    put,
    put_hf_cache,
    put_set,
)

# Fixtures shared by the model-location tests (tests/models/conftest.py belongs to fetch/verify).
places = _fixtures.places
small_lock = _fixtures.small_lock

REPO_ROOT = Path(__file__).resolve().parents[2]


def entry(lock, entry_id) -> LockEntry:
    return lock.entries[entry_id]


# ---- pure parts ------------------------------------------------------------------------------


def test_snapshot_order_refs_main_then_pinned_then_the_rest():
    assert loc.snapshot_order("b" * 40, "c" * 40, ["a" * 40, "b" * 40, "c" * 40, ".tmp"]) == [
        "b" * 40,
        "c" * 40,
        "a" * 40,
    ]
    assert loc.snapshot_order(None, None, []) == []


def test_hf_cache_repo_dir_follows_the_hub_naming():
    assert loc.hf_cache_repo_dir(Path("/v/hub"), "Lightricks/LTX-2") == Path(
        "/v/hub/models--Lightricks--LTX-2"
    )


def test_candidates_follow_the_documented_order(small_lock):
    e = entry(small_lock, "gemma")
    roots = [
        loc.SearchRoot(loc.SOURCE_MODELS_DIR, Path("/m"), True),
        loc.SearchRoot(loc.SOURCE_BAKED, Path("/b"), True),
        loc.SearchRoot(loc.SOURCE_VOLUME, Path("/v/models"), True),
        loc.SearchRoot(loc.SOURCE_VOLUME_COMFYUI, Path("/v/ComfyUI/models"), False),
        loc.SearchRoot(loc.SOURCE_DOWNLOADED, Path("/d"), True),
    ]
    cache = loc.CachedRepo(
        "Comfy-Org/ltx-2", Path("/v/hub/models--Comfy-Org--ltx-2"), True, REV_OLD, (REV_OLD,)
    )
    candidates = loc.candidates_for(e, roots, cache)
    name = "gemma_3_12B_it_fp4_mixed.safetensors"
    snapshots = "/v/hub/models--Comfy-Org--ltx-2/snapshots"
    assert [(c.source, str(c.path), c.gone) for c in candidates] == [
        ("models_dir", f"/m/text_encoders/{name}", None),
        ("models_dir", f"/m/clip/{name}", None),  # ComfyUI's legacy folder name
        ("baked", f"/b/text_encoders/{name}", None),
        ("baked", f"/b/clip/{name}", None),
        ("volume", f"/v/models/text_encoders/{name}", None),
        ("volume", f"/v/models/clip/{name}", None),
        ("volume-comfyui", f"/v/ComfyUI/models/text_encoders/{name}", "no folder /v/ComfyUI/models"),
        ("runpod-cache", f"{snapshots}/{REV_OLD}/split_files/text_encoders/{name}", None),
        ("runpod-cache", f"{snapshots}/{REV_MAIN}/split_files/text_encoders/{name}", None),
        ("downloaded", f"/d/text_encoders/{name}", None),
        ("downloaded", f"/d/clip/{name}", None),
    ]
    uncached = loc.CachedRepo("Comfy-Org/ltx-2", Path("/v/hub/models--Comfy-Org--ltx-2"), False)
    assert loc.candidates_for(e, [], uncached) == [
        loc.Candidate("runpod-cache", Path("/v/hub/models--Comfy-Org--ltx-2"), "not cached")
    ]


def test_choose_candidate_skips_wrong_size_and_reports_each_place(small_lock, tmp_path):
    e = entry(small_lock, "distilled-lora")
    wrong = tmp_path / "a" / "lora.safetensors"
    right = tmp_path / "b" / "lora.safetensors"
    wrong.parent.mkdir()
    right.parent.mkdir()
    wrong.write_bytes(b"x" * 10)
    right.write_bytes(content_for("distilled-lora"))
    candidates = [
        loc.Candidate("baked", tmp_path / "nowhere" / "lora.safetensors"),
        loc.Candidate("volume", wrong),
        loc.Candidate("runpod-cache", right),
    ]
    hit, looked, warnings = loc.choose_candidate(e, candidates, os.stat)
    assert hit is not None and hit[0].path == right
    assert looked[0].endswith("(absent)")
    assert f"(wrong size: 10 bytes, the lock says {e.size})" in looked[1]
    assert len(warnings) == 1 and str(wrong) in warnings[0]


def test_choose_candidate_with_unknown_size_takes_any_non_empty_file(small_lock, tmp_path):
    e = entry(small_lock, "canny-lora")
    assert e.size is None
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    good = tmp_path / "good.safetensors"
    good.write_bytes(b"abc")
    hit, looked, _ = loc.choose_candidate(
        e,
        [loc.Candidate("volume", empty), loc.Candidate("volume", folder), loc.Candidate("volume", good)],
        os.stat,
    )
    assert hit[0].path == good
    assert looked == [
        f"network volume: {empty} (empty file)",
        f"network volume: {folder} (not a regular file)",
    ]


def test_active_set_comes_from_the_image_when_baked(small_lock, places):
    settings = places.settings(MODEL_SET="bf16")
    name, problem, warnings = loc.active_model_set(settings, baked_info(places, "fp8"), small_lock)
    assert (name, problem) == ("fp8", None)
    assert warnings == ["MODEL_SET=bf16 is ignored: this fp8 image bakes set fp8"]


def test_active_set_from_configuration_when_slim(small_lock, places):
    assert loc.active_model_set(places.settings(MODEL_SET="bf16"), SLIM, small_lock)[:2] == ("bf16", None)
    name, problem, _ = loc.active_model_set(places.settings(), SLIM, small_lock)
    assert name is None
    assert "MODEL_SET is not set" in problem and "bf16, fp8" in problem
    name, problem, _ = loc.active_model_set(places.settings(MODEL_SET="int4"), SLIM, small_lock)
    assert name is None and "unknown model set 'int4' (from MODEL_SET)" in problem


def test_an_explicit_set_wins_over_the_image_and_model_set(small_lock, places):
    settings = places.settings(MODEL_SET="fp8")
    assert loc.active_model_set(settings, baked_info(places, "fp8"), small_lock, "bf16") == ("bf16", None, [])
    assert loc.active_model_set(settings, SLIM, small_lock, override="bf16")[:2] == ("bf16", None)
    name, problem, _ = loc.active_model_set(settings, SLIM, small_lock, override="int4")
    assert name is None and "unknown model set 'int4' (from --set)" in problem


def test_verify_models_takes_download_or_full_only(places):
    # "none" once parsed but behaved like "download": downloads are always hashed.
    with pytest.raises(SettingsError, match="VERIFY_MODELS='none': Input should be 'download' or 'full'"):
        places.settings(VERIFY_MODELS="none")
    assert places.settings(VERIFY_MODELS="full").verify_models == "full"


def test_download_dir_defaults(places):
    assert loc.default_download_dir(places.settings(), True) == places.volume / "models"
    assert loc.default_download_dir(places.settings(), False) == places.worker_home / "downloads"
    assert loc.default_download_dir(places.settings(DOWNLOAD_DIR="/x"), True) == Path("/x")


def test_baked_dir_prefers_explicit_setting_then_build_info(places):
    info = baked_info(places)
    info = info.model_copy(update={"models_dir": "/from/build-info"})
    assert loc.baked_dir(places.settings(), info) == places.baked  # BAKED_MODELS_DIR given explicitly
    implicit = places.settings()
    implicit = implicit.model_validate({"RUNPOD_VOLUME_PATH": str(places.volume)})
    assert loc.baked_dir(implicit, info) == Path("/from/build-info")


# ---- locating in real directories ----------------------------------------------------------------


def test_baked_image_finds_everything_in_the_image_trusted_by_size(small_lock, places):
    put_set(places.baked, small_lock, "fp8")
    report = loc.locate_models(places.settings(), small_lock, baked_info(places, lock=small_lock))
    assert report.complete and report.missing == ()
    assert {f.source for f in report.files} == {"baked"}
    by_id = {f.id: f for f in report.files}
    assert by_id["ckpt-fp8"].roles == ("checkpoint",)
    assert by_id["ckpt-fp8"].size == SPEC_BY_ID["ckpt-fp8"].size
    # hashed at build time -> verified; the entry with no sha256 in the lock cannot be
    assert by_id["gemma"].verified is True and by_id["canny-lora"].verified is None


def test_baked_files_are_not_trusted_when_built_from_another_lock(small_lock, places):
    put_set(places.baked, small_lock, "fp8")
    info = baked_info(places).model_copy(update={"lock_digest": "0" * 64})
    report = loc.locate_models(places.settings(), small_lock, info)
    assert report.complete and all(f.verified is None for f in report.files)


def test_mixed_sources_checkpoint_from_runpod_cache_loras_from_volume(small_lock, places):
    # RunPod cached the LTX-2 repo (checkpoint, LoRA and upscaler inside); the user keeps the
    # distilled LoRA and the rest on the volume, the text encoder in a Pod-style ComfyUI tree.
    put_hf_cache(
        places.hub,
        "Lightricks/LTX-2",
        {
            "ltx-2-19b-dev-fp8.safetensors": content_for("ckpt-fp8"),
            "ltx-2-spatial-upscaler-x2-1.0.safetensors": content_for("upscaler"),
        },
    )
    for entry_id in ("distilled-lora", "canny-lora", "lotus", "sd-vae"):
        put(places.volume_models, entry_id)
    put(places.pod_models, "gemma")
    settings = places.settings(MODEL_SET="fp8")
    report = loc.locate_models(settings, small_lock, SLIM)
    assert report.complete, report.missing_error()
    sources = {f.id: (f.source, f.path) for f in report.files}
    repo = places.hub / "models--Lightricks--LTX-2" / "snapshots" / REV_MAIN
    assert sources["ckpt-fp8"] == ("runpod-cache", repo / "ltx-2-19b-dev-fp8.safetensors")
    assert sources["upscaler"] == ("runpod-cache", repo / "ltx-2-spatial-upscaler-x2-1.0.safetensors")
    assert sources["distilled-lora"][0] == "volume"
    assert sources["gemma"] == (
        "volume-comfyui",
        places.pod_models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors",
    )
    # the snapshot entry is a symlink into blobs/: size comes from the blob
    assert {f.id: f.size for f in report.files}["ckpt-fp8"] == SPEC_BY_ID["ckpt-fp8"].size


def test_runpod_cache_without_refs_main_scans_snapshots(small_lock, places):
    put_hf_cache(
        places.hub,
        "Lightricks/LTX-2",
        {"ltx-2-19b-dev-fp8.safetensors": content_for("ckpt-fp8")},
        revision=REV_OLD,
        refs_main=False,
    )
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    ckpt = report.file_for("checkpoints", "ltx-2-19b-dev-fp8.safetensors")
    assert ckpt is not None and ckpt.source == "runpod-cache" and REV_OLD in str(ckpt.path)


def test_legacy_folder_names_are_searched(small_lock, places):
    put(places.pod_models, "gemma", folder="clip")
    put(places.volume_models, "lotus", folder="unet")
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    assert report.file_for("text_encoders", "gemma_3_12B_it_fp4_mixed.safetensors").path.parent.name == "clip"
    assert report.file_for("diffusion_models", "lotus-depth-d-v1-1.safetensors").path.parent.name == "unet"


def test_models_dir_wins_then_image_then_volume(small_lock, places, tmp_path):
    models_dir = tmp_path / "explicit"
    put(models_dir, "gemma")
    put(places.baked, "gemma")
    put(places.baked, "sd-vae")
    put(places.volume_models, "gemma")
    put(places.volume_models, "sd-vae")
    put(places.volume_models, "lotus")
    report = loc.locate_models(places.settings(MODEL_SET="fp8", MODELS_DIR=str(models_dir)), small_lock, SLIM)
    got = {f.id: f.source for f in report.files}
    assert got == {"gemma": "models_dir", "sd-vae": "baked", "lotus": "volume"}


def test_wrong_size_file_is_skipped_with_a_warning_and_the_next_source_used(small_lock, places, caplog):
    put(places.baked, "distilled-lora", data=b"truncated")
    put(places.volume_models, "distilled-lora")
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    lora = report.file_for("loras", "ltx-2-19b-distilled-lora-384.safetensors")
    assert lora.source == "volume"
    assert any("9 bytes" in w and "trying the next place" in w for w in report.warnings)


def test_missing_files_name_every_place_looked(small_lock, places):
    put_set(places.volume_models, small_lock, "fp8", skip=("gemma", "ckpt-fp8"))
    put(places.pod_models, "ckpt-fp8", data=b"short")
    put_hf_cache(places.hub, "Lightricks/LTX-2", {"other.safetensors": b"x"})
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    assert not report.complete
    assert [m.id for m in report.missing] == ["ckpt-fp8", "gemma"]
    ckpt = report.missing[0]
    text = "\n".join(ckpt.looked_in)
    assert (
        f"image: {places.baked}/checkpoints/ltx-2-19b-dev-fp8.safetensors (no folder {places.baked})" in text
    )
    assert (
        f"network volume: {places.volume_models}/checkpoints/ltx-2-19b-dev-fp8.safetensors (absent)" in text
    )
    assert "network volume (Pod layout)" in text and "(wrong size: 5 bytes" in text
    assert f"snapshots/{REV_MAIN}/ltx-2-19b-dev-fp8.safetensors (absent)" in text
    gemma = report.missing[1]
    assert any("models--Comfy-Org--ltx-2 (not cached)" in place for place in gemma.looked_in)
    error = report.missing_error()
    assert error.startswith("2 model files of set fp8 are missing.")
    assert "checkpoints/ltx-2-19b-dev-fp8.safetensors (entry ckpt-fp8) not found; looked in:" in error
    assert "text_encoders/gemma_3_12B_it_fp4_mixed.safetensors (entry gemma)" in error
    assert "ALLOW_DOWNLOADS=true" in error


def test_no_volume_is_said_once_per_place(small_lock, tmp_path):
    settings = Places(tmp_path, tmp_path / "no-volume", tmp_path / "baked", tmp_path / "w").settings(
        MODEL_SET="fp8"
    )
    report = loc.locate_models(settings, small_lock, SLIM)
    looked = report.missing[0].looked_in
    assert any(f"no folder {tmp_path}/no-volume/models" in place for place in looked)
    assert not any("RunPod model cache" in place for place in looked)  # no volume: no cache to look in


def test_slim_without_model_set_reports_how_to_set_it(small_lock, places):
    put(places.volume_models, "gemma")
    report = loc.locate_models(places.settings(), small_lock, SLIM)
    assert report.model_set is None and report.files == () and not report.complete
    assert "set the MODEL_SET environment variable" in report.missing_error()
    assert report.to_dict()["problem"] == report.problem
    assert "no model set is active" in report.log_block()


def test_remembered_hash_mismatch_rejects_a_candidate(small_lock, places):
    bad = put(places.baked, "sd-vae", data=b"Z" * SPEC_BY_ID["sd-vae"].size)  # right size, wrong bytes
    put(places.volume_models, "sd-vae")
    store = VerifiedStore([places.root / "records"])
    store.remember(bad, "f" * 64, bad.stat())
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM, store=store)
    vae = report.file_for("vae", "vae-ft-mse-840000-ema-pruned.safetensors")
    assert vae.source == "volume"
    assert any("remembered" in w and str(bad) in w for w in report.warnings)


def test_remembered_good_hash_marks_verified(small_lock, places):
    good = put(places.volume_models, "sd-vae")
    store = VerifiedStore([places.root / "records"])
    store.remember(good, small_lock.entries["sd-vae"].sha256, good.stat())
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM, store=store)
    assert report.file_for("vae", "vae-ft-mse-840000-ema-pruned.safetensors").verified is True
    assert report.file_for("loras", "ltx-2-19b-distilled-lora-384.safetensors") is None


# ---- extras: the user's own files on the volume ------------------------------------------------


def test_user_lora_on_the_volume_next_to_baked_models_is_an_extra(small_lock, places):
    put_set(places.baked, small_lock, "fp8")
    mine = places.volume_models / "loras" / "my-style.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"lora" * 10)
    nested = places.pod_models / "loras" / "people" / "alice.safetensors"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"a" * 7)
    (places.volume_models / "loras" / "notes.txt").write_text("not a model")
    (places.volume_models / "loras" / ".hidden.safetensors").write_bytes(b"h")
    (places.volume_models / "loras" / "big.safetensors.part").write_bytes(b"p")
    # a lock file of the other set and a wrong-size copy of an active one: never extras
    put(places.volume_models, "ckpt-bf16")
    put(places.volume_models, "distilled-lora", data=b"bad")
    (places.volume_models / "licenses").mkdir()
    (places.volume_models / "licenses" / "LICENSE.safetensors").write_bytes(b"l")
    report = loc.locate_models(places.settings(), small_lock, baked_info(places, lock=small_lock))
    assert report.complete
    assert [(e.folder, e.filename, e.size) for e in report.extras] == [
        ("loras", "my-style.safetensors", 40),
        ("loras", "people/alice.safetensors", 7),
    ]
    assert report.to_dict()["extras"][0] == {
        "file": "loras/my-style.safetensors",
        "path": str(mine),
        "size": 40,
    }
    assert "2 extra files from the volume" in report.log_block()


def test_extras_from_legacy_folders_use_comfyui_names(small_lock, places):
    clip = places.volume_models / "clip" / "t5.safetensors"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"t5")
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    assert [(e.folder, e.filename) for e in report.extras] == [("text_encoders", "t5.safetensors")]


# ---- the report ------------------------------------------------------------------------------


def test_report_dict_is_json_and_the_log_block_a_table(small_lock, places):
    put_set(places.baked, small_lock, "fp8", skip=("lotus",))
    report = loc.locate_models(places.settings(), small_lock, baked_info(places, lock=small_lock))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["model_set"] == "fp8" and data["complete"] is False
    assert data["files"][0] == {
        "id": "ckpt-fp8",
        "file": "checkpoints/ltx-2-19b-dev-fp8.safetensors",
        "source": "baked",
        "path": str(places.baked / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors"),
        "size": 3001,
        "verified": True,
    }
    assert data["missing"][0]["id"] == "lotus" and data["missing"][0]["looked_in"]
    block = report.log_block()
    lines = block.splitlines()
    assert lines[0] == "Models: set fp8, 6 of 7 files found (8.99 KiB), 1 MISSING"
    assert lines[1].split() == ["FILE", "SOURCE", "SIZE", "VERIFIED", "PATH"]
    row = next(line for line in lines if "ltx-2-19b-dev-fp8" in line)
    assert row.split() == [
        "checkpoints/ltx-2-19b-dev-fp8.safetensors",
        "baked",
        "2.93",
        "KiB",
        "yes",
        str(places.baked / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors"),
    ]
    assert any(
        line.strip().startswith("MISSING diffusion_models/lotus-depth-d-v1-1.safetensors") for line in lines
    )
    assert len(json.dumps(report.to_dict())) < 6000  # compact enough for every job result


def test_human_size():
    assert loc.human_size(512) == "512 B"
    assert loc.human_size(27078716018) == "25.22 GiB"
    assert loc.human_size(995765578) == "949.64 MiB"


# ---- jobs that need files ------------------------------------------------------------------------


def _prompt(**loaders):
    return {
        str(i): {"class_type": cls, "inputs": dict(inputs)}
        for i, (cls, inputs) in enumerate(loaders.items(), 1)
    }


def test_models_needed_by_reads_the_loader_inputs():
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {
            "class_type": "LTXAVTextEncoderLoader",
            "inputs": {"text_encoder": "g.safetensors", "ckpt_name": "a.safetensors", "device": "default"},
        },
        "3": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"lora_name": "l.safetensors", "model": ["1", 0]},
        },
        "4": {"class_type": "KSampler", "inputs": {"seed": 1}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": ["9", 0]}},  # a link, not a name
    }
    assert loc.models_needed_by(prompt) == [
        ("1", "checkpoints", "a.safetensors"),
        ("2", "text_encoders", "g.safetensors"),
        ("2", "checkpoints", "a.safetensors"),
        ("3", "loras", "l.safetensors"),
    ]


def test_job_needing_a_file_outside_the_active_set_gets_a_clear_error(small_lock, places):
    put_set(places.baked, small_lock, "fp8", skip=("lotus",))
    report = loc.locate_models(places.settings(), small_lock, baked_info(places, lock=small_lock))
    ok = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "ltx-2-19b-dev-fp8.safetensors"},
        },
        "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "my-own.safetensors"}},
    }
    assert report.job_error(ok, small_lock) is None
    other = {
        "7": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-2-19b-dev.safetensors"}}
    }
    error = report.job_error(other, small_lock)
    assert error == (
        "node 7 needs checkpoints/ltx-2-19b-dev.safetensors (lock entry ckpt-bf16), which belongs to model set "
        "bf16, not to this worker's set fp8; use a worker for that set or set MODEL_SET (slim images)"
    )
    gone = {"3": {"class_type": "UNETLoader", "inputs": {"unet_name": "lotus-depth-d-v1-1.safetensors"}}}
    error = report.job_error(gone, small_lock)
    assert error.startswith(
        "node 3 needs diffusion_models/lotus-depth-d-v1-1.safetensors, which was not found;"
    )
    assert str(places.volume_models / "diffusion_models" / "lotus-depth-d-v1-1.safetensors") in error


def test_job_error_without_an_active_set_says_how_to_set_it(small_lock, places):
    report = loc.locate_models(places.settings(), small_lock, SLIM)
    job = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "ltx-2-19b-dev-fp8.safetensors"},
        }
    }
    assert "set the MODEL_SET environment variable" in report.job_error(job, small_lock)


# ---- the command line ------------------------------------------------------------------------------


def _cli(places: Places, lock_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "RUNPOD_VOLUME_PATH": str(places.volume),
        "BAKED_MODELS_DIR": str(places.baked),
        "WORKER_HOME": str(places.worker_home),
        "MODELS_LOCK": str(lock_path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "handler", "locate", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_json_and_exits_zero_when_complete(small_lock, places):
    put_set(places.volume_models, small_lock, "bf16")
    done = _cli(places, small_lock.source, "--json", MODEL_SET="bf16")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["complete"] is True and data["model_set"] == "bf16"
    assert {f["source"] for f in data["files"]} == {"volume"}


def test_cli_table_names_missing_files_and_exits_one(small_lock, places):
    put_set(places.volume_models, small_lock, "fp8", skip=("upscaler",))
    done = _cli(places, small_lock.source, "--set", "fp8")
    assert done.returncode == 1
    assert done.stdout.startswith("Models: set fp8, 6 of 7 files found")
    assert "MISSING latent_upscale_models/ltx-2-spatial-upscaler-x2-1.0.safetensors" in done.stdout
    assert "looked in:" in done.stdout


def test_cli_set_on_a_baked_image_still_uses_the_images_verified_files(small_lock, places):
    # An fp8 image asked about bf16: the shared files come from the image, trusted as the build
    # verified them; only the bf16 checkpoint has to be elsewhere.
    put_set(places.baked, small_lock, "fp8")
    put(places.volume_models, "ckpt-bf16")
    info = baked_info(places, "fp8", lock=small_lock)
    (places.worker_home / "build-info.json").write_text(info.model_dump_json())
    done = _cli(places, small_lock.source, "--json", "--set", "bf16", MODEL_SET="fp8")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["model_set"] == "bf16" and data["complete"] is True
    found = {f["id"]: (f["source"], f["verified"]) for f in data["files"]}
    assert found["ckpt-bf16"] == ("volume", None)
    assert found["gemma"] == ("baked", True)


def test_cli_rejects_a_bad_lock_with_exit_two(places, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\nentries: {}\n")
    done = _cli(places, bad, "--json")
    assert done.returncode == 2 and "not a valid model lock" in done.stderr


@pytest.mark.slow  # two CLI processes
def test_cli_verify_hashes_and_remembers(small_lock, places):
    put_set(places.volume_models, small_lock, "fp8")
    corrupt = places.volume_models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors"
    corrupt.write_bytes(b"Q" * SPEC_BY_ID["sd-vae"].size)
    done = _cli(places, small_lock.source, "--verify", "--json", MODEL_SET="fp8")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    verified = {f["id"]: f["verified"] for f in data["files"]}
    assert verified["gemma"] is True and verified["canny-lora"] is None
    assert [m["id"] for m in data["missing"]] == ["sd-vae"]
    assert "does not match the lock's" in " ".join(data["missing"][0]["looked_in"])
    # remembered: a plain locate now shows them verified without hashing
    again = json.loads(_cli(places, small_lock.source, "--json", MODEL_SET="fp8").stdout)
    assert {f["id"]: f["verified"] for f in again["files"]}["gemma"] is True


def test_a_folder_link_cycle_on_the_volume_does_not_hang_the_extras_scan(small_lock, places):
    loop = places.volume_models / "loras" / "loop"
    loop.mkdir(parents=True)
    (loop / "one.safetensors").write_bytes(b"1")
    (loop / "again").symlink_to(loop)
    (loop / "dangling.safetensors").symlink_to(places.root / "nowhere")
    report = loc.locate_models(places.settings(MODEL_SET="fp8"), small_lock, SLIM)
    assert [e.filename for e in report.extras] == ["loop/one.safetensors"]
