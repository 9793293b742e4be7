"""Rendered templates are accepted and run by a running ComfyUI double (real HTTP on loopback).

One double per model set, with exactly that set's files (24-byte stand-ins under the lock's
folder and file names) in its model folders and the media files in its input folder.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handler.models.lock import ModelLock, load_lock
from handler.templates import TEMPLATE_NAMES, render_template, template_spec, validate_template_params
from tests.doubles.comfyui.comfy_double import media
from tests.doubles.comfyui.launcher import RunningDouble, start_double

INPUT_FILES = {"image": "first_frame.png", "video": "control.mp4"}
JOB_MEDIA = {
    "t2v": {},
    "i2v": {"image": "b64"},
    "canny": {"video": "b64", "image": "b64"},
    "depth": {"video": "b64"},
}
CASES = {
    "defaults": {},
    "edges": {
        "width": 128,
        "height": 2560,
        "frames": 257,
        "fps": 60,
        "steps": 1,
        "cfg": 0,
        "seed": 2**64 - 1,
    },
    "small_run": {"width": 256, "height": 128, "duration": 0.7, "fps": 24, "steps": 2},
}


def start_with_set(base: Path, lock: ModelLock, set_name: str) -> RunningDouble:
    for entry in lock.set_entries(set_name):
        folder = base / "models" / entry.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / entry.filename).write_bytes(b"stand-in weights\n")
    inputs = base / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 64), (200, 40, 40)).save(inputs / INPUT_FILES["image"])
    (inputs / INPUT_FILES["video"]).write_bytes(media.encode_mp4_stand_in(128, 96, 17, 24.0))
    return start_double(base)


@pytest.fixture(scope="module")
def doubles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningDouble]]:
    lock = load_lock()
    started: dict[str, RunningDouble] = {}
    try:
        for set_name in ("bf16", "fp8"):
            started[set_name] = start_with_set(tmp_path_factory.mktemp(f"comfy-{set_name}"), lock, set_name)
        yield started
    finally:
        for running in started.values():
            running.stop()


def post_prompt(comfy: RunningDouble, graph: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"prompt": graph, "client_id": "template-tests"}).encode()
    request = urllib.request.Request(
        comfy.url + "/prompt", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_history(comfy: RunningDouble, prompt_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{comfy.url}/history/{prompt_id}", timeout=5) as response:
            history = json.load(response)
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s:\n{comfy.log_text()[-2000:]}")


def rendered(name: str, lock: ModelLock, set_name: str, params: dict[str, Any]) -> dict[str, Any]:
    used = validate_template_params(name, {**JOB_MEDIA[name], **params}, rng=random.Random(5))
    media_files = {key: INPUT_FILES[key] for key in ("image", "video") if key in used}
    return render_template(name, used, model_files=lock.role_filenames(set_name), media_files=media_files)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("set_name", ["bf16", "fp8"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_double_accepts_the_rendered_prompt(
    name: str, set_name: str, case: str, doubles: dict[str, RunningDouble], lock: ModelLock
) -> None:
    comfy = doubles[set_name]
    status, body = post_prompt(comfy, rendered(name, lock, set_name, CASES[case]))
    assert status == 200, body
    assert body["node_errors"] == {}
    if case == "small_run":  # let it run to the end: the SaveVideo output is reported
        entry = wait_for_history(comfy, body["prompt_id"])
        assert entry["status"]["status_str"] == "success", entry["status"]
        video = entry["outputs"][template_spec(name).output_node]
        assert video["animated"] == [True]
        assert video["images"][0]["filename"].endswith(".mp4")


def test_control_template_without_first_frame_runs(
    doubles: dict[str, RunningDouble], lock: ModelLock
) -> None:
    graph = rendered("canny", lock, "fp8", {"image": None, "width": 256, "height": 128, "frames": 17})
    status, body = post_prompt(doubles["fp8"], graph)
    assert status == 200 and body["node_errors"] == {}
    assert wait_for_history(doubles["fp8"], body["prompt_id"])["status"]["status_str"] == "success"


def test_double_refuses_files_of_another_set(doubles: dict[str, RunningDouble], lock: ModelLock) -> None:
    status, body = post_prompt(doubles["fp8"], rendered("t2v", lock, "bf16", {}))
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(body["node_errors"]) == {"92:1", "92:48", "92:60"}
