"""The running double replays the recorded ComfyUI 0.26.0 conversations (real HTTP and WebSocket)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.doubles.comfyui.comfy_double.media import encode_mp4_stand_in, encode_png
from tests.doubles.comfyui.comfy_double.schema import MODEL_COMBOS
from tests.doubles.comfyui.launcher import RunningDouble
from tests.doubles.conftest import (
    CAPTURES_0_3,
    LTX2_API_DIR,
    WsRecorder,
    client_id,
    history_entry,
    load_capture,
    post_prompt,
    submit,
    unique_colour,
)


def _types_after_connect(capture: dict[str, Any]) -> list[str]:
    return capture["ws_message_types"]


async def test_model_free_video_workflow_and_its_cached_resubmit(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    capture = load_capture("a_video_emptyimage_createvideo_savevideo_webp.json")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        status, body = await post_prompt(http, comfy, capture["request"]["prompt"], client_id=cid)
        assert status == 200 and body["node_errors"] == {} and set(body) == set(capture["response"])
        prompt_id = body["prompt_id"]
        await ws.wait_done(prompt_id)
        assert ws.types() == capture["ws_message_types"]
        recorded_executed = [m["msg"] for m in capture["ws_messages"] if m["msg"]["type"] == "executed"]
        executed = [m for m in ws.texts() if m["type"] == "executed"]
        assert [m["data"]["output"] for m in executed] == [m["data"]["output"] for m in recorded_executed]
        states = [m["data"]["nodes"] for m in ws.texts() if m["type"] == "progress_state"]
        recorded_states = [
            m["msg"]["data"]["nodes"] for m in capture["ws_messages"] if m["msg"]["type"] == "progress_state"
        ]
        strip = lambda nodes: {k: {f: v for f, v in e.items() if f != "prompt_id"} for k, e in nodes.items()}  # noqa: E731
        assert [strip(s) for s in states] == [strip(s) for s in recorded_states]

    entry = await history_entry(http, comfy, prompt_id)
    recorded = next(iter(capture["history"].values()))
    assert list(entry) == list(recorded) == ["prompt", "outputs", "status", "meta"]
    assert entry["outputs"] == recorded["outputs"] and entry["meta"] == recorded["meta"]
    assert entry["prompt"][2] == recorded["prompt"][2] and entry["prompt"][4] == recorded["prompt"][4]
    assert list(entry["prompt"][3]) == ["client_id", "create_time"]
    assert [m[0] for m in entry["status"]["messages"]] == [m[0] for m in recorded["status"]["messages"]]

    job = await (await http.get(f"{comfy.url}/api/jobs/{prompt_id}")).json()
    assert list(job) == list(capture["api_jobs_entry"])
    assert job["status"] == "completed" and job["outputs_count"] == 2
    assert job["preview_output"] == {**capture["api_jobs_entry"]["preview_output"]}

    views = load_capture("a_view_responses.json")
    for query, expected in views.items():
        response = await http.get(comfy.url + query)
        data = await response.read()
        assert response.status == expected["status"], query
        if expected["status"] == 200:
            assert response.headers["Content-Type"] == expected["content_type"]
            assert response.headers["Content-Disposition"] == expected["content_disposition"]
            head = bytes.fromhex(expected["head_hex"])
            assert data[:4] + data[8:16] == head[:4] + head[8:16], (
                "same magic (bytes 4-8 of RIFF are the size)"
            )
        else:
            assert data == b""

    resubmit = load_capture("a2_video_resubmit_cached.json")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        status, body = await post_prompt(http, comfy, resubmit["request"]["prompt"], client_id=cid)
        await ws.wait_done(body["prompt_id"])
        assert ws.types() == resubmit["ws_message_types"]
        cached = await ws.wait_type("execution_cached")
        assert cached["data"]["nodes"] == ["1", "2", "3", "4"]
        outputs = [m["data"]["output"] for m in ws.texts() if m["type"] == "executed"]
        assert outputs == [recorded["outputs"]["4"], recorded["outputs"]["3"]], (
            "cached outputs name the old files"
        )
    assert sorted(p.name for p in (comfy.output_dir / "proto026").iterdir()) == [
        "vid_00001_.mp4",
        "vid_webp_00001_.webp",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "b_validation_error_prompt.json",
        "b2_validation_unknown_class.json",
        "b3_validation_no_output.json",
        "b4_validation_loadimage_missing.json",
    ],
)
async def test_rejected_prompts_over_http(
    comfy: RunningDouble, http: aiohttp.ClientSession, name: str
) -> None:
    capture = load_capture(name)
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        response = await http.post(
            comfy.url + "/prompt", json={"prompt": capture["request"], "client_id": cid}
        )
        assert response.status == capture["http_status"]
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await response.json() == capture["response"]
        await asyncio.sleep(0.1)
        assert ws.types() == ["status"], "a rejected prompt sends nothing on the WebSocket"


async def test_malformed_and_promptless_bodies(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    recorded = json.loads((CAPTURES_0_3 / "d10_malformed_json.post_prompt.json").read_text())
    response = await http.post(comfy.url + "/prompt", data=recorded["request_raw"])
    assert response.status == 500
    assert response.headers["Content-Type"] == recorded["headers"]["Content-Type"]
    assert await response.text() == recorded["body"]
    response = await http.post(comfy.url + "/api/prompt", json={"client_id": "x"})
    assert response.status == 400 and (await response.json())["error"]["type"] == "no_prompt"


async def test_prompt_id_rules_and_numbers(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    rules = load_capture("f_prompt_id_rules.json")
    graph = {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}}
    numbers = []
    for case in ("non_uuid", "uuid_upper"):
        response = await http.post(
            comfy.url + "/prompt", json={"prompt": graph, "prompt_id": rules[case]["request_prompt_id"]}
        )
        assert (response.status, await response.json()) == (400, rules[case]["response"])
    for prompt_id in (None, "0b6f4f44-7a57-4a0b-9d37-4f1f1b7e6a21"):
        status, body = await post_prompt(http, comfy, graph, prompt_id=prompt_id)
        assert status == 200
        numbers.append(body["number"])
        assert prompt_id is None or body["prompt_id"] == prompt_id
    assert numbers[1] == numbers[0] + 1
    status, body = await post_prompt(http, comfy, graph, front=True)
    assert body["number"] == -(numbers[1] + 1), "front jumps the queue with a negative number"


async def test_feature_flags_handshake(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    capture = load_capture("e_feature_flags_handshake.json")
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid), first_message=capture["sent"]) as ws:
        reply = await ws.wait_type("feature_flags")
        assert reply == capture["received"][1]
        assert ws.texts()[0] == {
            **capture["received"][0],
            "data": {**capture["received"][0]["data"], "sid": cid},
        }
    assert await (await http.get(comfy.url + "/features")).json() == load_capture("GET_features.json")


async def test_socket_without_client_id_gets_a_made_up_sid(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    async with WsRecorder(http, comfy.ws_url()) as ws:
        assert re.fullmatch(r"[0-9a-f]{32}", ws.sid)
        body = await submit(
            http,
            comfy,
            {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}},
            client_id=ws.sid,
        )
        done = await ws.wait_done(body["prompt_id"])
        assert done["data"] == {"node": None, "prompt_id": body["prompt_id"]}


async def test_text_frame_is_broadcast_without_prompt_id(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    capture = load_capture("g_jobs_cancel_and_text_frame_broadcast.json")
    graph = json.loads(json.dumps(capture["getimagesize_prompt"]["prompt"]))
    graph["1"]["inputs"]["color"] = unique_colour()
    cid = client_id()
    async with (
        WsRecorder(http, comfy.ws_url(cid)) as client,
        WsRecorder(http, comfy.ws_url(client_id())) as observer,
    ):
        body = await submit(http, comfy, graph, client_id=cid)
        await client.wait_done(body["prompt_id"])
        frame = await observer.wait_for(lambda kind, data: kind == "binary")
        text = b"width: 96, height: 64\n batch size: 3"
        assert frame == struct.pack(">II", 3, 1) + b"2" + text
        assert (
            frame[:16].hex() == capture["observer_ws"][9]["head_hex"]
            and len(frame) == capture["observer_ws"][9]["len"]
        )
        assert client.binaries() == [frame]
        await observer.wait_for(
            lambda kind, data: (
                kind == "text"
                and data["type"] == "status"
                and data["data"]["status"]["exec_info"]["queue_remaining"] == 0
            )
        )
        assert set(observer.types()) == {"status", "binary:3"}, "the observer gets no prompt messages"
        executed = await client.wait_type("executed")
        assert executed["data"]["output"] == {"text": ["3"]}
        recorded_types = [
            entry.split(" ")[1] if "binary" not in entry else "binary:3"
            for entry in capture["client_ws_summary"][-18:]
        ]
        assert client.types()[1:] == recorded_types


async def test_prompt_without_client_id_only_broadcasts_progress_state(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    async with WsRecorder(http, comfy.ws_url(client_id())) as observer:
        graph = {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": unique_colour()},
            },
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "bridge/f_noclient"},
            },
        }
        body = await submit(http, comfy, graph)
        prompt_id = body["prompt_id"]
        await observer.wait_for(lambda kind, data: observer.types().count("status") == 4)
        assert observer.types() == ["status", "status", "status"] + ["progress_state"] * 4 + ["status"]
        assert all(
            m["data"]["prompt_id"] == prompt_id for m in observer.texts() if m["type"] == "progress_state"
        )
    entry = await history_entry(http, comfy, prompt_id)
    assert entry["prompt"][3] == {"create_time": entry["prompt"][3]["create_time"]}
    assert entry["outputs"]["2"]["images"][0]["filename"] == "f_noclient_00001_.png"


async def test_uploads_rename_dedupe_and_refuse_traversal(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    first = encode_png(4, 4, (1, 2, 3))
    other = encode_png(4, 4, (3, 2, 1))

    async def upload(data: bytes, name: str = "bridge_input.png", **fields: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        for key, value in fields.items():
            form.add_field(key, value)
        response = await http.post(comfy.url + "/upload/image", data=form)
        return response.status, (await response.json() if response.status == 200 else await response.text())

    for case, data, fields in (
        ("c_upload_1_first.json", first, {}),
        ("c_upload_2_same_bytes_again.json", first, {}),
        ("c_upload_3_other_bytes_same_name.json", other, {}),
        ("c_upload_4_overwrite_true.json", first, {"overwrite": "true"}),
        ("c_upload_5_subfolder.json", first, {"subfolder": "jobs/abc", "overwrite": "true"}),
    ):
        recorded = json.loads((CAPTURES_0_3 / case).read_text())
        assert await upload(data, **fields) == (recorded["status"], recorded["body"]), case
    recorded = json.loads((CAPTURES_0_3 / "c_upload_6_type_temp.json").read_text())
    assert await upload(first, "bridge_tmp.png", type="temp", overwrite="true") == (200, recorded["body"])
    assert await upload(first, "x.png", subfolder="../../etc") == (400, "")
    assert (comfy.input_dir / "bridge_input (1).png").read_bytes() == other
    assert (comfy.input_dir / "jobs" / "abc" / "bridge_input.png").read_bytes() == first

    objects = await (await http.get(comfy.url + "/object_info/LoadImage")).json()
    assert objects["LoadImage"]["input"]["required"]["image"][0] == [
        "bridge_input (1).png",
        "bridge_input.png",
    ]

    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        for image in ("jobs/abc/bridge_input.png", "bridge_tmp.png [temp]"):
            graph = {
                "1": {"class_type": "LoadImage", "inputs": {"image": image}},
                "2": {
                    "class_type": "ImageScale",
                    "inputs": {
                        "image": ["1", 0],
                        "upscale_method": "bilinear",
                        "width": 16,
                        "height": 0,
                        "crop": "disabled",
                    },
                },
                "3": {
                    "class_type": "SaveImage",
                    "inputs": {"images": ["2", 0], "filename_prefix": "bridge/c_sub"},
                },
            }
            status, body = await post_prompt(http, comfy, graph, client_id=cid)
            assert status == 200, body
            await ws.wait_done(body["prompt_id"])
            assert (await history_entry(http, comfy, body["prompt_id"]))["status"]["status_str"] == "success"
    saved = sorted((comfy.output_dir / "bridge").glob("c_sub_*.png"))
    assert [p.name for p in saved] == ["c_sub_00001_.png", "c_sub_00002_.png"]
    with Image.open(saved[0]) as image:
        assert image.size == (16, 16)


async def test_view_variants(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    (comfy.input_dir / "view_me.png").write_bytes(encode_png(3, 3, (9, 9, 9)))
    cases = [
        ({"filename": "view_me.png", "type": "input"}, 200),
        ({"filename": "view_me.png [input]"}, 200),
        ({"filename": "does_not_exist.png", "type": "output"}, 404),
        ({"filename": "../secret", "type": "output"}, 400),
        ({"filename": "/etc/passwd", "type": "output"}, 400),
        ({"filename": "view_me.png", "subfolder": "../..", "type": "input"}, 403),
        ({"filename": "view_me.png", "type": "nowhere"}, 400),
        ({}, 404),
    ]
    for params, expected in cases:
        response = await http.get(comfy.url + "/view", params=params)
        body = await response.read()
        assert response.status == expected, params
        if expected == 200:
            assert response.headers["Content-Type"] == "image/png"
            assert response.headers["Content-Disposition"] == 'filename="view_me.png"'
            assert body == (comfy.input_dir / "view_me.png").read_bytes()
    response = await http.get(
        comfy.url + "/view", params={"filename": "view_me.png", "type": "input", "preview": "webp;50"}
    )
    assert response.status == 200 and response.headers["Content-Type"] == "image/webp"


async def test_queue_listing_delete_and_history(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    cid = client_id()
    slow = {"1": {"class_type": "DoubleSleep", "inputs": {"seconds": 0.6, "ticks": 3}}}
    waiting = {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}}
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        _, running = await post_prompt(http, comfy, slow, client_id=cid)
        _, pending = await post_prompt(http, comfy, waiting, client_id=cid)
        _, deleted = await post_prompt(
            http,
            comfy,
            {"1": {"class_type": "DoubleValue", "inputs": {"seed": unique_colour()}}},
            client_id=cid,
        )
        await ws.wait_type("executing", running["prompt_id"])
        queue = await (await http.get(comfy.url + "/queue")).json()
        assert [item[1] for item in queue["queue_running"]] == [running["prompt_id"]]
        assert [item[1] for item in queue["queue_pending"]] == [pending["prompt_id"], deleted["prompt_id"]]
        assert all(len(item) == 5 for item in queue["queue_running"] + queue["queue_pending"])
        assert queue["queue_pending"][0][3]["client_id"] == cid and queue["queue_pending"][0][4] == ["1"]
        assert await (await http.get(comfy.url + "/prompt")).json() == {"exec_info": {"queue_remaining": 3}}
        response = await http.post(comfy.url + "/queue", json={"delete": [deleted["prompt_id"]]})
        assert (response.status, await response.text()) == (200, "")
        response = await http.post(comfy.url + "/interrupt", json={"prompt_id": pending["prompt_id"]})
        assert response.status == 200, "interrupting a pending id is a no-op"
        await ws.wait_done(pending["prompt_id"])
        assert (await history_entry(http, comfy, running["prompt_id"]))["status"]["status_str"] == "success"
    assert await (await http.get(f"{comfy.url}/history/{deleted['prompt_id']}")).json() == {}
    latest = await (await http.get(comfy.url + "/history", params={"max_items": "2"})).json()
    assert list(latest) == [running["prompt_id"], pending["prompt_id"]]
    await http.post(comfy.url + "/history", json={"delete": [running["prompt_id"]]})
    assert await (await http.get(f"{comfy.url}/history/{running['prompt_id']}")).json() == {}


async def test_saved_images_previews_and_metadata(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    colour = unique_colour()
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 24, "batch_size": 2, "color": colour},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "meta/a_empty"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "4": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "meta/anim",
                "fps": 6.0,
                "lossless": True,
                "quality": 80,
                "method": "default",
            },
        },
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["7", 1], "filename_prefix": "audio/meta"}},
        "6": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8}},
        "7": {"class_type": "GetVideoComponents", "inputs": {"video": ["6", 0]}},
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(
            http, comfy, graph, client_id=cid, extra_data={"extra_pnginfo": {"job": "runpod-123"}}
        )
        await ws.wait_done(body["prompt_id"])
    outputs = (await history_entry(http, comfy, body["prompt_id"]))["outputs"]
    assert [item["filename"] for item in outputs["2"]["images"]] == [
        "a_empty_00001_.png",
        "a_empty_00002_.png",
    ]
    preview = outputs["3"]["images"][0]
    assert preview["type"] == "temp" and re.fullmatch(
        r"ComfyUI_temp_[a-z]{5}_00001_\.png", preview["filename"]
    )
    assert (comfy.temp_dir / preview["filename"]).is_file()
    assert outputs["4"] == {
        "images": [{"filename": "anim_00001_.webp", "subfolder": "meta", "type": "output"}],
        "animated": [True],
    }
    assert outputs["5"] == {
        "audio": [{"filename": "meta_00001_.flac", "subfolder": "audio", "type": "output"}]
    }
    with Image.open(comfy.output_dir / "meta" / "a_empty_00002_.png") as image:
        assert image.size == (32, 24) and image.getpixel((0, 0)) == (
            (colour >> 16) & 255,
            (colour >> 8) & 255,
            colour & 255,
        )
        assert (
            json.loads(image.info["prompt"])["1"]["inputs"]["color"] == colour
            and image.info["job"] == "runpod-123"
        )
    response = await http.get(
        comfy.url + "/view", params={"filename": "meta_00001_.flac", "subfolder": "audio"}
    )
    assert response.headers["Content-Type"] == "audio/flac" and (await response.read())[:4] == b"fLaC"


async def test_save_image_websocket_frames_follow_the_client_flags(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    legacy = json.loads((CAPTURES_0_3 / "e2_summary.json").read_text())
    modern = json.loads((CAPTURES_0_3 / "e3_summary.json").read_text())
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 2, "color": unique_colour()},
        },
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    for summary, first in (
        (legacy, None),
        (modern, {"type": "feature_flags", "data": {"supports_preview_metadata": True}}),
    ):
        cid = client_id()
        async with WsRecorder(http, comfy.ws_url(cid), first_message=first) as ws:
            if first:
                await ws.wait_type("feature_flags")
            body = await submit(http, comfy, graph, client_id=cid)
            await ws.wait_done(body["prompt_id"])
            # The second run finds EmptyImage cached, as in the recording; SaveImageWebsocket always runs.
            assert ws.types() == summary["ws_types"]
            event = 4 if first else 1
            for frame in ws.binaries():
                assert struct.unpack(">I", frame[:4])[0] == event
                png = frame[8:] if event == 1 else frame[8 + struct.unpack(">I", frame[4:8])[0] :]
                with Image.open(io.BytesIO(png)) as image:
                    assert image.size == (32, 32)


async def test_ltx2_graph_runs_with_sampler_progress(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    graph = json.loads((LTX2_API_DIR / "video_ltx2_i2v.api.json").read_text())
    for node in graph.values():
        for name, value in node["inputs"].items():
            folder = MODEL_COMBOS.get((node["class_type"], name))
            if folder:
                (comfy.models_dir / folder).mkdir(parents=True, exist_ok=True)
                (comfy.models_dir / folder / value).write_bytes(b"\0" * 24)
            if (node["class_type"], name) == ("LoadImage", "image"):
                (comfy.input_dir / value).write_bytes(encode_png(640, 480, (5, 5, 5)))
    graph["92:62"]["inputs"]["value"] = 25  # frames
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        status, body = await post_prompt(http, comfy, graph, client_id=cid)
        assert (status, body["node_errors"]) == (200, {})
        await ws.wait_done(body["prompt_id"], timeout=20)
        ticks: dict[str, list[tuple[int, int]]] = {}
        for message in ws.texts():
            if message["type"] == "progress":
                ticks.setdefault(message["data"]["node"], []).append(
                    (message["data"]["value"], message["data"]["max"])
                )
        assert sorted(len(values) for values in ticks.values()) == [3, 20]
        assert all(values == [(i + 1, len(values)) for i in range(len(values))] for values in ticks.values())
        assert any(frame.endswith(b"width: 1280, height: 720\n batch size: 1") for frame in ws.binaries())
    entry = await history_entry(http, comfy, body["prompt_id"])
    (item,) = entry["outputs"]["75"]["images"]
    assert item["filename"] == "LTX_2.0_i2v_00001_.mp4" and entry["outputs"]["75"]["animated"] == [True]
    video = comfy.output_dir / item["subfolder"] / item["filename"]
    assert video.read_bytes()[4:8] == b"ftyp" and video.stat().st_size > 100_000
    (comfy.input_dir / "clip.mp4").write_bytes(encode_mp4_stand_in(320, 240, 17, 24.0))


async def test_load_video_and_a_ksampler_graph(comfy: RunningDouble, http: aiohttp.ClientSession) -> None:
    (comfy.input_dir / "clip.mp4").write_bytes(encode_mp4_stand_in(320, 240, 17, 24.0))
    (comfy.models_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (comfy.models_dir / "checkpoints" / "sd.safetensors").write_bytes(b"\0" * 24)
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
        "4": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["1", 0],
                "filename_prefix": "video/reencode",
                "format": "mp4",
                "codec": "h264",
            },
        },
        "5": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["5", 1]}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 2}},
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["5", 0],
                "seed": unique_colour(),
                "steps": 4,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["7", 0],
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["5", 2]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "ks/out"}},
    }
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        body = await submit(http, comfy, graph, client_id=cid)
        await ws.wait_done(body["prompt_id"])
        ticks = [(m["data"]["value"], m["data"]["max"]) for m in ws.texts() if m["type"] == "progress"]
        assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    outputs = (await history_entry(http, comfy, body["prompt_id"]))["outputs"]
    assert outputs["3"] == {"text": ["24.0"]}
    assert outputs["4"]["images"][0]["filename"] == "reencode_00001_.mp4"
    assert [item["filename"] for item in outputs["10"]["images"]] == ["out_00001_.png", "out_00002_.png"]
    with Image.open(comfy.output_dir / "ks" / "out_00002_.png") as image:
        assert image.size == (64, 48)


async def test_sensitive_extra_data_usage_source_and_small_endpoints(
    comfy: RunningDouble, http: aiohttp.ClientSession
) -> None:
    graph = {"1": {"class_type": "DoubleSleep", "inputs": {"seconds": 0.3, "ticks": 3}}}
    cid = client_id()
    async with WsRecorder(http, comfy.ws_url(cid)) as ws:
        response = await http.post(
            comfy.url + "/prompt",
            json={
                "prompt": graph,
                "client_id": cid,
                "extra_data": {"api_key_comfy_org": "sk-secret", "job": 1},
            },
            headers={"Comfy-Usage-Source": "runpod-worker"},
        )
        prompt_id = (await response.json())["prompt_id"]
        await ws.wait_type("progress", prompt_id)
        queue = await (await http.get(comfy.url + "/queue")).text()
        final_status = len([t for t in ws.types() if t == "status"]) + 1
        await ws.wait_for(lambda kind, data: ws.types().count("status") == final_status)
        # History is written before the final status goes out.
        entry = await history_entry(http, comfy, prompt_id)
        await ws.wait_done(prompt_id)
    assert "sk-secret" not in queue and "sk-secret" not in json.dumps(entry)
    extra = entry["prompt"][3]
    assert (extra["job"], extra["client_id"], extra["comfy_usage_source"]) == (1, cid, "runpod-worker")
    response = await http.post(comfy.url + "/free", json={"unload_models": True, "free_memory": True})
    assert (response.status, await response.text()) == (200, "")
    assert (await http.get(comfy.url + "/models/no_such_folder")).status == 404
    assert await (await http.get(comfy.url + "/api/object_info/NoSuchNode")).json() == {}
    stats = await (await http.get(comfy.url + "/system_stats")).json()
    assert list(stats["system"]) == list(load_capture("GET_system_stats.json")["system"])
