"""A stand-in for RunPod's job API, on loopback, for running the worker in platform mode.

The runpod SDK (1.12) in a worker talks to these URLs, taken from its environment:

- ``RUNPOD_WEBHOOK_GET_JOB``: ``GET .../job-take/$ID?...&job_in_progress=0|1`` -> a job as JSON, or 204
- ``RUNPOD_WEBHOOK_POST_OUTPUT``: ``POST .../job-done/<worker>/<job id>?...&isStream=false`` with a JSON
  body (sent as x-www-form-urlencoded): progress updates (``{"status": "IN_PROGRESS", "output": ...}``)
  and the final result (``{"output": ..., "error"?: ..., "stopPod"?: true}``)
- the stop channel, derived from the job-take URL: ``GET .../job-stop/$ID?...`` long-polled, answering
  ``{"jobsToStop": [ids]}`` when a job is to be cancelled, 204 otherwise

``environment()`` gives the variables to start a worker against this server. Each posted body is
recorded, so tests can assert on progress updates, results and cancellations as RunPod would see them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WORKER_ID = "worker-test-1"


@dataclass
class Posted:
    job_id: str
    body: dict[str, Any]
    stream: bool


@dataclass
class RunPodJobAPI:
    jobs: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    posted: list[Posted] = field(default_factory=list)
    takes: int = 0
    _stop: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    _posted_event: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> RunPodJobAPI:
        app = web.Application()
        app.router.add_get("/job-take/{worker}", self._take)
        app.router.add_get("/job-stop/{worker}", self._stop_poll)
        app.router.add_post("/job-done/{worker}/{job}", self._done)
        app.router.add_post("/job-stream/{worker}/{job}", self._done)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def environment(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?token=test",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?token=test",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?token=test",
            "RUNPOD_POD_ID": WORKER_ID,
            "RUNPOD_ENDPOINT_ID": "endpoint-test",
            # The SDK's built-in checks need a GPU and internet (8.8.8.8:53); ours still run.
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
        }

    def submit(self, job_id: str, job_input: dict[str, Any], **extra: Any) -> None:
        self.jobs.put_nowait({"id": job_id, "input": job_input, **extra})

    def cancel(self, job_id: str) -> None:
        self._stop.put_nowait(job_id)

    def results(self, job_id: str) -> list[dict[str, Any]]:
        return [p.body for p in self.posted if p.job_id == job_id and p.body.get("status") != "IN_PROGRESS"]

    def progress(self, job_id: str) -> list[Any]:
        return [
            p.body.get("output")
            for p in self.posted
            if p.job_id == job_id and p.body.get("status") == "IN_PROGRESS"
        ]

    async def wait_result(self, job_id: str, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.results(job_id):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no result for {job_id} within {timeout} s; posted: {[p.job_id for p in self.posted]}"
                )
            self._posted_event.clear()
            try:
                await asyncio.wait_for(self._posted_event.wait(), remaining)
            except TimeoutError:
                continue
        return self.results(job_id)[0]

    async def _take(self, request: web.Request) -> web.Response:
        self.takes += 1
        try:
            job = await asyncio.wait_for(self.jobs.get(), timeout=1.0)
        except TimeoutError:
            return web.Response(status=204)
        return web.json_response(job)

    async def _stop_poll(self, request: web.Request) -> web.Response:
        try:
            job_id = await asyncio.wait_for(self._stop.get(), timeout=2.0)
        except TimeoutError:
            return web.Response(status=204)
        return web.json_response({"jobsToStop": [job_id]})

    async def _done(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body = json.loads(raw)
        stream = request.query.get("isStream") == "true"
        self.posted.append(Posted(job_id=request.match_info["job"], body=body, stream=stream))
        self._posted_event.set()
        return web.json_response({})
