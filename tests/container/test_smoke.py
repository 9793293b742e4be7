"""Smoke tests against every baked variant: the worker starts, becomes ready, and a job through the
RunPod SDK's local API returns a real output file; the model report says where the models came from.

`docker run IMAGE` polls RunPod's job API like a worker on the platform; `baked`/`fp8` find
their models in the image; `slim` finds them on a mounted volume in each layout users
have (``models/``, Pod-style ``ComfyUI/models/``, RunPod's model cache), downloads them into an
empty volume when allowed, and with nothing at all fails the first job with a clear error.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from testcontainers.core.container import DockerContainer

from tests.container import rig
from tests.container.conftest import JOB_TIMEOUT, BakedImages, decode_output_file, smoke_workflow
from tests.doubles.runpod_api import RunPodJobAPI
from tests.support import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow]

# A revision name for the RunPod-cache layout (the snapshot directory the cache's refs/main names).
CACHE_REVISION = "0123456789abcdef0123456789abcdef01234567"


def assert_png_output(output: Mapping[str, Any]) -> None:
    """The job made one 64x64 PNG, returned inline with a size and sha256 that match its bytes."""
    assert output.get("status") == "success", output
    images = [item for item in output["outputs"] if item.get("filename", "").endswith(".png")]
    assert len(images) == 1, output["outputs"]
    item = images[0]
    data = decode_output_file(item)
    assert item["size"] == len(data)
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert item["mime"] == "image/png"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (64, 64)


def sources(output: Mapping[str, Any]) -> dict[str, str]:
    """file (folder/name) -> source, from the model report in a job result."""
    report = output["models"]
    return {f["file"]: f["source"] for f in report["files"]}


def expected_files(model_set: str) -> set[str]:
    return {f.relpath for f in rig.set_files(model_set)}


@pytest.mark.parametrize("variant", ["baked", "fp8"])
def test_baked_variant_serves_a_job_with_models_from_the_image(
    baked_images: BakedImages, worker_factory: Any, variant: str
) -> None:
    worker = worker_factory(baked_images.refs[variant])

    result = worker.runsync({"workflow": smoke_workflow(color=0x3366CC)})

    assert result["status"] == "COMPLETED", result
    output = result["output"]
    assert_png_output(output)
    model_set = rig.VARIANT_SETS[variant]
    assert output["models"]["model_set"] == model_set
    assert output["models"]["complete"] is True
    assert sources(output) == {relpath: "baked" for relpath in expected_files(model_set)}
    assert all(f["path"].startswith("/opt/worker/models/") for f in output["models"]["files"])


def _write_set(root: Path, model_set: str) -> None:
    for f in rig.set_files(model_set):
        target = root / f.folder / f.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)


def _write_runpod_cache(volume: Path, model_set: str) -> None:
    """RunPod's cached-model layout: the HF cache, snapshot files as symlinks into blobs/."""
    rig.write_hf_cache(volume / "huggingface-cache" / "hub", rig.set_files(model_set), CACHE_REVISION)


LAYOUTS = {
    "volume": lambda volume, model_set: _write_set(volume / "models", model_set),
    "volume-comfyui": lambda volume, model_set: _write_set(volume / "ComfyUI" / "models", model_set),
    "runpod-cache": _write_runpod_cache,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_slim_finds_models_on_a_mounted_volume(
    baked_images: BakedImages, worker_factory: Any, tmp_path: Path, layout: str
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    LAYOUTS[layout](volume, "fp8")
    worker = worker_factory(baked_images.refs["slim"], env={"MODEL_SET": "fp8"}, volume=volume)

    result = worker.runsync({"workflow": smoke_workflow(color=0x00FF00)})

    assert result["status"] == "COMPLETED", result
    output = result["output"]
    assert_png_output(output)
    assert output["models"]["complete"] is True
    assert sources(output) == {relpath: layout for relpath in expected_files("fp8")}


def test_slim_downloads_into_an_empty_volume_when_allowed(
    baked_images: BakedImages, worker_factory: Any, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    worker = worker_factory(
        baked_images.refs["slim"],
        env={
            "MODEL_SET": "bf16",
            "ALLOW_DOWNLOADS": "true",
            "HF_ENDPOINT": baked_images.hub.endpoint,
            "HF_TOKEN": baked_images.token,  # the gated repo of the rig needs it
        },
        volume=volume,
        host_network=True,
    )

    result = worker.runsync({"workflow": smoke_workflow(color=0xFF0000)})

    assert result["status"] == "COMPLETED", result
    output = result["output"]
    assert_png_output(output)
    assert sources(output) == {relpath: "downloaded" for relpath in expected_files("bf16")}
    # Downloaded into the volume, verified: each file's bytes are the lock's.
    for f in rig.set_files("bf16"):
        stored = volume / "models" / f.folder / f.filename
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == f.sha256, stored
    assert all(item["verified"] for item in output["models"]["files"])
    assert baked_images.token not in worker.logs()


def test_slim_without_models_fails_the_first_job_clearly(
    baked_images: BakedImages, worker_factory: Any
) -> None:
    worker = worker_factory(baked_images.refs["slim"], env={"MODEL_SET": "fp8"})
    checkpoint = next(f for f in rig.set_files("fp8") if f.folder == "checkpoints")
    workflow = {
        **smoke_workflow(color=0x123456),
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint.filename}},
    }

    result = worker.runsync({"workflow": workflow})

    assert result["status"] == "FAILED", result
    error = str(result["error"])
    # It names the file the job needs and every place it was looked for.
    assert checkpoint.relpath in error, error
    assert "not found" in error, error
    assert "/runpod-volume/models/" in error and "/opt/worker/models" in error, error


async def test_docker_run_starts_the_worker_as_on_runpod(baked_images: BakedImages) -> None:
    """No arguments, no SERVE_API: the image's default command polls RunPod's job API (here a
    loopback stand-in, reached through host networking) and posts the result back."""
    api = await RunPodJobAPI().start()
    container = DockerContainer(baked_images.refs["fp8"])
    container.with_kwargs(network_mode="host")
    container.with_envs(**api.environment(), COMFYUI_CPU="true", COMFYUI_PORT=str(free_port()))
    try:
        await asyncio.to_thread(container.start)
        api.submit("job-platform-1", {"workflow": smoke_workflow(color=0xABCDEF)})
        try:
            result = await api.wait_result("job-platform-1", timeout=JOB_TIMEOUT)
        except TimeoutError as exc:
            out, err = container.get_logs()
            raise AssertionError(f"{exc}\n{(out + err).decode(errors='replace')[-6000:]}") from None
    finally:
        await asyncio.to_thread(container.stop)
        await api.close()

    assert "error" not in result, result
    output = result["output"]
    assert_png_output(output)
    assert sources(output) == {relpath: "baked" for relpath in expected_files("fp8")}
