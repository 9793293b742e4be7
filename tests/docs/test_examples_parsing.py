"""How documentation examples are found and made runnable (tests/docs/examples.py): pure, fast."""

from __future__ import annotations

import base64

import pytest

from handler.templates import template_media_slots
from tests.docs.examples import (
    DocExample,
    ExampleError,
    Expectation,
    StandIn,
    examples_in,
    make_runnable,
    sniff_elided_mime,
)

PNG = StandIn("image/png", b"\x89PNG\r\n\x1a\n-full-png")
MP4 = StandIn("video/mp4", b"\x00\x00\x00\x20ftypisom-full-mp4")


def stand_in(mime: str) -> StandIn:
    return {"image/png": PNG, "video/mp4": MP4}[mime]


def runnable(body: dict, base: str = "http://127.0.0.1:9") -> dict:
    example = DocExample("doc.md", 1, body, Expectation("completed"))
    return make_runnable(
        example, media_base_url=base, stand_in=stand_in, template_media=template_media_slots
    ).input


def test_blocks_with_several_values_and_non_requests() -> None:
    text = """
Intro.

```json
{"input": {"template": "t2v", "prompt": "a"}}
{"input": {"template": "t2v", "prompt": "b"}}
```

```json
{"status": "success", "outputs": []}
```
"""
    found = examples_in(text, "doc.md")
    assert [(e.line, e.body["input"]["prompt"]) for e in found] == [(5, "a"), (6, "b")]
    assert all(e.expect == Expectation("completed") for e in found)


def test_curl_bodies_in_shell_blocks_are_examples() -> None:
    text = """```sh
curl -s localhost:8000/runsync -H 'content-type: application/json' \\
  -d '{"input": {"template": "t2v", "prompt": "a lighthouse"}}'
curl -s localhost:8000/health
curl -X POST -d 'name=value' localhost
```"""
    [example] = examples_in(text, "doc.md")
    assert (example.line, example.body["input"]["prompt"]) == (3, "a lighthouse")


def test_markers_state_failure_or_skip() -> None:
    text = """<!-- example: fails "must be 8n+1" -->
```json
{"input": {"template": "t2v", "prompt": "x", "frames": 120}}
```

<!-- example: skip needs a GPU -->
```json
{"input": {"template": "t2v", "prompt": "x"}}
```"""
    failing, skipped = examples_in(text, "doc.md")
    assert failing.expect == Expectation("fails", "must be 8n+1")
    assert skipped.expect == Expectation("skip", "needs a GPU")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('```json\n{"input": {}\n```', "not valid JSON"),
        ('```json\n{"input": {}}\n', "never closed"),
        ('<!-- example: fails oops -->\n```json\n{"input": {}}\n```', 'fails "text"'),
        ('<!-- example: skip -->\n```json\n{"input": {}}\n```', "needs a reason"),
        ('```json\n{"input": {}, "s3Config": {}}\n```', "s3Config"),
        ('<!-- example: skip x -->\n```json\n{"input": {}}\n{"input": {}}\n```', "exactly one request"),
    ],
)
def test_malformed_examples_are_reported_with_their_place(text: str, message: str) -> None:
    with pytest.raises(ExampleError, match=r"doc\.md:") as error:
        examples_in(text, "doc.md")
    assert message in str(error.value)


def test_example_domain_urls_are_served_locally_and_others_refused() -> None:
    made = runnable({"input": {"template": "i2v", "prompt": "p", "image": "https://example.com/a/b.png?x=1"}})
    assert made["image"] == "http://127.0.0.1:9/a/b.png?x=1"
    made = runnable(
        {
            "input": {
                "workflow": {"1": {}},
                "images": [{"name": "n.png", "image": "https://cdn.example.org/n.png"}],
            }
        }
    )
    assert made["images"][0]["image"] == "http://127.0.0.1:9/n.png"
    with pytest.raises(ExampleError, match="from the internet"):
        runnable({"input": {"template": "i2v", "prompt": "p", "image": "https://huggingface.co/x.png"}})


def test_elided_media_becomes_a_complete_stand_in_of_the_same_form() -> None:
    made = runnable(
        {"input": {"template": "depth", "prompt": "p", "video": "data:video/mp4;base64,AAAAIGZ0eXBpc29t..."}}
    )
    assert made["video"] == "data:video/mp4;base64," + base64.b64encode(MP4.data).decode()
    made = runnable(
        {"input": {"workflow": {"...": "..."}, "images": [{"name": "photo.png", "image": "iVBORw0KGgo..."}]}}
    )
    assert made["images"][0]["image"] == base64.b64encode(PNG.data).decode()


def test_an_elided_workflow_uses_every_upload() -> None:
    made = runnable(
        {
            "input": {
                "workflow": {"...": "..."},
                "images": [
                    {"name": "a.png", "image": "iVBORw0KGgo..."},
                    {"name": "b/c.png", "image": "iVBORw0KGgo..."},
                ],
            }
        }
    )
    loads = [n["inputs"]["image"] for n in made["workflow"].values() if n["class_type"] == "LoadImage"]
    assert loads == ["a.png", "b/c.png"]
    assert sum(n["class_type"] == "SaveImage" for n in made["workflow"].values()) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"input": {"template": "t2v", "prompt": "..."}},
        {"input": {"workflow": {"1": {"class_type": "X", "inputs": {"...": 1}}}}},
        {"input": {"template": "i2v", "prompt": "p", "image": "bm90IG1lZGlh..."}},
    ],
)
def test_any_other_placeholder_makes_the_example_unrunnable(body: dict) -> None:
    with pytest.raises(ExampleError, match=r"doc\.md:1"):
        runnable(body)


def test_elided_media_types_are_told_from_their_first_bytes() -> None:
    assert sniff_elided_mime("iVBORw0KGgo...") == "image/png"
    assert sniff_elided_mime("/9j/4AAQ...") == "image/jpeg"
    assert sniff_elided_mime("AAAAIGZ0eXBpc29t...") == "video/mp4"
    assert sniff_elided_mime("data:image/webp;base64,UklGR...") == "image/webp"
    assert sniff_elided_mime("bm90IG1lZGlh...") is None
