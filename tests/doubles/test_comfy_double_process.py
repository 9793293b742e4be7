"""The double as a process: started like ComfyUI, its flags, both versions, crashes and hangs."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from tests.doubles.comfyui.comfy_double.cli import build_parser
from tests.doubles.comfyui.comfy_double.media import encode_png
from tests.doubles.comfyui.launcher import MAIN_PY, start_double
from tests.doubles.conftest import (
    CAPTURES_0_3,
    CAPTURES_0_26,
    LTX2_API_DIR,
    WsRecorder,
    client_id,
    post_prompt,
    submit,
)
from tests.support import free_port


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_main_py_runs_from_any_directory_like_comfyui(tmp_path: Path) -> None:
    """A copy of the double (as an image's ComfyUI directory), started from elsewhere, with its own
    extra_model_paths.yaml next to main.py, as ComfyUI loads it."""
    comfy_dir = tmp_path / "ComfyUI"
    shutil.copytree(
        MAIN_PY.parent,
        comfy_dir,
        ignore=shutil.ignore_patterns("__pycache__", "captures", "ltx2_api", "*.log"),
    )
    volume = tmp_path / "runpod-volume" / "models" / "checkpoints"
    volume.mkdir(parents=True)
    (volume / "ltx-2-19b-dev-fp8.safetensors").write_bytes(b"\0" * 24)
    (comfy_dir / "extra_model_paths.yaml").write_text(
        f"runpod:\n  base_path: {tmp_path / 'runpod-volume'}\n  checkpoints: models/checkpoints\n"
    )
    (comfy_dir / "temp").mkdir()
    (comfy_dir / "temp" / "stale.png").write_bytes(b"old")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    log_path = tmp_path / "log.txt"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "../ComfyUI/main.py",
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
                "--cpu",
                "--disable-auto-launch",
                "--preview-method",
                "auto",
                "--log-stdout",
            ],
            cwd=elsewhere,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while _refused(port):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert _get_json(f"http://127.0.0.1:{port}/models/checkpoints") == ["ltx-2-19b-dev-fp8.safetensors"]
        info = _get_json(f"http://127.0.0.1:{port}/object_info/LTXVAudioVAELoader")
        assert info["LTXVAudioVAELoader"]["input"]["required"]["ckpt_name"][1]["options"] == [
            "ltx-2-19b-dev-fp8.safetensors"
        ]
        stats = _get_json(f"http://127.0.0.1:{port}/system_stats")
        assert stats["system"]["comfyui_version"] == "0.26.0" and stats["system"]["argv"][0] == "main.py"
        assert not (comfy_dir / "temp" / "stale.png").exists(), "temp is wiped at startup"
        assert (comfy_dir / "output").is_dir() and (comfy_dir / "input").is_dir()
    finally:
        process.terminate()
        process.wait(10)
    log = log_path.read_text()
    for line in (
        "ignoring unsupported arguments: --preview-method auto",
        "ComfyUI version: 0.26.0",
        f"Adding extra search path checkpoints {volume}",
        "Starting server",
        f"To see the GUI go to: http://127.0.0.1:{port}",
    ):
        assert line in log


def test_listen_flag_defaults_like_comfyui() -> None:
    parser = build_parser()
    assert parser.parse_known_args([])[0].listen == "127.0.0.1"
    assert parser.parse_known_args(["--listen"])[0].listen == "0.0.0.0"
    args, unknown = parser.parse_known_args(
        [
            "--verbose",
            "--extra-model-paths-config",
            "a.yaml",
            "b.yaml",
            "--extra-model-paths-config",
            "c.yaml",
            "--fast",
        ]
    )
    assert (args.verbose, args.extra_model_paths_config, unknown) == (
        "DEBUG",
        [["a.yaml", "b.yaml"], ["c.yaml"]],
        ["--fast"],
    )


def test_exit_at_startup_and_startup_delay(tmp_path: Path) -> None:
    crashed = start_double(tmp_path / "a", "--double-exit-at-startup", "3", wait=False)
    assert crashed.process.wait(10) == 3
    assert (
        "ComfyUI version: 0.26.0" in crashed.log_text()
        and "exiting at startup with code 3" in crashed.log_text()
    )

    started = time.monotonic()
    slow = start_double(tmp_path / "b", "--double-startup-delay", "0.8", wait=False)
    try:
        time.sleep(0.3)
        assert _refused(slow.port), "nothing listens during the startup delay"
        slow.wait_ready(10)
        assert time.monotonic() - started >= 0.8
    finally:
        slow.stop()
    with pytest.raises(RuntimeError, match="exited with code 3 before answering"):
        start_double(tmp_path / "c", "--double-exit-at-startup", "3")


def test_bad_extra_model_paths_stop_the_start_with_the_file_named(tmp_path: Path) -> None:
    config = tmp_path / "extra.yaml"
    config.write_text("comfyui:\n  checkpoints:\n    - a\n")
    with pytest.raises(
        RuntimeError, match=r"exited with code 1[\s\S]*extra.yaml: line 3: sequences are not supported"
    ):
        start_double(tmp_path / "base", "--extra-model-paths-config", str(config))


async def test_extra_model_paths_with_symlinks_feed_listing_and_validation(tmp_path: Path) -> None:
    real = tmp_path / "store"
    real.mkdir()
    graph = json.loads((LTX2_API_DIR / "video_ltx2_t2v.api.json").read_text())
    needed = {
        "checkpoints": "ltx-2-19b-dev-fp8.safetensors",
        "text_encoders": "gemma_3_12B_it_fp4_mixed.safetensors",
        "loras": "ltx-2-19b-distilled-lora-384.safetensors",
        "latent_upscale_models": "ltx-2-spatial-upscaler-x2-1.0.safetensors",
    }
    farm = tmp_path / "farm"
    for folder, name in needed.items():
        (real / name).write_bytes(b"\0" * 24)
        (farm / folder).mkdir(parents=True)
        (farm / folder / name).symlink_to(real / name)
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(
        "worker:\n  base_path: farm\n  is_default: true\n"
        + "".join(f"  {folder}: {folder}\n" for folder in needed)
    )
    with start_double(tmp_path / "base", "--extra-model-paths-config", str(config)) as comfy:
        async with aiohttp.ClientSession() as http:
            for folder, name in needed.items():
                assert await (await http.get(f"{comfy.url}/models/{folder}")).json() == [name]
            paths = await (await http.get(comfy.url + "/internal/folder_paths")).json()
            assert paths["checkpoints"][0] == str(farm / "checkpoints"), "is_default comes first"
            status, body = await post_prompt(http, comfy, graph)
            assert (status, body["node_errors"]) == (200, {})
            graph["92:1"]["inputs"]["ckpt_name"] = "missing.safetensors"
            status, body = await post_prompt(http, comfy, graph)
            assert status == 400 and body["node_errors"]["92:1"]["errors"][0]["details"].startswith(
                "ckpt_name: 'missing.safetensors' not in"
            )


async def test_version_0_3_64_speaks_the_older_protocol(tmp_path: Path) -> None:
    with start_double(tmp_path, version="0.3.64") as comfy:
        async with aiohttp.ClientSession() as http:
            assert (await http.get(comfy.url + "/api/jobs")).status == 404
            assert await (await http.get(comfy.url + "/features")).json() == {
                "supports_preview_metadata": True,
                "max_upload_size": 104857600,
            }
            assert "latent_upscale_models" not in await (await http.get(comfy.url + "/models")).json()
            recorded = json.loads((CAPTURES_0_3 / "d1_unknown_class.post_prompt.json").read_text())
            response = await http.post(comfy.url + "/prompt", json=recorded["request"])
            assert (response.status, await response.json()) == (recorded["status"], recorded["body"])
            cid = client_id()
            async with WsRecorder(http, comfy.ws_url(cid)) as ws:
                graph = {"1": {"class_type": "DoubleValue", "inputs": {"seed": 5}}}
                status, body = await post_prompt(
                    http, comfy, graph, client_id=cid, prompt_id="my-own-prompt-id-0001"
                )
                assert (status, body["prompt_id"]) == (200, "my-own-prompt-id-0001")
                await ws.wait_done("my-own-prompt-id-0001")
            entry = (await (await http.get(comfy.url + "/history/my-own-prompt-id-0001")).json())[
                "my-own-prompt-id-0001"
            ]
            assert entry["prompt"][3] == {"client_id": cid}, "0.3.64 adds no create_time"
            assert (await (await http.get(comfy.url + "/system_stats")).json())["system"][
                "comfyui_version"
            ] == "0.3.64"


async def test_double_crash_kills_the_process(tmp_path: Path) -> None:
    comfy = start_double(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            cid = client_id()
            async with WsRecorder(http, comfy.ws_url(cid)) as ws:
                await submit(
                    http,
                    comfy,
                    {"1": {"class_type": "DoubleCrash", "inputs": {"exit_code": 7}}},
                    client_id=cid,
                )
                await asyncio.wait_for(ws.closed.wait(), 10)
                assert ws.types()[-2:] == ["progress_state", "executing"], "the crashing node was announced"
        assert comfy.process.wait(10) == 7
        assert "DoubleCrash: node 1 ends the process with exit code 7" in comfy.log_text()
    finally:
        comfy.stop()


async def test_double_hang_ignores_interrupts_but_the_server_answers(tmp_path: Path) -> None:
    with start_double(tmp_path) as comfy:
        async with aiohttp.ClientSession() as http:
            cid = client_id()
            async with WsRecorder(http, comfy.ws_url(cid)) as ws:
                body = await submit(
                    http, comfy, {"1": {"class_type": "DoubleHang", "inputs": {}}}, client_id=cid
                )
                await ws.wait_type("executing", body["prompt_id"])
                await http.post(comfy.url + "/interrupt")
                await asyncio.sleep(0.4)
                job = await (await http.get(f"{comfy.url}/api/jobs/{body['prompt_id']}")).json()
                assert job["status"] == "in_progress"
                assert "execution_interrupted" not in ws.types()
                queue = await (await http.get(comfy.url + "/queue")).json()
                assert [item[1] for item in queue["queue_running"]] == [body["prompt_id"]]
        assert comfy.stop() == -15, "it still stops on SIGTERM"


async def test_upload_limit_metadata_flag_and_moved_directories(tmp_path: Path) -> None:
    out, inp, tmp = tmp_path / "out", tmp_path / "in", tmp_path / "tmp"
    args = (
        "--max-upload-size",
        "0.001",
        "--disable-metadata",
        "--output-directory",
        str(out),
        "--input-directory",
        str(inp),
        "--temp-directory",
        str(tmp),
    )
    with start_double(tmp_path / "base", *args) as comfy:
        assert (comfy.output_dir, comfy.input_dir, comfy.temp_dir) == (out, inp, tmp / "temp")
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("image", b"x" * 4096, filename="big.png", content_type="image/png")
            assert (await http.post(comfy.url + "/upload/image", data=form)).status == 413
            graph = {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
                },
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "plain"}},
                "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
            }
            cid = client_id()
            async with WsRecorder(http, comfy.ws_url(cid)) as ws:
                body = await submit(http, comfy, graph, client_id=cid)
                await ws.wait_done(body["prompt_id"])
        with Image.open(out / "plain_00001_.png") as image:
            assert "prompt" not in image.info
        assert len(list((tmp / "temp").glob("ComfyUI_temp_*.png"))) == 1


def test_the_double_imports_only_the_standard_library_and_aiohttp() -> None:
    package = MAIN_PY.parent / "comfy_double"
    allowed = set(sys.stdlib_module_names) | {"aiohttp"}
    found: dict[str, set[str]] = {}
    for path in [MAIN_PY, *package.glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    outside = {name: files for name, files in found.items() if name not in allowed and name != "comfy_double"}
    # Pillow is only tried, inside a function, for /view?preview= re-encoding.
    assert outside == {"PIL": {"server.py"}}


async def test_view_preview_without_pillow_serves_the_file_unchanged(tmp_path: Path) -> None:
    blocker = tmp_path / "no_pil" / "PIL"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('Pillow is not installed in this image')\n")
    env_path = str(tmp_path / "no_pil")
    base = tmp_path / "base"
    (base / "input").mkdir(parents=True)
    png = encode_png(4, 4, (1, 2, 3))
    (base / "input" / "p.png").write_bytes(png)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        comfy = start_double(base)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    with comfy:
        async with aiohttp.ClientSession() as http:
            response = await http.get(
                comfy.url + "/view", params={"filename": "p.png", "type": "input", "preview": "webp;50"}
            )
            assert (response.status, response.headers["Content-Type"], await response.read()) == (
                200,
                "image/png",
                png,
            )


async def test_a_fresh_double_answers_like_a_fresh_comfyui(tmp_path: Path) -> None:
    recorded = {
        name: json.loads((CAPTURES_0_26 / f"GET_{name}.json").read_text())
        for name in (
            "api_jobs",
            "queue",
            "history",
            "prompt",
            "models",
            "models_checkpoints",
            "embeddings",
            "features",
            "internal_folder_paths",
        )
    }
    with start_double(tmp_path / "base") as comfy:
        async with aiohttp.ClientSession() as http:
            for name, path in (
                ("api_jobs", "/api/jobs"),
                ("queue", "/queue"),
                ("history", "/history"),
                ("prompt", "/prompt"),
                ("models", "/models"),
                ("models_checkpoints", "/models/checkpoints"),
                ("embeddings", "/embeddings"),
                ("features", "/api/features"),
            ):
                assert await (await http.get(comfy.url + path)).json() == recorded[name], path
            paths = await (await http.get(comfy.url + "/internal/folder_paths")).json()
            base = str(comfy.base_dir)
            relative = {
                name: [p.replace(base, "/comfyui") for p in entries] for name, entries in paths.items()
            }
            assert relative == recorded["internal_folder_paths"]
            object_info = await (await http.get(comfy.url + "/object_info")).json()
            assert (
                object_info["SaveVideo"]
                == json.loads((CAPTURES_0_26 / "GET_object_info_SaveVideo.json").read_text())["SaveVideo"]
            )
            assert len(object_info) == 798 + 7, "the recorded classes plus the seven Double* classes"
