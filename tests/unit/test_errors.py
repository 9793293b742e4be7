"""ComfyUI's recorded error answers become one clear line plus node-level details."""

from __future__ import annotations

import json
from pathlib import Path

from handler.comfy.errors import execution_failure, interrupted_failure, validation_failure

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "comfyui"


def response(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())["response"]


def test_validation_400_lists_every_node_problem():
    failure = validation_failure(response("b_validation_error_prompt.json"))
    result = failure.as_result()
    assert result["error"].startswith(
        "ComfyUI rejected the workflow: node 1 (EmptyImage) input 'width': Value 0 smaller than min of 1"
    )
    assert "(+1 more" in result["error"]
    assert "\n" not in result["error"]
    assert result["details"] == [
        {
            "node_id": "1",
            "class_type": "EmptyImage",
            "input": "width",
            "message": "Value 0 smaller than min of 1",
            "type": "value_smaller_than_min",
        },
        {
            "node_id": "2",
            "class_type": "CreateVideo",
            "input": "fps",
            "message": "Required input is missing",
            "type": "required_input_missing",
        },
    ]


def test_unknown_class_has_no_node_errors_but_names_the_node():
    failure = validation_failure(response("b2_validation_unknown_class.json"))
    assert (
        failure.message
        == "ComfyUI rejected the workflow: node 1: Node 'NoSuchNode' not found. The custom node may not be installed."
    )
    assert failure.details[0]["class_type"] == "NoSuchNode"


def test_missing_input_file_names_the_file():
    failure = validation_failure(response("b4_validation_loadimage_missing.json"))
    assert "Invalid image file: nope.png" in failure.message
    assert failure.details[0]["input"] == "image"


def test_invalid_model_name_lists_available_names_and_the_active_set():
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
        },
        "node_errors": {
            "92:1": {
                "class_type": "CheckpointLoaderSimple",
                "dependent_outputs": ["75"],
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "ckpt_name: 'x.safetensors' not in [...]",
                        "extra_info": {
                            "input_name": "ckpt_name",
                            "received_value": "x.safetensors",
                            "input_config": [["ltx-2-19b-dev-fp8.safetensors", "other.safetensors"], {}],
                        },
                    }
                ],
            }
        },
    }
    failure = validation_failure(
        body, model_hint="the active model set 'fp8' provides: ltx-2-19b-dev-fp8.safetensors"
    )
    detail = failure.details[0]
    assert (
        detail["message"]
        == "'x.safetensors' is not one of the available values; available: ltx-2-19b-dev-fp8.safetensors, other.safetensors"
    )
    assert detail["hint"].startswith("the active model set 'fp8'")
    v3 = {
        "node_errors": {
            "5": {
                "class_type": "X",
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "extra_info": {
                            "input_name": "m",
                            "received_value": "a",
                            "input_config": ["COMBO", {"options": ["b", "c"]}],
                        },
                    }
                ],
            }
        }
    }
    assert validation_failure(v3).details[0]["message"].endswith("available: b, c")


def test_execution_error_carries_node_exception_and_traceback_tail():
    job = json.loads((CAPTURES / "GET_api_jobs_id_failed_ltx2_t2v.json").read_text())
    failure = execution_failure(job["execution_error"])
    assert failure.message == (
        "ComfyUI failed while running node 92:48 (LTXVAudioVAELoader): SafetensorError: "
        "Error while deserializing header: header too large"
    )
    detail = failure.details[0]
    assert detail["exception_type"] == "safetensors._safetensors_rust.SafetensorError"
    assert 0 < len(detail["traceback"]) <= 3


def test_interrupt():
    failure = interrupted_failure(
        {"node_id": "3", "node_type": "ImageScaleBy"}, "the job timed out after 5 s"
    )
    assert failure.as_result() == {
        "error": "the job timed out after 5 s",
        "details": [{"node_id": "3", "class_type": "ImageScaleBy", "message": "the job timed out after 5 s"}],
    }
