"""What a job is told when the worker cannot serve the models it needs."""

from __future__ import annotations

import pytest

from tests.integration.harness import make_worker, write_small_model_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def incomplete_worker(tmp_path_factory):
    """fp8 set with the spatial upscaler missing from every place the worker looks."""
    root = tmp_path_factory.mktemp("incomplete")
    lock_path, models = write_small_model_set(root)
    (models / "latent_upscale_models" / "ltx-2-spatial-upscaler-x2-1.0.safetensors").unlink()
    worker = make_worker(root, MODELS_LOCK=str(lock_path), MODELS_DIR=str(models), MODEL_SET="fp8")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def slim_worker(tmp_path_factory):
    """A slim worker with no MODEL_SET and nothing anywhere."""
    worker = make_worker(tmp_path_factory.mktemp("slim"))
    worker.start()
    yield worker
    worker.stop()


def test_a_missing_file_is_named_with_every_place_looked(incomplete_worker):
    answer = incomplete_worker.runsync({"template": "t2v", "prompt": "x", "frames": 9})
    assert answer["status"] == "FAILED"
    error = answer["error"]
    assert (
        "latent_upscale_models/ltx-2-spatial-upscaler-x2-1.0.safetensors, which was not found; looked in:"
        in error
    )
    assert str(incomplete_worker.root / "models") in error


def test_a_model_of_another_set_is_refused_by_name(incomplete_worker):
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-2-19b-dev.safetensors"}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    error = incomplete_worker.runsync({"workflow": workflow})["error"]
    assert "belongs to model set bf16, not to this worker's set fp8" in error


def test_the_report_in_results_shows_where_models_came_from(incomplete_worker):
    workflow = {"1": {"class_type": "DoubleValue", "inputs": {"seed": 1}}}
    output = incomplete_worker.runsync({"workflow": workflow})["output"]
    report = output["models"]
    assert report["model_set"] == "fp8" and report["complete"] is False
    assert {f["source"] for f in report["files"]} == {"models_dir"}
    assert [m["file"] for m in report["missing"]] == [
        "latent_upscale_models/ltx-2-spatial-upscaler-x2-1.0.safetensors"
    ]


def test_slim_without_models_says_how_to_choose_a_set(slim_worker):
    answer = slim_worker.runsync({"template": "t2v", "prompt": "x"})
    assert answer["status"] == "FAILED"
    assert "MODEL_SET" in answer["error"] and "bf16, fp8" in answer["error"]
    # A workflow that needs no models still runs on such a worker.
    ok = slim_worker.runsync({"workflow": {"1": {"class_type": "DoubleValue", "inputs": {"seed": 2}}}})
    assert ok["status"] == "COMPLETED", ok
