"""Async client for ComfyUI's HTTP API and its WebSocket, kept open for the worker's life.

One ``aiohttp`` session (kept-alive connections) and one WebSocket per worker: a job costs one
``POST /prompt`` and the messages ComfyUI pushes, nothing else on the success path. A reader
task routes each message to the prompt it belongs to; when the socket drops it reconnects with
backoff and tells every waiting prompt, which then asks ``/history`` (or ``/api/jobs``) what it
missed. Everything is bound to the event loop that first uses it and rebuilt on another loop,
because the RunPod SDK runs the warm-up and the jobs on different loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import aiohttp

from handler.comfy.events import decode_binary_frame, decode_text_frame

log = logging.getLogger("handler.comfy")

RECONNECTED = {"type": "_reconnected", "data": {}}
DISCONNECTED = {"type": "_disconnected", "data": {}}


class ComfyHTTPError(RuntimeError):
    """ComfyUI answered with an unexpected status (or not at all)."""

    def __init__(self, method: str, path: str, status: int | None, body: Any) -> None:
        shown = body if isinstance(body, str) else json.dumps(body)[:500]
        super().__init__(
            f"ComfyUI {method} {path} failed: {status if status is not None else 'no answer'} {shown}"
        )
        self.status = status
        self.body = body


class ComfyRejected(RuntimeError):
    """``POST /prompt`` answered 400: the body carries ``error`` and ``node_errors``."""

    def __init__(self, body: Any) -> None:
        super().__init__("ComfyUI rejected the prompt")
        self.body = body


class ComfyClient:
    def __init__(self, base_url: str, client_id: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected: asyncio.Event | None = None
        self._subscribers: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._jobs_api: bool | None = None  # /api/jobs exists (ComfyUI >= 0.2x); learned on first use
        self._object_info: dict[str, Any] | None = None
        self._closing = False
        self.reconnects = 0

    # --- connection management -------------------------------------------------------------------
    async def _ensure(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop and not self._session.closed:
            return self._session
        if self._session is not None and self._loop is not loop:
            # The previous loop is gone (or going): drop its objects without touching them.
            self._session = None
            self._reader = None
            self._subscribers.clear()
        self._loop = loop
        self._closing = False
        self._connected = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=8, keepalive_timeout=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120)
        )
        self._reader = loop.create_task(self._read_forever(), name="comfyui-websocket")
        return self._session

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the session and wait until the WebSocket is up."""
        await self._ensure()
        assert self._connected is not None
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._reader = None

    async def _read_forever(self) -> None:
        try:
            await self._read_until_closed()
        except asyncio.CancelledError:
            # Cancelled by close(), or by the RunPod SDK's event loop shutting down: either way
            # the session goes with it (aiohttp otherwise complains about it at exit).
            if self._session is not None and not self._session.closed:
                await self._session.close()
            raise

    async def _read_until_closed(self) -> None:
        assert self._session is not None and self._connected is not None
        url = f"{self.base_url}/ws?clientId={self.client_id}"
        delay = 0.05
        first = True
        while not self._closing:
            try:
                async with self._session.ws_connect(url, heartbeat=30, max_msg_size=0) as socket:
                    self._connected.set()
                    delay = 0.05
                    if not first:
                        self.reconnects += 1
                        log.warning("ComfyUI WebSocket reconnected (%d so far)", self.reconnects)
                        self._broadcast(RECONNECTED)
                    first = False
                    await self._pump(socket)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("ComfyUI WebSocket unavailable: %s", exc)
            if self._closing:
                return
            if self._connected.is_set():
                self._connected.clear()
                log.warning("ComfyUI WebSocket dropped; reconnecting")
                self._broadcast(DISCONNECTED)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _pump(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in socket:
            if frame.type == aiohttp.WSMsgType.TEXT:
                message = decode_text_frame(frame.data)
                if message is None:
                    log.debug("ignoring malformed ComfyUI text frame (%d chars)", len(frame.data))
                    continue
                self._route(message)
            elif frame.type == aiohttp.WSMsgType.BINARY:
                # Previews and GetImageSize's broadcast TEXT event: never about our prompt's state.
                binary = decode_binary_frame(frame.data)
                log.debug("ignoring ComfyUI binary frame %s (%d bytes)", binary.name, binary.size)
            elif frame.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return

    def _route(self, message: dict[str, Any]) -> None:
        prompt_id = message["data"].get("prompt_id")
        if prompt_id is not None:
            queue = self._subscribers.get(prompt_id)
            if queue is not None:
                queue.put_nowait(message)
        elif message["type"] == "executing":
            # Sent without a prompt id right after a reconnect (protocol g2): the trackers decide.
            self._broadcast(message)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for queue in self._subscribers.values():
            queue.put_nowait(message)

    def subscribe(self, prompt_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Start collecting the prompt's messages; do this before queueing it."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[prompt_id] = queue
        return queue

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscribers.pop(prompt_id, None)

    @property
    def websocket_up(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    # --- HTTP ------------------------------------------------------------------------------------
    async def _request(
        self, method: str, path: str, *, json_body: Any = None, ok: tuple[int, ...] = (200,)
    ) -> Any:
        session = await self._ensure()
        data = None if json_body is None else json.dumps(json_body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with session.request(method, self.base_url + path, data=data, headers=headers) as response:
                text = await response.text()
                body: Any = text
                if text and response.content_type == "application/json":
                    body = json.loads(text)
                if response.status not in ok:
                    raise ComfyHTTPError(method, path, response.status, body)
                return response.status, body
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ComfyHTTPError(method, path, None, str(exc)) from exc

    async def queue_prompt(
        self, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``POST /prompt``; a 400 raises ComfyRejected with ComfyUI's body."""
        payload: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = await self._request("POST", "/prompt", json_body=payload, ok=(200, 400))
        if status == 400:
            raise ComfyRejected(body)
        if not isinstance(body, dict):
            raise ComfyHTTPError("POST", "/prompt", status, body)
        return body

    async def interrupt(self, prompt_id: str | None = None) -> None:
        await self._request("POST", "/interrupt", json_body={"prompt_id": prompt_id} if prompt_id else {})

    async def cancel(self, prompt_id: str) -> None:
        """Stop a prompt whether it is running or still queued."""
        if self._jobs_api is not False:
            try:
                await self._request("POST", f"/api/jobs/{prompt_id}/cancel")
                self._jobs_api = True
                return
            except ComfyHTTPError as exc:
                if exc.status not in (404, 405):
                    raise
                self._jobs_api = False
        # Older ComfyUI: drop it from the queue if pending, interrupt it if running.
        await self._request("POST", "/queue", json_body={"delete": [prompt_id]})
        await self.interrupt(prompt_id)

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        _, body = await self._request("GET", f"/history/{prompt_id}")
        if isinstance(body, dict):
            entry = body.get(prompt_id)
            return entry if isinstance(entry, dict) else None
        return None

    async def job(self, prompt_id: str) -> dict[str, Any] | None:
        """``/api/jobs/{id}`` where ComfyUI has it (0.2x); None when unknown or unsupported."""
        if self._jobs_api is False:
            return None
        try:
            status, body = await self._request("GET", f"/api/jobs/{prompt_id}", ok=(200, 404))
        except ComfyHTTPError as exc:
            if exc.status == 405:
                self._jobs_api = False
                return None
            raise
        if not isinstance(body, dict):
            # A plain-text 404 is the router's: this ComfyUI has no jobs API.
            self._jobs_api = False
            return None
        self._jobs_api = True
        return body if status == 200 and body.get("id") == prompt_id else None

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """Node schemas; cached until ``refresh`` (model lists change only when files do)."""
        if self._object_info is None or refresh:
            _, body = await self._request("GET", "/object_info")
            if not isinstance(body, dict):
                raise ComfyHTTPError("GET", "/object_info", 200, body)
            self._object_info = body
        return self._object_info

    def forget_object_info(self) -> None:
        self._object_info = None
