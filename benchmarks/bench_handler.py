"""Handler overhead per job, against the same ComfyUI, measured in one run.

    uv run python benchmarks/bench_handler.py                      # against the ComfyUI double
    uv run python benchmarks/bench_handler.py --comfyui-path ~/ComfyUI --comfyui-python ~/ComfyUI/venv/bin/python

Starts the worker (`python -m handler serve --rp_serve_api`), which starts ComfyUI. Then, interleaved
after a warm-up, it times a zero-time workflow (EmptyImage -> SaveImage, a new colour each time so
ComfyUI's cache cannot skip it) two ways against that same ComfyUI:

- direct: a well-behaved ComfyUI client (one kept-alive HTTP session and one WebSocket): POST /prompt,
  wait on the WebSocket for the prompt's last message (executing null), GET /history, GET /view of the image;
- handler: POST /runsync to the worker's local API (the RunPod SDK's own server), which does all of
  that plus validation, output scoping, hashing, base64 and clean-up.

Prints p50/p90 of both and the overhead p50(handler) - p50(direct). The issue's reference: worker-comfyui
adds ~6.5 ms measured this way against a real ComfyUI; the target is <= 3.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
DOUBLE = REPO / "tests" / "doubles" / "comfyui"
TARGET_MS = 3.5
WORKER_COMFYUI_REFERENCE_MS = 6.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def workflow(color: int) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench/direct"}},
    }


class DirectClient:
    """What a hand-written ComfyUI client does for one prompt, with persistent connections."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client_id = uuid.uuid4().hex
        self.session: aiohttp.ClientSession | None = None
        self.socket: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()
        self.socket = await self.session.ws_connect(
            f"{self.base}/ws?clientId={self.client_id}", max_msg_size=0
        )

    async def close(self) -> None:
        if self.socket:
            await self.socket.close()
        if self.session:
            await self.session.close()

    async def run(self, color: int) -> bytes:
        assert self.session and self.socket
        async with self.session.post(
            f"{self.base}/prompt", json={"prompt": workflow(color), "client_id": self.client_id}
        ) as r:
            prompt_id = (await r.json())["prompt_id"]
        async for frame in self.socket:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            data = message.get("data", {})
            # executing(null) is the prompt's last message; history is written just before it.
            if (
                data.get("prompt_id") == prompt_id
                and message["type"] == "executing"
                and data.get("node") is None
            ):
                break
        async with self.session.get(f"{self.base}/history/{prompt_id}") as r:
            history = await r.json()
        image = history[prompt_id]["outputs"]["2"]["images"][0]
        params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
        async with self.session.get(f"{self.base}/view", params=params) as r:
            return await r.read()


async def measure(api: str, comfy: str, jobs: int, warmup: int) -> tuple[list[float], list[float]]:
    direct = DirectClient(comfy)
    await direct.open()
    color = int(time.time()) % 100000 * 100
    direct_ms: list[float] = []
    handler_ms: list[float] = []
    async with aiohttp.ClientSession() as session:
        for index in range(warmup + jobs):
            color += 1
            started = time.perf_counter()
            await direct.run(color)
            elapsed_direct = (time.perf_counter() - started) * 1000
            color += 1
            started = time.perf_counter()
            async with session.post(f"{api}/runsync", json={"input": {"workflow": workflow(color)}}) as r:
                answer = await r.json()
            elapsed_handler = (time.perf_counter() - started) * 1000
            if answer.get("status") != "COMPLETED":
                raise SystemExit(f"handler job failed: {answer}")
            if index >= warmup:
                direct_ms.append(elapsed_direct)
                handler_ms.append(elapsed_handler)
    await direct.close()
    return direct_ms, handler_ms


def wait_for_api(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker exited with {process.returncode}")
        try:
            urllib.request.urlopen(url + "/openapi.json", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("worker did not come up")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--comfyui-path", type=Path, default=DOUBLE, help="ComfyUI checkout (default: the test double)"
    )
    parser.add_argument("--comfyui-python", default=sys.executable, help="Python that runs ComfyUI")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-handler-") as tmp:
        comfy_port, api_port = free_port(), free_port()
        env = {
            **os.environ,
            "COMFYUI_PATH": str(args.comfyui_path),
            "COMFYUI_PYTHON": args.comfyui_python,
            "COMFYUI_PORT": str(comfy_port),
            "COMFYUI_CPU": "true",
            "COMFYUI_DATA_DIR": f"{tmp}/data",
            "WORKER_HOME": f"{tmp}/home",
            "RUNPOD_VOLUME_PATH": f"{tmp}/volume",
            "BAKED_MODELS_DIR": f"{tmp}/baked",
            "LOG_LEVEL": "WARNING",
        }
        log = open(f"{tmp}/worker.log", "w")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve", "--rp_serve_api", "--api-port", str(api_port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            api = f"http://127.0.0.1:{api_port}"
            wait_for_api(api, worker)
            direct_ms, handler_ms = asyncio.run(
                measure(api, f"http://127.0.0.1:{comfy_port}", args.jobs, args.warmup)
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    d50, h50 = statistics.median(direct_ms), statistics.median(handler_ms)
    overhead = h50 - d50
    which = "ComfyUI double" if args.comfyui_path == DOUBLE else f"ComfyUI at {args.comfyui_path}"
    print(f"against {which}, {args.jobs} jobs each, interleaved, after {args.warmup} warm-up jobs")
    print(f"direct client   p50 {d50:7.2f} ms   p90 {percentile(direct_ms, 0.9):7.2f} ms")
    print(f"handler runsync p50 {h50:7.2f} ms   p90 {percentile(handler_ms, 0.9):7.2f} ms")
    print(
        f"overhead p50    {overhead:7.2f} ms   (target <= {TARGET_MS} ms: {'met' if overhead <= TARGET_MS else 'NOT met'}; "
        f"ratio to target {overhead / TARGET_MS:.2f}; worker-comfyui reference ~{WORKER_COMFYUI_REFERENCE_MS} ms)"
    )
    print(f"ratio handler/direct p50: {h50 / d50:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
