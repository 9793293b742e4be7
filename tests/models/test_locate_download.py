"""Startup downloads: missing files fetched (verified) into the volume or container disk, once.

Runs against the local Hugging Face-compatible server (tests/doubles/hf) with the project's own
fetch (handler/models/fetch.py), so the files, hashes, request log and concurrency are real.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handler.models import locate as loc
from handler.models.verified import VerifiedStore
from tests.doubles.hf import Fault, HfDouble
from tests.models import conftest_locate as _fixtures
from tests.models.conftest_locate import REV_MAIN, SLIM, SPEC_BY_ID, SPECS, content_for, put, put_set

places = _fixtures.places
small_lock = _fixtures.small_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
DOWNLOADABLE = [s for s in SPECS if s.known]


def hub_spec() -> dict:
    """Every lock entry's repo at commit REV_MAIN, serving the entry's exact bytes."""
    repos: dict[str, dict] = {}
    for spec in SPECS:
        files = repos.setdefault(spec.repo, {"commits": [{"id": REV_MAIN, "files": {}}]})["commits"][0][
            "files"
        ]
        files[spec.path] = {"bytes_hex": content_for(spec.id).hex()}
    return {"repos": repos}


@pytest.fixture
def hub(tmp_path):
    with HfDouble(hub_spec(), tmp_path / "hub-double") as double:
        yield double


@pytest.fixture(autouse=True)
def _isolated_hf_home(tmp_path, monkeypatch):
    # fetch reuses files from the local HF cache; keep the developer's ~/.cache out of the tests
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_missing_files_are_downloaded_into_the_volume_and_verified(small_lock, places, hub):
    put(places.volume_models, "ckpt-fp8")  # already there: never requested
    settings = places.settings(MODEL_SET="fp8", ALLOW_DOWNLOADS="true", HF_ENDPOINT=hub.endpoint)
    prepared = loc.prepare_models(settings, lock=small_lock, build_info=SLIM)
    report = prepared.report
    by_id = {f.id: f for f in report.files}
    assert by_id["ckpt-fp8"].source == "volume"
    for entry_id in ("gemma", "distilled-lora", "upscaler", "lotus", "sd-vae"):
        assert by_id[entry_id].source == "downloaded", entry_id
        assert by_id[entry_id].verified is True
        assert by_id[entry_id].path == places.volume_models / small_lock.entries[entry_id].relpath
        assert by_id[entry_id].path.read_bytes() == content_for(entry_id)
    # the entry with no sha256 in the lock is not fetched blind: it stays missing, and says why
    assert [m.id for m in report.missing] == ["canny-lora"]
    assert any("not attempted, the lock has no sha256" in p for p in report.missing[0].looked_in)
    downloaded = sorted((r.repo, r.path) for r in hub.body_requests())
    assert ("Lightricks/LTX-2", "ltx-2-19b-dev-fp8.safetensors") not in downloaded
    assert len(downloaded) == 5 and len(set(downloaded)) == 5
    # nothing but the final files is left in the volume's model folders
    assert _listing(places.volume_models) == sorted(
        small_lock.entries[i].relpath
        for i in ("ckpt-fp8", "gemma", "distilled-lora", "upscaler", "lotus", "sd-vae")
    )

    # Next cold start: found on the volume, verified from the sidecar, nothing downloaded.
    hub.clear_requests()
    again = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    assert hub.body_requests() == []
    assert {f.id: (f.source, f.verified) for f in again.files}["gemma"] == ("volume", True)


def test_without_a_volume_downloads_go_to_container_disk(small_lock, tmp_path, hub):
    p = _fixtures.Places(tmp_path, tmp_path / "no-volume", tmp_path / "baked", tmp_path / "worker")
    settings = p.settings(MODEL_SET="bf16", ALLOW_DOWNLOADS="true", HF_ENDPOINT=hub.endpoint)
    report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    ckpt = report.file_for("checkpoints", "ltx-2-19b-dev.safetensors")
    assert ckpt.source == "downloaded" and ckpt.path.parent.parent == tmp_path / "worker" / "downloads"
    # a second start in the same container finds them in the download directory
    again = loc.locate_models(settings, small_lock, SLIM)
    assert again.file_for("checkpoints", "ltx-2-19b-dev.safetensors").source == "downloaded"


def test_read_only_volume_is_read_and_downloads_fall_back_to_container_disk(
    small_lock, places, hub, tmp_path
):
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    put(places.volume_models, "ckpt-fp8")
    ro = tmp_path / "ro-volume"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(places.volume), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not permitted here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True, capture_output=True)
        settings = places.settings(
            RUNPOD_VOLUME_PATH=str(ro), MODEL_SET="fp8", ALLOW_DOWNLOADS="true", HF_ENDPOINT=hub.endpoint
        )
        report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    by_id = {f.id: f for f in report.files}
    assert by_id["ckpt-fp8"].source == "volume"
    assert by_id["gemma"].source == "downloaded"
    assert by_id["gemma"].path.is_relative_to(places.worker_home / "downloads")
    assert not (places.volume / "models" / "text_encoders").exists()


def test_download_failure_is_named_per_file_and_the_rest_still_arrive(small_lock, places, hub):
    hub.add_fault(
        "Comfy-Org/lotus", "lotus-depth-d-v1-1.safetensors", Fault("status", status=404, on="any", times=-1)
    )
    settings = places.settings(MODEL_SET="fp8", ALLOW_DOWNLOADS="true", HF_ENDPOINT=hub.endpoint)
    report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    assert sorted(m.id for m in report.missing) == ["canny-lora", "lotus"]
    lotus = next(m for m in report.missing if m.id == "lotus")
    failure = [p for p in lotus.looked_in if p.startswith("download from Comfy-Org/lotus/")]
    assert failure and "failed:" in failure[0]
    assert "lotus" in report.missing_error()
    assert report.file_for("vae", "vae-ft-mse-840000-ema-pruned.safetensors").source == "downloaded"


def test_downloads_off_leaves_files_missing_with_a_hint(small_lock, places, hub):
    report = loc.prepare_models(
        places.settings(MODEL_SET="fp8", HF_ENDPOINT=hub.endpoint), lock=small_lock, build_info=SLIM
    ).report
    assert len(report.missing) == 7 and hub.body_requests() == []
    assert "ALLOW_DOWNLOADS=true" in report.missing_error()


def _bad_copy(places, entry_id: str) -> Path:
    """A copy with the lock's size and other bytes, where downloads go (the volume's models)."""
    return put(places.volume_models, entry_id, data=b"\0" * SPEC_BY_ID[entry_id].size)


def test_full_verification_replaces_a_same_size_bad_copy_in_the_download_directory(small_lock, places, hub):
    put_set(places.volume_models, small_lock, "fp8", skip=("gemma",))
    bad = _bad_copy(places, "gemma")
    settings = places.settings(
        MODEL_SET="fp8", ALLOW_DOWNLOADS="true", VERIFY_MODELS="full", HF_ENDPOINT=hub.endpoint
    )
    report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    gemma = report.file_for("text_encoders", "gemma_3_12B_it_fp4_mixed.safetensors")
    assert gemma is not None, report.missing_error()
    assert (gemma.source, gemma.verified, gemma.path) == ("downloaded", True, bad)
    assert bad.read_bytes() == content_for("gemma")
    assert [(r.repo, r.path) for r in hub.body_requests()] == [
        ("Comfy-Org/ltx-2", small_lock.entries["gemma"].path)
    ]
    assert report.complete


def test_a_copy_remembered_as_bad_in_the_download_directory_is_replaced(small_lock, places, hub):
    put_set(places.volume_models, small_lock, "fp8", skip=("gemma",))
    bad = _bad_copy(places, "gemma")
    settings = places.settings(MODEL_SET="fp8", ALLOW_DOWNLOADS="true", HF_ENDPOINT=hub.endpoint)
    VerifiedStore.for_settings(settings).remember(
        bad, hashlib.sha256(bad.read_bytes()).hexdigest(), bad.stat()
    )
    report = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    gemma = report.file_for("text_encoders", "gemma_3_12B_it_fp4_mixed.safetensors")
    assert gemma is not None, report.missing_error()
    assert (gemma.source, gemma.verified) == ("downloaded", True)
    assert bad.read_bytes() == content_for("gemma")
    # and the next start finds the good copy, remembered, with nothing downloaded
    hub.clear_requests()
    again = loc.prepare_models(settings, lock=small_lock, build_info=SLIM).report
    assert hub.body_requests() == []
    assert again.file_for("text_encoders", "gemma_3_12B_it_fp4_mixed.safetensors").verified is True


# prepare_models logs one line per fetched file: "<folder>/<file>: <action> <path> (<size>)"
_OUTCOME_LINE = re.compile(
    r"handler\.models\.locate \| \S+\.safetensors: (downloaded|waited|present|reused-cache) /"
)

_WORKER = """
import json, sys
from handler.buildinfo import BuildInfo
from handler.models.lock import load_lock
from handler.models.locate import prepare_models
from handler.log import configure_logging
from handler.settings import Settings

settings = Settings.from_env()
configure_logging("INFO")
prepared = prepare_models(settings, lock=load_lock(settings.models_lock), build_info=BuildInfo(variant="slim"))
print(json.dumps({"report": prepared.report.to_dict(), "args": prepared.comfyui_args}))
"""


@pytest.mark.slow
def test_many_workers_starting_together_download_each_file_once(small_lock, places, hub, tmp_path):
    # Each file is served slowly, so every worker arrives while the first download is running.
    for spec in DOWNLOADABLE:
        if spec.id != "ckpt-bf16":
            hub.add_fault(spec.repo, spec.path, Fault("stall", at=100, seconds=1.5, times=-1))
    workers = []
    for n in range(4):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "RUNPOD_VOLUME_PATH": str(places.volume),
            "WORKER_HOME": str(tmp_path / f"worker-{n}"),
            "BAKED_MODELS_DIR": str(tmp_path / "no-image-models"),
            "MODELS_LOCK": str(small_lock.source),
            "MODEL_SET": "fp8",
            "ALLOW_DOWNLOADS": "true",
            "HF_ENDPOINT": hub.endpoint,
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    started = time.monotonic()
    results, logs = [], []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
        logs.append(err)
    elapsed = time.monotonic() - started

    downloaded = [(r.repo, r.path) for r in hub.body_requests()]
    assert len(downloaded) == 6, downloaded  # the six fp8 files with a known sha256, once each
    assert len(set(downloaded)) == 6
    for result in results:
        report = result["report"]
        assert [m["id"] for m in report["missing"]] == ["canny-lora"]
        for f in report["files"]:
            assert f["verified"] is True and f["size"] == len(content_for(f["id"])), f
            assert Path(f["path"]).read_bytes() == content_for(f["id"])
    # the workers' own accounts agree: six downloads in all, every other worker waited for them
    # (or found the file already placed), and only the final files remain on the volume
    actions = [m.group(1) for text in logs for m in _OUTCOME_LINE.finditer(text)]
    assert actions.count("downloaded") == 6, actions
    assert actions.count("waited") >= 1 and len(actions) == 24, actions
    assert elapsed < 60
    assert _listing(places.volume_models) == sorted(
        small_lock.entries[s.id].relpath for s in DOWNLOADABLE if s.id != "ckpt-bf16"
    )
