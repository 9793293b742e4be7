"""Malformed jobs: each gets a structured, one-line error; the worker keeps serving; nothing is left behind."""

from __future__ import annotations

import base64
import itertools

import pytest

from tests.integration.harness import make_worker, write_small_model_set, zero_time_workflow

pytestmark = pytest.mark.slow
_colors = itertools.count(5000)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
GOOD = zero_time_workflow(1)


def wf(**changes):
    """The good workflow with node 1's inputs changed."""
    workflow = {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in GOOD.items()}
    workflow["1"]["inputs"].update(changes)
    return workflow


# (case id, job input, a substring the error must contain)
BAD_JOBS = [
    # (A non-object input never reaches the handler through the local API, which answers 422
    # itself; tests/unit/test_schema.py and the platform-mode tests cover it.)
    ("nothing", {}, "give either 'workflow'"),
    ("both", {"workflow": GOOD, "template": "t2v"}, "not both"),
    ("workflow-json-text", {"workflow": '{"1": {}}'}, "send JSON, not JSON text"),
    ("workflow-list", {"workflow": [1, 2]}, "input.workflow"),
    ("workflow-empty", {"workflow": {}}, "is empty"),
    ("ui-format", {"workflow": {"nodes": [], "links": [], "version": 0.4}}, "Export (API)"),
    ("node-not-object", {"workflow": {"1": "EmptyImage"}}, "input.workflow['1']: expected"),
    ("no-class-type", {"workflow": {"1": {"inputs": {}}}}, "has no class_type"),
    (
        "inputs-not-object",
        {"workflow": {"1": {"class_type": "EmptyImage", "inputs": []}}},
        "inputs: expected an object",
    ),
    ("dangling-link", {"workflow": {"2": GOOD["2"]}}, "links to node '1', which is not in the workflow"),
    (
        "unknown-class",
        {"workflow": {**GOOD, "9": {"class_type": "VHS_VideoCombine", "inputs": {}}}},
        "is not installed",
    ),
    (
        "missing-input",
        {"workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}, "2": GOOD["2"]}},
        "Required input is missing",
    ),
    ("below-min", {"workflow": wf(width=0)}, "smaller than min"),
    ("above-max", {"workflow": wf(height=99999)}, "bigger than max"),
    ("wrong-type", {"workflow": wf(batch_size="many")}, "input 'batch_size'"),
    ("no-output-node", {"workflow": {"1": GOOD["1"]}}, "ComfyUI rejected the workflow"),
    (
        "bad-combo",
        {
            "workflow": {
                "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.ckpt"}},
                "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
            }
        },
        "not one of the available values",
    ),
    ("params-unknown-node", {"workflow": GOOD, "params": {"7": {"width": 8}}}, "no node '7' in the workflow"),
    ("params-unknown-input", {"workflow": GOOD, "params": {"1": {"widht": 8}}}, "has no input 'widht'"),
    ("params-not-mapping", {"workflow": GOOD, "params": {"1": 5}}, "input.params.1"),
    ("unknown-key", {"workflow": GOOD, "prompt": "hello"}, "unknown keys prompt"),
    ("timeout-negative", {"workflow": GOOD, "timeout": -5}, "input.timeout"),
    ("timeout-too-long", {"workflow": GOOD, "timeout": 10**9}, "JOB_TIMEOUT_MAX"),
    ("timeout-text", {"workflow": GOOD, "timeout": "soon"}, "input.timeout"),
    ("delivery-unknown", {"workflow": GOOD, "output": {"delivery": "fax"}}, "input.output.delivery"),
    ("output-unknown-key", {"workflow": GOOD, "output": {"format": "gif"}}, "input.output.format"),
    ("images-not-list", {"workflow": GOOD, "images": {"name": "a.png"}}, "input.images"),
    ("image-no-name", {"workflow": GOOD, "images": [{"image": PNG}]}, "input.images[0].name"),
    (
        "image-path-traversal",
        {"workflow": GOOD, "images": [{"name": "../../etc/cron.d/x", "image": PNG}]},
        "inside the input folder",
    ),
    (
        "image-absolute",
        {"workflow": GOOD, "images": [{"name": "/etc/passwd", "image": PNG}]},
        "inside the input folder",
    ),
    ("image-hidden", {"workflow": GOOD, "images": [{"name": ".bashrc", "image": PNG}]}, "hidden"),
    (
        "image-bad-base64",
        {"workflow": GOOD, "images": [{"name": "a.png", "image": "***not base64***"}]},
        "not valid base64",
    ),
    (
        "image-file-url",
        {"workflow": GOOD, "images": [{"name": "a.png", "image": "file:///etc/passwd"}]},
        "only http(s) URLs",
    ),
    (
        "image-private-url",
        {"workflow": GOOD, "images": [{"name": "a.png", "image": "http://169.254.169.254/latest/meta-data"}]},
        "not a public address",
    ),
    (
        "image-loopback-url",
        {"workflow": GOOD, "images": [{"name": "a.png", "image": "http://127.0.0.1:1/x.png"}]},
        "not a public address",
    ),
    (
        "two-bad-urls-reported-together",
        {
            "workflow": GOOD,
            "images": [
                {"name": "a.png", "image": "http://127.0.0.1:1/a.png"},
                {"name": "b.png", "image": "http://10.0.0.1/b.png"},
            ],
        },
        "(+1 more, see details)",
    ),
    (
        "image-duplicate-name",
        {"workflow": GOOD, "images": [{"name": "a.png", "image": PNG}, {"name": "a.png", "image": PNG}]},
        "given more than once",
    ),
    (
        "image-missing-for-loadimage",
        {
            "workflow": {
                "1": {"class_type": "LoadImage", "inputs": {"image": "absent.png"}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
            }
        },
        "Invalid image file: absent.png",
    ),
    ("template-unknown", {"template": "txt2img"}, "t2v"),
    ("template-frames", {"template": "t2v", "frames": 120}, "frames"),
    ("template-size", {"template": "t2v", "width": 1000}, "width"),
    ("template-param-unknown", {"template": "t2v", "negative": "blurry"}, "negative"),
    ("template-missing-media", {"template": "i2v", "prompt": "x"}, "image"),
    ("template-bad-media", {"template": "i2v", "image": "ftp://example.com/a.png"}, "only http(s) URLs"),
    (
        "template-params-unknown-node",
        {"template": "t2v", "params": {"nope": {"text": "x"}}},
        "no node 'nope'",
    ),
]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    lock_path, models = write_small_model_set(root)
    process = make_worker(root, MODELS_LOCK=str(lock_path), MODELS_DIR=str(models), MODEL_SET="fp8")
    process.start()
    yield process
    process.stop()


def test_there_are_at_least_thirty_cases():
    assert len(BAD_JOBS) >= 30
    assert len({case[0] for case in BAD_JOBS}) == len(BAD_JOBS)


@pytest.mark.parametrize(("case", "job_input", "expected"), BAD_JOBS, ids=[c[0] for c in BAD_JOBS])
def test_bad_job_gets_a_clear_error_and_leaves_nothing(worker, case, job_input, expected):
    answer = worker.runsync(job_input)
    assert answer.get("status") == "FAILED", answer
    error = answer["error"]
    assert "\n" not in error
    assert expected in error, f"{case}: {error}"
    assert "Traceback" not in error and "internal worker error" not in error
    assert worker.leftover_files() == []


def test_the_worker_still_serves_after_every_bad_job(worker):
    answer = worker.runsync({"workflow": zero_time_workflow(next(_colors))})
    assert answer["status"] == "COMPLETED", answer
    assert worker.process.poll() is None
    assert worker.leftover_files() == []
