"""Rendered templates pass ComfyUI 0.26.0's own prompt validation (the double's pure validator).

The validator checks what ComfyUI checks: the class exists, required inputs are present, link
types match, combo values are valid, model names are present in the folders and media files in
the input folder. Model folders are filled from the lock: each set's files in the folder its lock
entry names, so a role in the wrong folder fails here as it would in ComfyUI.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from handler.models.lock import ModelLock
from handler.templates import (
    TEMPLATE_NAMES,
    render_template,
    template_spec,
    validate_template_params,
)
from tests.doubles.comfyui.comfy_double.validation import object_info_with_files, validate_prompt

INPUT_FILES = {"image": "first_frame.png", "video": "control.mp4"}
JOB_MEDIA = {"t2v": {}, "i2v": {"image": "b64"}, "canny": {"video": "b64"}, "depth": {"video": "b64"}}

EDGE_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "smallest": {"width": 128, "height": 128, "frames": 9, "fps": 1, "steps": 1, "cfg": 0, "seed": 0},
    "largest": {
        "width": 2560,
        "height": 2560,
        "frames": 257,
        "fps": 60,
        "steps": 100,
        "cfg": 20,
        "seed": 2**64 - 1,
    },
    "portrait": {"width": 704, "height": 1280, "frames": 97},
    "duration_and_fps": {"duration": 3.3, "fps": 30, "negative_prompt": ""},
    "duration_default_fps": {"duration": 10, "prompt": "a lighthouse in a storm, waves crashing"},
}


def folders_for(lock: ModelLock, set_name: str) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for entry in lock.set_entries(set_name):
        folders.setdefault(entry.folder, []).append(entry.filename)
    return folders


def comfy_object_info(object_info: dict, lock: ModelLock, set_name: str) -> dict:
    return object_info_with_files(
        object_info, folders=folders_for(lock, set_name), input_files=list(INPUT_FILES.values())
    )


def rendered(name: str, lock: ModelLock, set_name: str, params: dict[str, Any]) -> tuple[dict, dict]:
    used = validate_template_params(name, {**JOB_MEDIA[name], **params}, rng=random.Random(11))
    media_files = {key: INPUT_FILES[key] for key in ("image", "video") if key in used}
    return render_template(
        name, used, model_files=lock.role_filenames(set_name), media_files=media_files
    ), used


def assert_accepted(name: str, graph: dict, info: dict) -> None:
    result = validate_prompt(graph, info)
    assert result.status == 200, result.body
    assert result.ok
    assert result.body["node_errors"] == {}
    assert result.outputs == [template_spec(name).output_node]


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("set_name", ["bf16", "fp8"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_rendered_template_is_accepted(
    name: str, set_name: str, case: str, object_info: dict, lock: ModelLock
) -> None:
    graph, _ = rendered(name, lock, set_name, EDGE_CASES[case])
    assert_accepted(name, graph, comfy_object_info(object_info, lock, set_name))


@pytest.mark.parametrize("name", ["canny", "depth"])
def test_control_templates_with_a_first_frame_are_accepted(
    name: str, object_info: dict, lock: ModelLock
) -> None:
    graph, _ = rendered(name, lock, "fp8", {"image": "b64", "frames": 49})
    assert graph["160"]["class_type"] == "LoadImage"
    assert_accepted(name, graph, comfy_object_info(object_info, lock, "fp8"))


@pytest.mark.parametrize("name", ["canny", "depth"])
def test_control_templates_without_a_first_frame_need_no_image_in_the_input_folder(
    name: str, object_info: dict, lock: ModelLock
) -> None:
    graph, _ = rendered(name, lock, "fp8", {})
    info = object_info_with_files(
        object_info, folders=folders_for(lock, "fp8"), input_files=[INPUT_FILES["video"]]
    )
    assert_accepted(name, graph, info)


def test_validator_catches_a_model_set_that_is_not_on_disk(object_info: dict, lock: ModelLock) -> None:
    # bf16 names against folders holding only the fp8 files: ComfyUI refuses all three loaders.
    graph, _ = rendered("t2v", lock, "bf16", {})
    result = validate_prompt(graph, comfy_object_info(object_info, lock, "fp8"))
    assert result.status == 400
    assert set(result.body["node_errors"]) == {"92:1", "92:48", "92:60"}
    for errors in result.body["node_errors"].values():
        assert [e["type"] for e in errors["errors"]] == ["value_not_in_list"]


def test_validator_catches_a_missing_media_file(object_info: dict, lock: ModelLock) -> None:
    graph, _ = rendered("i2v", lock, "fp8", {})
    info = object_info_with_files(object_info, folders=folders_for(lock, "fp8"), input_files=[])
    result = validate_prompt(graph, info)
    assert result.status == 400
    assert result.body["node_errors"]["98"]["errors"][0]["type"] == "custom_validation_failed"
