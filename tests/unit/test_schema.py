"""Job input validation: every problem reported at once, each naming where it is."""

from __future__ import annotations

import base64

import pytest

from handler.job.schema import (
    UI_FORMAT_HELP,
    InputError,
    apply_overrides,
    class_problems,
    decode_base64,
    override_problems,
    parse_job_input,
    parse_media_ref,
    safe_relative_name,
)

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}
OBJECT_INFO = {
    "EmptyImage": {"input": {"required": {"width": [], "height": [], "batch_size": [], "color": []}}},
    "SaveImage": {
        "input": {"required": {"images": [], "filename_prefix": []}, "hidden": {"prompt": "PROMPT"}},
        "output_node": True,
    },
    "ResizeImageMaskNode": {"input": {"required": {"input": [], "resize_type": []}}},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 20).decode()


def parse(raw):
    return parse_job_input(raw, default_timeout=600, max_timeout=3600)


def problems_of(raw) -> list[str]:
    with pytest.raises(InputError) as caught:
        parse(raw)
    return caught.value.problems


def test_valid_workflow_job():
    request = parse({"workflow": WORKFLOW, "images": [{"name": "in/a.png", "image": PNG}], "timeout": 30})
    assert request.workflow == WORKFLOW
    assert request.timeout == 30
    assert request.media["images[0]"].kind == "base64"
    assert request.output.delivery == "auto"


def test_default_timeout_applies():
    assert parse({"workflow": WORKFLOW}).timeout == 600


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        {
            "workflow": {
                "1": {"inputs": {}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}},
            },
            "images": [{"name": "../etc/passwd", "image": "!!!"}, {"name": "a.png"}],
            "timeout": -1,
            "output": {"delivery": "email"},
        }
    )
    text = "\n".join(problems)
    assert "input.images[0].name: must be a relative name inside the input folder" in text
    assert "input.images[1].image: Field required" in text
    assert "input.timeout: Input should be greater than 0" in text
    assert "input.output.delivery: Input should be 'auto', 'inline' or 'url'" in text
    assert "input.workflow['1']: has no class_type" in text
    assert "input.workflow['2'].inputs.images: links to node '9', which is not in the workflow" in text
    assert len(problems) >= 6


def test_a_workflow_sent_as_json_text_is_one_clear_problem():
    assert problems_of({"workflow": '{"1": {}}'}) == [
        "input.workflow: expected the workflow object itself, got a string (send JSON, not JSON text)"
    ]


def test_ui_format_gets_export_instructions():
    problems = problems_of({"workflow": {"nodes": [], "links": [], "version": 0.4}})
    assert problems == [UI_FORMAT_HELP]
    assert "Export (API)" in UI_FORMAT_HELP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("just text", "input: expected an object, got str"),
        ({}, "input: give either 'workflow'"),
        ({"workflow": WORKFLOW, "template": "t2v"}, "not both"),
        ({"workflow": '{"1": {}}'}, "got a string (send JSON, not JSON text)"),
        ({"workflow": WORKFLOW, "prompt": "a cat"}, "unknown keys prompt"),
        ({"workflow": WORKFLOW, "timeout": 99999}, "input.timeout: at most 3600 seconds (JOB_TIMEOUT_MAX)"),
        (
            {
                "workflow": WORKFLOW,
                "images": [{"name": "a.png", "image": PNG}, {"name": "a.png", "image": PNG}],
            },
            "'a.png' is given more than once",
        ),
        ({"workflow": {}}, "input.workflow: is empty"),
        ({"workflow": WORKFLOW, "params": {"1": "x"}}, "input.params.1: Input should be a valid dictionary"),
    ],
)
def test_bad_inputs(raw, expected):
    assert any(expected in p for p in problems_of(raw)), problems_of(raw)


@pytest.mark.parametrize(
    "name", ["/abs.png", "a/../b.png", "..", "./a.png", "a\\b.png", ".hidden.png", "", " a.png", "a//b.png"]
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(ValueError):
        safe_relative_name(name)


def test_safe_names():
    assert safe_relative_name("a.png") == "a.png"
    assert safe_relative_name("sub/dir/a b.png") == "sub/dir/a b.png"


def test_media_refs():
    assert parse_media_ref("data:image/png;base64," + PNG, "x").mime == "image/png"
    assert parse_media_ref("https://example.com/a.png?sig=1", "x").kind == "url"
    assert parse_media_ref(PNG, "x").kind == "base64"
    for bad, message in [
        ("ftp://host/file", "only http(s) URLs"),
        ("data:image/png,rawtext", "data URIs must be base64"),
        ("not base64 at all!", "not valid base64"),
        (12, "got int"),
        ("file:///etc/passwd", "only http(s) URLs"),
    ]:
        with pytest.raises(InputError) as caught:
            parse_media_ref(bad, "input.images[0].image")
        assert message in caught.value.problems[0]
        assert caught.value.problems[0].startswith("input.images[0].image")


def test_decode_base64_variants_and_cap():
    data = b"\xfb\xff" * 10
    assert decode_base64(base64.b64encode(data).decode(), "x", 100) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("="), "x", 100) == data
    assert (
        decode_base64(
            "\n".join([base64.b64encode(data).decode()[:8], base64.b64encode(data).decode()[8:]]), "x", 100
        )
        == data
    )
    with pytest.raises(InputError, match="more than the 10-byte limit"):
        decode_base64(base64.b64encode(b"x" * 100).decode(), "x", 10)
    with pytest.raises(InputError, match="not valid base64"):
        decode_base64("abc$", "x", 100)


def test_class_and_override_checks_use_the_servers_schemas():
    workflow = {**WORKFLOW, "3": {"class_type": "NoSuchNode", "inputs": {}}}
    assert class_problems(workflow, OBJECT_INFO) == [
        "input.workflow['3']: node class 'NoSuchNode' is not installed in this worker's ComfyUI (a custom node this image does not include)"
    ]
    problems = override_problems(WORKFLOW, {"1": {"widht": 3, "width": 9}, "7": {"x": 1}}, OBJECT_INFO)
    assert problems == [
        "input.params['1'].widht: node 1 (EmptyImage) has no input 'widht'; its inputs: batch_size, color, height, width",
        "input.params['7']: no node '7' in the workflow",
    ]
    resize = {"5": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["1", 0]}}}
    assert override_problems(resize, {"5": {"resize_type.width": 640}}, OBJECT_INFO) == []
    assert override_problems(WORKFLOW, {"2": {"prompt": "x"}}, OBJECT_INFO) == []  # hidden inputs count


def test_apply_overrides():
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}
    apply_overrides(workflow, {"1": {"width": 128, "height": 32}})
    assert workflow["1"]["inputs"] == {"width": 128, "height": 32}
