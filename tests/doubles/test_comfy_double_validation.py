"""The double's pure validator against the answers recorded from real ComfyUI servers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.comfyui.comfy_double.schema import MODEL_COMBOS, double_object_info, object_info_with_files
from tests.doubles.comfyui.comfy_double.validation import is_canonical_uuid, validate_graph, validate_prompt
from tests.doubles.conftest import CAPTURES_0_3, CAPTURES_0_26, LTX2_API_DIR


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return double_object_info()


def _capture(name: str) -> Any:
    return json.loads((CAPTURES_0_26 / name).read_text())


@pytest.mark.parametrize(
    "name",
    [
        "b_validation_error_prompt.json",
        "b2_validation_unknown_class.json",
        "b3_validation_no_output.json",
        "b4_validation_loadimage_missing.json",
    ],
)
def test_recorded_0_26_rejections_are_answered_byte_for_byte(object_info: dict, name: str) -> None:
    capture = _capture(name)
    result = validate_prompt(capture["request"], object_info)
    assert result.status == capture["http_status"] == 400
    assert result.body == capture["response"]
    assert not result.ok and result.outputs == []


def test_misc_0_26_errors_match_the_recorded_bodies(object_info: dict) -> None:
    lines = (CAPTURES_0_26 / "h_misc_prompt_errors.txt").read_text().splitlines()
    no_class_type = json.loads(lines[0].split(" :: ", 1)[1])
    no_prompt = json.loads(lines[1].split(" :: ", 1)[1])
    partial = json.loads(lines[5].split(" :: ", 1)[1])

    assert validate_prompt({"prompt": {"1": {"inputs": {}}}}, object_info).body == no_class_type
    assert validate_prompt({"client_id": "x"}, object_info).body == no_prompt

    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "good"}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bad"}},
    }
    result = validate_prompt(graph, object_info, number=46)
    assert result.status == 200 and result.outputs == ["2"]
    assert result.node_errors == partial["node_errors"]
    assert result.body["number"] == 46 and is_canonical_uuid(result.body["prompt_id"])


def test_prompt_id_rules_of_0_26(object_info: dict) -> None:
    rules = _capture("f_prompt_id_rules.json")
    graph = {"1": {"class_type": "DoubleValue", "inputs": {}}}
    for case in ("non_uuid", "uuid_upper"):
        result = validate_prompt(
            {"prompt": graph, "prompt_id": rules[case]["request_prompt_id"]}, object_info
        )
        assert (result.status, result.body) == (400, rules[case]["response"])
    accepted = validate_prompt(
        {"prompt": graph, "prompt_id": rules["uuid_ok"]["request_prompt_id"]}, object_info
    )
    assert accepted.status == 200 and accepted.body["prompt_id"] == rules["uuid_ok"]["request_prompt_id"]
    # 0.3.64 takes any string as given.
    assert (
        validate_prompt({"prompt": graph, "prompt_id": "my-job-123"}, object_info, version="0.3.64").prompt_id
        == "my-job-123"
    )


# d10 (malformed JSON) never reaches the validator; the server tests replay it.
_0_3_CASES = sorted(
    p.name.split(".")[0] for p in CAPTURES_0_3.glob("d*.post_prompt.json") if not p.name.startswith("d10")
)


@pytest.mark.parametrize("case", _0_3_CASES)
def test_recorded_0_3_64_answers(object_info: dict, case: str) -> None:
    recorded = json.loads((CAPTURES_0_3 / f"{case}.post_prompt.json").read_text())
    result = validate_prompt(
        recorded["request"], object_info, version="0.3.64", number=recorded["body"].get("number", 0)
    )
    assert result.status == recorded["status"]
    expected = dict(recorded["body"])
    if result.ok:
        expected["prompt_id"] = result.prompt_id
    assert result.body == expected


@pytest.mark.parametrize("path", sorted(LTX2_API_DIR.glob("*.api.json")), ids=lambda p: p.name)
def test_every_ltx2_export_a_real_server_accepted_is_accepted(object_info: dict, path: Path) -> None:
    graph = json.loads(path.read_text())
    folders: dict[str, list[str]] = {}
    inputs = []
    for node in graph.values():
        for name, value in node["inputs"].items():
            folder = MODEL_COMBOS.get((node["class_type"], name))
            if folder:
                folders.setdefault(folder, []).append(value)
            if (node["class_type"], name) in (("LoadImage", "image"), ("LoadVideo", "file")):
                inputs.append(value)
    filled = object_info_with_files(object_info, folders, inputs)
    result = validate_prompt(graph, filled)
    assert (result.status, result.node_errors) == (200, {})
    assert result.outputs == [node_id for node_id, node in graph.items() if node["class_type"] == "SaveVideo"]

    missing = validate_prompt(graph, object_info)
    assert missing.error_type == "prompt_outputs_failed_validation"
    kinds = {error["type"] for entry in missing.node_errors.values() for error in entry["errors"]}
    assert kinds <= {"value_not_in_list", "custom_validation_failed"}


def _resize(**inputs: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {"input": ["1", 0], "scale_method": "area", **inputs},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "r"}},
    }


def test_dynamic_combo_nested_keys_are_validated(object_info: dict) -> None:
    ok = _resize(
        **{
            "resize_type": "scale dimensions",
            "resize_type.width": 32,
            "resize_type.height": 0,
            "resize_type.crop": "center",
        }
    )
    assert validate_graph(ok, object_info).status == 200

    missing = _resize(
        **{"resize_type": "scale dimensions", "resize_type.width": 32, "resize_type.crop": "center"}
    )
    (error,) = validate_graph(missing, object_info).node_errors["2"]["errors"]
    assert (error["type"], error["details"]) == ("required_input_missing", "resize_type.height")

    too_big = _resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 9.0})
    (error,) = validate_graph(too_big, object_info).node_errors["2"]["errors"]
    assert (error["type"], error["message"]) == ("value_bigger_than_max", "Value 9.0 bigger than max of 8.0")

    bad_key = _resize(resize_type="scale sideways")
    (error,) = validate_graph(bad_key, object_info).node_errors["2"]["errors"]
    assert error["type"] == "value_not_in_list" and error["details"].startswith(
        "resize_type: 'scale sideways' not in"
    )


def test_v3_combo_value_not_in_list_keeps_its_encoding(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["2", 0], "filename_prefix": "v", "format": "mkv", "codec": "auto"},
        },
    }
    result = validate_graph(graph, object_info)
    (error,) = result.node_errors["3"]["errors"]
    assert error["details"] == "format: 'mkv' not in ['auto', 'mp4']"
    assert error["extra_info"]["input_config"][0] == "COMBO"
    # The error is on the output node itself, so it is repeated in error.details.
    assert result.body["error"]["details"] == "Value not in list: format: 'mkv' not in ['auto', 'mp4']"


def test_matchtype_outputs_take_the_type_linked_into_them(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
        "2": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["1", 0],
                "resize_type": "scale width",
                "resize_type.width": 32,
                "scale_method": "area",
            },
        },
        "3": {"class_type": "GetImageSize", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    (error,) = validate_graph(graph, object_info).node_errors["3"]["errors"]
    assert error["type"] == "return_type_mismatch"
    assert error["details"] == "image, received_type(MASK) mismatch input_type(IMAGE)"
    assert error["extra_info"]["linked_node"] == ["2", 0]

    latent = copy.deepcopy(graph)
    latent["1"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    latent["4"]["inputs"]["source"] = ["2", 0]  # "*" accepts anything, so node 2 itself is checked
    (error,) = validate_graph(latent, object_info).node_errors["2"]["errors"]
    assert error["details"] == "input, received_type(LATENT) mismatch input_type(COMFY_MATCHTYPE_V3)"


def test_links_to_missing_nodes_fail_like_comfyui(object_info: dict) -> None:
    inner = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["99", 0]}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    result = validate_graph(inner, object_info)
    (error,) = result.node_errors["1"]["errors"]
    assert (error["type"], error["details"]) == ("exception_during_inner_validation", "'99'")
    assert (
        error["extra_info"]["linked_node"] == ["1", 0] and error["extra_info"]["exception_type"] == "KeyError"
    )
    assert result.body["error"]["details"] == ""

    direct = {"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0], "filename_prefix": "x"}}}
    result = validate_graph(direct, object_info)
    assert result.node_errors["2"]["errors"][0]["type"] == "exception_during_validation"
    assert result.body["error"]["details"] == "Exception when validating node: '99'"


def test_conversions_are_applied_to_the_returned_prompt_only(object_info: dict) -> None:
    capture = _capture("a_video_emptyimage_createvideo_savevideo_webp.json")
    request = copy.deepcopy(capture["request"])
    result = validate_prompt(request, object_info)
    assert request == capture["request"], "the caller's prompt must not be modified"
    recorded_history = next(iter(capture["history"].values()))
    assert result.prompt == recorded_history["prompt"][2]  # fps 8 became 8.0, as recorded
    assert result.outputs == recorded_history["prompt"][4] == ["4", "3"]


def test_invalid_input_type_messages_are_pythons(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": "fast"}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["2", 0], "filename_prefix": "v", "format": "auto", "codec": "auto"},
        },
    }
    (error,) = validate_graph(graph, object_info).node_errors["2"]["errors"]
    assert error["type"] == "invalid_input_type"
    assert error["message"] == "Failed to convert an input value to a FLOAT value"
    assert error["details"] == "fps, fast, could not convert string to float: 'fast'"


def test_file_inputs_use_the_callback_and_annotations(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["1", 0], "filename_prefix": "v", "format": "auto", "codec": "auto"},
        },
    }
    (error,) = validate_graph(graph, object_info).node_errors["1"]["errors"]
    assert error["details"] == "file - Invalid video file: clip.mp4"

    filled = object_info_with_files(object_info, {}, ["clip.mp4", "photo.png"])
    assert validate_graph(graph, filled).ok
    graph["1"]["inputs"]["file"] = "clip.mp4 [input]"
    assert validate_graph(graph, filled).ok

    seen = []
    graph["1"]["inputs"]["file"] = "jobs/abc/clip.mp4"
    callback = lambda cls, name, value: seen.append((cls, name, value)) or True  # noqa: E731
    assert validate_graph(graph, object_info, input_file_exists=callback).ok
    assert seen == [("LoadVideo", "file", "jobs/abc/clip.mp4")]


def test_partial_execution_targets_limit_the_outputs(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "DoubleValue", "inputs": {"seed": 1}},
        "2": {"class_type": "DoubleValue", "inputs": {"seed": 2}},
    }
    assert validate_prompt(graph, object_info).outputs == ["2", "1"]
    assert validate_prompt({"prompt": graph, "partial_execution_targets": ["1"]}, object_info).outputs == [
        "1"
    ]


def test_double_classes_need_no_seed(object_info: dict) -> None:
    graph = {
        "1": {"class_type": "DoubleSleep", "inputs": {"seconds": 0.5}},
        "2": {
            "class_type": "DoubleOutputFile",
            "inputs": {"size_bytes": 10, "extension": "mp4", "filename_prefix": "x"},
        },
    }
    assert validate_graph(graph, object_info).ok
    for name in (
        "DoubleSleep",
        "DoubleFail",
        "DoubleCrash",
        "DoubleHang",
        "DoubleDropSockets",
        "DoubleOutputFile",
        "DoubleValue",
    ):
        assert "seed" in object_info[name]["input"]["optional"]


def test_version_0_3_64_names_unknown_classes_invalid_prompt(object_info: dict) -> None:
    graph = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    assert validate_graph(graph, object_info).error_type == "missing_node_type"
    old = validate_graph(graph, object_info, version="0.3.64")
    assert old.body["error"]["message"] == "Cannot execute because node NoSuchNode does not exist."
    with pytest.raises(ValueError, match="version must be one of"):
        validate_graph(graph, object_info, version="1.0")


def test_object_info_with_files_fills_both_combo_encodings(object_info: dict) -> None:
    filled = object_info_with_files(
        object_info,
        {
            "checkpoints": ["b.safetensors", "a.safetensors"],
            "unet": ["u1.safetensors"],
            "diffusion_models": ["u0.safetensors"],
            "vae": ["v.safetensors"],
        },
        ["x.png", "clip.mp4", "tone.wav", "notes.txt", "jobs/abc/y.png"],
    )
    assert filled["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "a.safetensors",
        "b.safetensors",
    ]
    assert filled["LTXVAudioVAELoader"]["input"]["required"]["ckpt_name"][1]["options"] == [
        "a.safetensors",
        "b.safetensors",
    ]
    assert filled["UNETLoader"]["input"]["required"]["unet_name"][0] == ["u0.safetensors", "u1.safetensors"]
    assert filled["VAELoader"]["input"]["required"]["vae_name"][0] == ["v.safetensors", "pixel_space"]
    assert filled["LoadImage"]["input"]["required"]["image"][0] == ["jobs/abc/y.png", "x.png"]
    assert filled["LoadVideo"]["input"]["required"]["file"][1]["options"] == ["clip.mp4"]
    assert filled["LoadAudio"]["input"]["required"]["audio"][1]["options"] == ["clip.mp4", "tone.wav"]
    # The input is untouched and unchanged classes are shared, not copied.
    assert object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == []
    assert filled["KSampler"] is object_info["KSampler"]
