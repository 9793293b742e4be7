"""Every request example in README.md and docs/*.md runs through the real worker's local API.

So the documentation cannot rot: an example whose parameters the worker refuses, whose template
was renamed, or whose output shape changed fails here. See tests/docs/examples.py for how an
example is found, what its marker comment may expect, and what is filled in to make it runnable.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.request
from typing import Any

import pytest

from handler.templates import template_media_slots
from tests.docs.conftest import stand_in
from tests.docs.examples import DocExample, Expectation, collect_examples, make_runnable
from tests.integration.harness import REPO, WorkerProcess

pytestmark = pytest.mark.slow
EXAMPLES = collect_examples(REPO)
# A default-size template job takes a few seconds against the double; allow for a slow machine.
JOB_SECONDS = 120


def test_the_documentation_has_request_examples() -> None:
    sources = {example.source for example in EXAMPLES}
    assert "README.md" in sources and "docs/deploy-runpod.md" in sources, sources
    assert len(EXAMPLES) >= 8


def check_output_item(item: dict[str, Any]) -> None:
    """An output entry is either inline bytes or a URL, and its size and hash describe those bytes."""
    if "data" in item:
        data = base64.b64decode(item["data"])
    else:
        with urllib.request.urlopen(item["url"], timeout=30) as response:
            data = response.read()
    assert item["size"] == len(data), item
    assert item["sha256"] == hashlib.sha256(data).hexdigest(), item


def run_example(example: DocExample, worker: WorkerProcess, media_base_url: str) -> None:
    """Send the runnable form of an example and check the answer against what the docs promise."""
    runnable = make_runnable(
        example, media_base_url=media_base_url, stand_in=stand_in, template_media=template_media_slots
    )
    answer = worker.runsync(runnable.input, timeout=JOB_SECONDS)
    context = f"{example.id} (filled in: {'; '.join(runnable.changes) or 'nothing'})"

    if example.expect.outcome == "fails":
        assert answer.get("status") == "FAILED", f"{context}: expected a failure, got {answer}"
        assert example.expect.detail in answer["error"], f"{context}: {answer['error']}"
        return

    assert answer.get("status") == "COMPLETED", f"{context}: {answer}"
    output = answer["output"]
    assert output["status"] == "success", f"{context}: {output}"
    assert output["outputs"], f"{context}: no output files"
    for item in output["outputs"]:
        check_output_item(item)
    template = runnable.input.get("template")
    if template is not None:
        assert output["template"] == template
        assert any(item["type"] == "video" and item["mime"] == "video/mp4" for item in output["outputs"]), (
            output
        )
        for name, value in runnable.input.items():
            if name in ("frames", "width", "height", "fps", "seed", "steps", "cfg", "prompt"):
                assert output["parameters"][name] == value, f"{context}: parameter {name}"
    wanted = (runnable.input.get("output") or {}).get("delivery")
    if wanted in ("url", "inline"):
        assert output["delivery"] == wanted, f"{context}: {output['delivery']}"
        key = "url" if wanted == "url" else "data"
        assert all(key in item for item in output["outputs"]), output["outputs"]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_runs_as_documented(
    example: DocExample, docs_worker: WorkerProcess, media_base_url: str
) -> None:
    if example.expect.outcome == "skip":
        pytest.skip(f"{example.id} is marked skip: {example.expect.detail}")
    run_example(example, docs_worker, media_base_url)


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ({"input": {"template": "t2v", "prompt": "x", "frames": 120}}, Expectation("completed")),
        (
            {"input": {"template": "t2v", "prompt": "x", "frames": 121, "width": 256, "height": 128}},
            Expectation("fails", "frames"),
        ),
        ({"input": {"template": "t2v", "prompt": "x", "frames": 120}}, Expectation("fails", "no such text")),
    ],
    ids=["refused-but-documented-as-working", "working-but-documented-as-failing", "fails-with-other-text"],
)
def test_an_example_that_does_not_do_what_its_docs_say_fails(
    body: dict[str, Any], expect: Expectation, docs_worker: WorkerProcess, media_base_url: str
) -> None:
    with pytest.raises(AssertionError):
        run_example(DocExample("control.md", 1, body, expect), docs_worker, media_base_url)
