"""The worker end to end through the RunPod SDK's own local API (/runsync), against the ComfyUI double.

One worker process serves the whole module, as on RunPod: a job's failure must never stop the
next job, and no job may leave files behind in ComfyUI's input, output or temp folders.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import itertools
import struct
import threading
from pathlib import Path

import pytest

from tests.integration.harness import make_worker, write_small_model_set, zero_time_workflow

pytestmark = pytest.mark.slow
_colors = itertools.count(1000)
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def media_url():
    """A plain HTTP server on loopback that serves a PNG at /photo.png."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/photo.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG_1PX)))
            self.end_headers()
            self.wfile.write(PNG_1PX)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    lock_path, models = write_small_model_set(root)
    process = make_worker(
        root,
        MODELS_LOCK=str(lock_path),
        MODELS_DIR=str(models),
        MODEL_SET="fp8",
        MEDIA_ALLOW_PRIVATE_URLS="true",
        INLINE_MAX_BYTES="1000000",
        INTERRUPT_GRACE="2",
        HF_TOKEN="hf_testtokenthatmustnotleak",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def clean(worker):
    """Every test ends with ComfyUI's folders as empty as they started."""
    yield
    assert worker.leftover_files() == [], "a job left files behind"


def completed(answer: dict) -> dict:
    assert answer.get("status") == "COMPLETED", answer
    output = answer["output"]
    assert output["status"] == "success"
    return output


def failed(answer: dict) -> str:
    assert answer.get("status") == "FAILED", answer
    assert "\n" not in answer["error"]
    return answer["error"]


def test_zero_time_workflow_returns_a_real_png(worker, clean):
    output = completed(worker.runsync({"workflow": zero_time_workflow(next(_colors))}))
    [item] = output["outputs"]
    data = base64.b64decode(item["data"])
    assert (item["type"], item["mime"], item["filename"]) == ("image", "image/png", "smoke_00001_.png")
    assert item["size"] == len(data)
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert png_size(data) == (64, 48)
    assert output["delivery"] == "inline"
    assert output["models"]["model_set"] == "fp8"
    assert set(output["timings"]) >= {"validate_ms", "queue_ms", "run_ms", "deliver_ms", "total_ms"}


def test_video_outputs_are_reported_as_video(worker, clean):
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 9, "color": next(_colors)},
        },
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["2", 0], "filename_prefix": "video/clip", "format": "auto", "codec": "auto"},
        },
        "4": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "anim",
                "fps": 8.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }
    output = completed(worker.runsync({"workflow": workflow}))
    kinds = {item["filename"]: (item["type"], item["mime"]) for item in output["outputs"]}
    assert kinds == {"clip_00001_.mp4": ("video", "video/mp4"), "anim_00001_.webp": ("video", "image/webp")}
    mp4 = base64.b64decode(next(i["data"] for i in output["outputs"] if i["filename"].endswith(".mp4")))
    assert mp4[4:8] == b"ftyp"


def test_an_identical_workflow_twice_gets_fresh_files_both_times(worker, clean):
    workflow = zero_time_workflow(next(_colors))
    first = completed(worker.runsync({"workflow": workflow}))
    second = completed(worker.runsync({"workflow": workflow}))
    # ComfyUI answers the second run's EmptyImage from its cache, but the output node runs again
    # (its prefix is scoped to the job), so the second job gets a real file, not a deleted one.
    for output in (first, second):
        assert png_size(base64.b64decode(output["outputs"][0]["data"])) == (64, 48)


def test_other_output_keys_and_audio(worker, clean):
    workflow = {
        "1": {
            "class_type": "DoubleOutputFile",
            "inputs": {
                "size_bytes": 3000,
                "extension": "mp4",
                "filename_prefix": "vhs/combined",
                "key": "gifs",
            },
        },
        "2": {
            "class_type": "DoubleOutputFile",
            "inputs": {
                "size_bytes": 500,
                "extension": "flac",
                "filename_prefix": "audio/voice",
                "key": "audio",
            },
        },
    }
    output = completed(worker.runsync({"workflow": workflow}))
    by_key = {item.get("key"): item for item in output["outputs"]}
    assert by_key["gifs"]["type"] == "video" and by_key["gifs"]["size"] == 3000
    assert by_key["audio"]["type"] == "audio" and by_key["audio"]["mime"] == "audio/flac"


@pytest.mark.parametrize("form", ["base64", "data_uri", "url"])
def test_images_reach_load_image_in_every_form(worker, clean, media_url, form):
    value = {
        "base64": base64.b64encode(PNG_1PX).decode(),
        "data_uri": "data:image/png;base64," + base64.b64encode(PNG_1PX).decode(),
        "url": f"{media_url}/photo.png",
    }[form]
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"uploads/in-{form}.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"from-{form}"}},
    }
    output = completed(
        worker.runsync({"workflow": workflow, "images": [{"name": f"uploads/in-{form}.png", "image": value}]})
    )
    assert png_size(base64.b64decode(output["outputs"][0]["data"])) == (1, 1)
    assert not (worker.data_dir / "input" / "uploads").exists(), "the folder the upload made is removed too"


def test_previews_are_cleaned_up_and_returned_only_when_asked(worker, clean):
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": next(_colors)},
        },
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kept"}},
    }
    plain = completed(worker.runsync({"workflow": workflow}))
    assert [item["filename"] for item in plain["outputs"]] == ["kept_00001_.png"]
    workflow["1"]["inputs"]["color"] = next(_colors)
    with_previews = completed(worker.runsync({"workflow": workflow, "output": {"previews": True}}))
    assert len(with_previews["outputs"]) == 2


def test_an_output_prefix_may_not_leave_the_output_folder(worker, clean):
    workflow = zero_time_workflow(next(_colors), prefix="../../escape")
    error = failed(worker.runsync({"workflow": workflow}))
    assert "filename_prefix '../../escape' leaves the output folder" in error


def test_params_override_the_workflow(worker, clean):
    workflow = zero_time_workflow(next(_colors))
    output = completed(worker.runsync({"workflow": workflow, "params": {"1": {"width": 32, "height": 16}}}))
    assert png_size(base64.b64decode(output["outputs"][0]["data"])) == (32, 16)


def test_t2v_template_end_to_end(worker, clean):
    output = completed(
        worker.runsync(
            {"template": "t2v", "prompt": "a red fox in the snow", "frames": 9, "width": 256, "height": 192}
        )
    )
    [video] = output["outputs"]
    assert (video["type"], video["mime"]) == ("video", "video/mp4")
    assert output["template"] == "t2v"
    used = output["parameters"]
    assert used["prompt"] == "a red fox in the snow"
    assert isinstance(used["seed"], int)
    assert (used["frames"], used["width"], used["height"]) == (9, 256, 192)
    again = completed(
        worker.runsync(
            {"template": "t2v", "prompt": "a red fox in the snow", "frames": 9, "seed": used["seed"]}
        )
    )
    assert again["parameters"]["seed"] == used["seed"]


def test_i2v_template_with_an_image_url_and_a_params_override(worker, clean, media_url):
    output = completed(
        worker.runsync(
            {
                "template": "i2v",
                "prompt": "waves",
                "image": f"{media_url}/photo.png",
                "frames": 9,
                "params": {"92:3": {"text": "overridden waves"}},
            }
        )
    )
    assert output["outputs"][0]["type"] == "video"
    assert output["parameters"]["image"]["file"].endswith(".png")


def test_template_parameter_errors_name_the_parameter(worker, clean):
    error = failed(worker.runsync({"template": "t2v", "frames": 120, "width": 1000}))
    assert error.startswith("invalid input: input.")
    assert "frames" in error or "width" in error
    assert "see details" in error
    assert "canny" in failed(worker.runsync({"template": "nope"}))
    assert "video" in failed(worker.runsync({"template": "canny", "prompt": "x"}))


def test_execution_errors_name_the_node_and_exception(worker, clean):
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": next(_colors)},
        },
        "2": {
            "class_type": "DoubleFail",
            "inputs": {
                "message": "CUDA out of memory",
                "exception_type": "torch.OutOfMemoryError",
                "value": ["1", 0],
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    error = failed(worker.runsync({"workflow": workflow}))
    # ComfyUI appends its out-of-memory tips to the message; the line stays one line.
    assert error.startswith(
        "ComfyUI failed while running node 2 (DoubleFail): OutOfMemoryError: CUDA out of memory"
    )


def test_comfyui_validation_errors_come_back_in_one_line(worker, clean):
    workflow = zero_time_workflow(next(_colors))
    workflow["1"]["inputs"]["width"] = 0
    error = failed(worker.runsync({"workflow": workflow}))
    assert (
        error
        == "ComfyUI rejected the workflow: node 1 (EmptyImage) input 'width': Value 0 smaller than min of 1"
    )


def test_an_unknown_model_lists_the_available_ones(worker, clean):
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    error = failed(worker.runsync({"workflow": workflow}))
    assert "'sdxl.safetensors' is not one of the available values" in error
    assert "ltx-2-19b-dev-fp8.safetensors" in error


def test_a_timeout_interrupts_comfyui_and_the_worker_goes_on(worker, clean):
    workflow = {
        "1": {"class_type": "DoubleSleep", "inputs": {"seconds": 30, "ticks": 300, "seed": next(_colors)}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    error = failed(worker.runsync({"workflow": workflow, "timeout": 0.5}))
    assert error.startswith(
        "the job timed out after 0.5 s at node 1 (DoubleSleep); ComfyUI stopped the prompt"
    )
    completed(worker.runsync({"workflow": zero_time_workflow(next(_colors))}))


def test_a_hung_comfyui_is_restarted(worker, clean):
    workflow = {
        "1": {"class_type": "DoubleHang", "inputs": {"seed": next(_colors)}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    error = failed(worker.runsync({"workflow": workflow, "timeout": 0.5}))
    assert "did not stop within 2 s (INTERRUPT_GRACE), so it is being restarted" in error
    completed(worker.runsync({"workflow": zero_time_workflow(next(_colors))}, timeout=90))


def test_a_comfyui_crash_fails_the_job_with_its_log_and_the_worker_recovers(worker, clean):
    workflow = {
        "1": {"class_type": "DoubleCrash", "inputs": {"exit_code": 139, "seed": next(_colors)}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    error = failed(worker.runsync({"workflow": workflow}))
    assert error.startswith("ComfyUI exited with code 139 while running the job")
    completed(worker.runsync({"workflow": zero_time_workflow(next(_colors))}, timeout=90))
    assert "ComfyUI exited with code 139" in worker.log_text()


def test_a_dropped_websocket_does_not_lose_the_job(worker, clean):
    workflow = {
        "1": {"class_type": "DoubleDropSockets", "inputs": {"seed": next(_colors)}},
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": next(_colors)},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "after-drop"}},
        "4": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    output = completed(worker.runsync({"workflow": workflow}))
    assert [item["filename"] for item in output["outputs"]] == ["after-drop_00001_.png"]
    assert "WebSocket" in worker.log_text()


def test_a_result_runpod_would_drop_is_refused_with_a_clear_error(worker, clean):
    workflow = {
        "1": {
            "class_type": "DoubleOutputFile",
            "inputs": {
                "size_bytes": 2_000_000,
                "extension": "mp4",
                "filename_prefix": "big",
                "seed": next(_colors),
            },
        }
    }
    error = failed(worker.runsync({"workflow": workflow}))
    assert "over INLINE_MAX_BYTES" in error and "no bucket is configured" in error
    assert "no bucket is configured" in failed(
        worker.runsync({"workflow": zero_time_workflow(next(_colors)), "output": {"delivery": "url"}})
    )


def test_no_secret_reaches_the_log(worker):
    worker.runsync({"workflow": zero_time_workflow(next(_colors))})
    assert "hf_testtokenthatmustnotleak" not in worker.log_text()


def test_the_worker_survived_everything(worker):
    assert worker.process.poll() is None
    completed(worker.runsync({"workflow": zero_time_workflow(next(_colors))}))
    assert Path(worker.env["COMFYUI_DATA_DIR"]).is_dir()
