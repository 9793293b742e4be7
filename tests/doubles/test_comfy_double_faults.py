"""Interrupts, cancels, run-time errors and the double's fault-injection nodes, on a running double."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.doubles.comfyui.comfy_double.media import encode_png
from tests.doubles.comfyui.launcher import RunningDouble
from tests.doubles.conftest import (
    WsRecorder,
    client_id,
    history_entry,
    load_capture,
    post_prompt,
    submit,
    unique_colour,
)

_RECORDED_ERROR_KEYS = list(load_capture("GET_api_jobs_id_failed_ltx2_t2v.json")["execution_error"])


def _slow_chain(colour: int, seconds: float, ticks: int, last: str = "ImageScaleBy") -> dict[str, Any]:
    """EmptyImage -> DoubleSleep -> ``last`` -> SaveImage, the shape of the interrupt captures."""
    third = (
        {"image": ["2", 0], "upscale_method": "lanczos", "scale_by": 0.5}
        if last == "ImageScaleBy"
        else {"image": ["2", 0]}
    )
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": colour},
        },
        "2": {"class_type": "DoubleSleep", "inputs": {"seconds": seconds, "ticks": ticks, "value": ["1", 0]}},
        "3": {"class_type": last, "inputs": third},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "never/slow"}},
    }


async def test_interrupt_without_progress_hook_takes_effect_at_the_next_node(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    capture = load_capture("c2_interrupt_targeted_prompt_id.json")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, _slow_chain(unique_colour(), 0.5, 0), client_id=cid)
        prompt_id = body["prompt_id"]
        await ws.wait_for(
            lambda kind, data: (
                kind == "text" and data["type"] == "executing" and data["data"].get("node") == "2"
            )
        )
        response = await http.post(comfy.url + "/interrupt", json={"prompt_id": prompt_id})
        assert (response.status, await response.text()) == (200, "")
        await ws.wait_done(prompt_id)
        # The prompt differs from the recording only after node 3, which never runs.
        assert ws.types() == capture["ws_message_types"]
        interrupted = await ws.wait_type("execution_interrupted")
        assert interrupted["data"] == {
            **capture["terminal"]["data"],
            "prompt_id": prompt_id,
            "timestamp": interrupted["data"]["timestamp"],
        }

    entry = await history_entry(http, comfy, prompt_id)
    assert (entry["status"]["status_str"], entry["status"]["completed"], entry["outputs"], entry["meta"]) == (
        "error",
        False,
        {},
        {},
    )
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    job = await (await http.get(f"{comfy.url}/api/jobs/{prompt_id}")).json()
    assert job["status"] == "cancelled" and list(job) == list(
        load_capture("c_interrupt_global.json")["api_jobs_entry"]
    )


async def test_global_interrupt_stops_a_node_at_its_next_tick(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, _slow_chain(unique_colour(), 20.0, 400), client_id=cid)
        prompt_id = body["prompt_id"]
        await ws.wait_type("progress", prompt_id)
        await http.post(comfy.url + "/interrupt")
        await ws.wait_done(prompt_id, timeout=3)
        types = ws.types()
        end = types.index("execution_interrupted")
        assert types[end - 1] == "progress" and types[end:] == [
            "execution_interrupted",
            "status",
            "executing",
        ]
        interrupted = (await ws.wait_type("execution_interrupted"))["data"]
        assert (interrupted["node_id"], interrupted["node_type"], interrupted["executed"]) == (
            "2",
            "DoubleSleep",
            ["1"],
        )
        assert set(interrupted) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
        last_state = [m for m in ws.texts() if m["type"] == "progress_state"][-1]["data"]["nodes"]["2"]
        assert last_state["state"] == "running", "an interrupted node stays running in progress_state"

    # A global interrupt while idle does not leak into the next prompt.
    await http.post(comfy.url + "/interrupt")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(
            http,
            comfy,
            {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}},
            client_id=cid,
        )
        await ws.wait_done(body["prompt_id"])
        assert "execution_success" in ws.types()


async def test_jobs_api_pending_running_cancel_and_batch(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    capture = load_capture("g_jobs_cancel_and_text_frame_broadcast.json")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        _, running = await post_prompt(http, comfy, _slow_chain(unique_colour(), 20.0, 400), client_id=cid)
        _, pending = await post_prompt(
            http,
            comfy,
            {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}},
            client_id=cid,
        )
        await ws.wait_type("progress", running["prompt_id"])

        job = await (await http.get(f"{comfy.url}/api/jobs/{pending['prompt_id']}")).json()
        assert (
            list(job) == list(capture["pending_job"]["get_while_pending"][1]) and job["status"] == "pending"
        )
        job = await (await http.get(f"{comfy.url}/api/jobs/{running['prompt_id']}")).json()
        assert (
            list(job) == list(capture["running_job"]["get_while_running"][1])
            and job["status"] == "in_progress"
        )
        listing = await (
            await http.get(comfy.url + "/api/jobs", params={"status": "pending,in_progress"})
        ).json()
        assert [j["id"] for j in listing["jobs"]] == [pending["prompt_id"], running["prompt_id"]]

        statuses_before = ws.types().count("status")
        response = await http.post(f"{comfy.url}/api/jobs/{pending['prompt_id']}/cancel")
        assert (response.status, await response.json()) == (200, {"cancelled": True})
        await ws.wait_for(lambda kind, data: ws.types().count("status") == statuses_before + 2)  # as recorded
        response = await http.get(f"{comfy.url}/api/jobs/{pending['prompt_id']}")
        assert (response.status, await response.json()) == (404, {"error": "Job not found"})

        response = await http.post(
            comfy.url + "/api/jobs/cancel", json={"job_ids": [running["prompt_id"], "not-a-uuid"]}
        )
        assert [response.status, await response.json()] == capture["batch_cancel_bad_id"]
        response = await http.post(f"{comfy.url}/api/jobs/{running['prompt_id']}/cancel")
        assert await response.json() == {"cancelled": True}
        await ws.wait_done(running["prompt_id"], timeout=3)
    response = await http.post(f"{comfy.url}/api/jobs/{running['prompt_id']}/cancel")
    assert await response.json() == {"cancelled": False}
    assert await (await http.get(f"{comfy.url}/history/{pending['prompt_id']}")).json() == {}
    job = await (await http.get(f"{comfy.url}/api/jobs/{running['prompt_id']}")).json()
    assert (
        job["status"] == "cancelled" and job["execution_status"]["messages"][-1][0] == "execution_interrupted"
    )
    response = await http.post(comfy.url + "/api/jobs/cancel", json={"job_ids": [pending["prompt_id"]]})
    assert await response.json() == {"cancelled": False}


async def test_double_fail_reports_like_a_failing_node(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    seed = unique_colour()
    graph = {
        "1": {"class_type": "DoubleValue", "inputs": {"seed": seed}},
        "2": {
            "class_type": "DoubleFail",
            "inputs": {
                "message": "CUDA out of memory",
                "exception_type": "torch.OutOfMemoryError",
                "value": ["1", 0],
            },
        },
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, graph, client_id=cid)
        prompt_id = body["prompt_id"]
        await ws.wait_done(prompt_id)
        types = ws.types()
        assert types[types.index("executing", types.index("executed")) :] == [
            "executing",
            "execution_error",
            "status",
            "executing",
        ]
        error = (await ws.wait_type("execution_error"))["data"]
    assert list(error) == _RECORDED_ERROR_KEYS
    assert (error["node_id"], error["node_type"], error["executed"]) == ("2", "DoubleFail", ["1"])
    assert error["exception_type"] == "torch.OutOfMemoryError"
    assert error["exception_message"].startswith(
        "CUDA out of memory\nThis error means you ran out of memory on your GPU."
    )
    assert error["traceback"] and all(
        isinstance(line, str) and line.startswith("  File ") for line in error["traceback"]
    )
    assert error["current_inputs"]["value"] == [seed] and error["current_outputs"] == ["1", "2"]

    entry = await history_entry(http, comfy, prompt_id)
    assert entry["status"]["status_str"] == "error" and entry["status"]["messages"][-1] == [
        "execution_error",
        error,
    ]
    assert entry["outputs"] == {"1": {"text": [str(seed)]}}, "outputs made before the failure are kept"
    job = await (await http.get(f"{comfy.url}/api/jobs/{prompt_id}")).json()
    assert job["status"] == "failed" and job["execution_error"] == error

    plain = {"1": {"class_type": "DoubleFail", "inputs": {"message": "boom", "exception_type": "ValueError"}}}
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, plain, client_id=cid)
        await ws.wait_done(body["prompt_id"])
        error = (await ws.wait_type("execution_error"))["data"]
    assert (error["exception_type"], error["exception_message"]) == ("ValueError", "boom\n")


async def test_corrupt_upload_fails_at_run_time_like_pil(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("image", b"\x89PNG not really", filename="bridge_corrupt.png", content_type="image/png")
    form.add_field("overwrite", "true")
    assert (await http.post(comfy.url + "/upload/image", data=form)).status == 200
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "bridge_corrupt.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bridge/d12"}},
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        status, body = await post_prompt(http, comfy, graph, client_id=cid)
        assert status == 200, "a corrupt file passes validation"
        await ws.wait_done(body["prompt_id"])
        error = (await ws.wait_type("execution_error"))["data"]
    assert error["exception_type"] == "PIL.UnidentifiedImageError"
    assert (
        error["exception_message"]
        == f"cannot identify image file '{comfy.input_dir / 'bridge_corrupt.png'}'\n"
    )
    assert error["current_inputs"] == {"image": ["bridge_corrupt.png"]} and error["executed"] == []


async def test_output_file_node_writes_exact_sizes_and_custom_keys(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    graph = {
        "1": {
            "class_type": "DoubleOutputFile",
            "inputs": {"size_bytes": 20 * 1024 * 1024, "extension": "mp4", "filename_prefix": "big/clip"},
        },
        "2": {
            "class_type": "DoubleOutputFile",
            "inputs": {
                "size_bytes": 1234,
                "extension": "mp4",
                "filename_prefix": "vhs/AnimateDiff",
                "key": "gifs",
            },
        },
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, graph, client_id=cid)
        await ws.wait_done(body["prompt_id"], timeout=20)
    outputs = (await history_entry(http, comfy, body["prompt_id"]))["outputs"]
    assert outputs["1"] == {
        "images": [{"filename": "clip_00001_.mp4", "subfolder": "big", "type": "output"}],
        "animated": [True],
    }
    gif = outputs["2"]["gifs"][0]
    assert {key: gif[key] for key in ("filename", "subfolder", "type", "format")} == {
        "filename": "AnimateDiff_00001_.mp4",
        "subfolder": "vhs",
        "type": "output",
        "format": "video/h264-mp4",
    }
    assert (comfy.output_dir / "big" / "clip_00001_.mp4").stat().st_size == 20 * 1024 * 1024
    response = await http.get(
        comfy.url + "/view", params={"filename": "AnimateDiff_00001_.mp4", "subfolder": "vhs"}
    )
    assert response.headers["Content-Type"] == "video/mp4" and len(await response.read()) == 1234
    assert not list(comfy.output_dir.rglob("*.part")), "no temporary files are left behind"


async def test_drop_sockets_closes_connections_but_the_prompt_completes(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    graph = {
        "1": {"class_type": "DoubleDropSockets", "inputs": {}},
        "2": {"class_type": "DoubleSleep", "inputs": {"seconds": 0.2, "value": ["1", 0]}},
    }
    cid = client_id()
    async with (
        WsRecorder(http, comfy.ws_url(cid)) as ws,
        WsRecorder(http, comfy.ws_url(client_id())) as other,
    ):
        body = await submit(http, comfy, graph, client_id=cid)
        await asyncio.wait_for(ws.closed.wait(), 5)
        await asyncio.wait_for(other.closed.wait(), 5)
        assert "execution_success" not in ws.types()
    for _ in range(100):
        history = await (await http.get(f"{comfy.url}/history/{body['prompt_id']}")).json()
        if history:
            break
        await asyncio.sleep(0.05)
    assert history[body["prompt_id"]]["status"]["status_str"] == "success"


async def test_reconnecting_with_the_same_client_id_mid_run(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    cid = client_id()
    graph = {
        "1": {"class_type": "DoubleSleep", "inputs": {"seconds": 0.6, "ticks": 6, "seed": unique_colour()}}
    }
    async with WsRecorder(http, comfy.ws_url(cid)) as first:
        body = await submit(http, comfy, graph, client_id=cid)
        await first.wait_type("progress", body["prompt_id"])
    async with WsRecorder(http, comfy.ws_url(cid)) as second:
        await second.wait_done(body["prompt_id"])
        texts = second.texts()
        assert texts[0]["data"]["sid"] == cid and texts[1] == {"type": "executing", "data": {"node": "1"}}
        assert "execution_success" in second.types()


async def test_image_loaded_from_input_has_the_file_size(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    (comfy.input_dir / "wide.png").write_bytes(encode_png(96, 40, (1, 1, 1)))
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "wide.png"}},
        "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, graph, client_id=cid)
        await ws.wait_done(body["prompt_id"])
        assert (await ws.wait_type("executed"))["data"]["output"] == {"text": ["96"]}
    # Overwriting the file with other bytes makes LoadImage run again (its IS_CHANGED is the file hash).
    (comfy.input_dir / "wide.png").write_bytes(encode_png(50, 40, (1, 1, 1)))
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, graph, client_id=cid)
        await ws.wait_done(body["prompt_id"])
        assert (await ws.wait_type("execution_cached"))["data"]["nodes"] == []
        assert (await ws.wait_type("executed"))["data"]["output"] == {"text": ["50"]}
