"""Fixtures for the ComfyUI double's tests: a running double, an HTTP session, WebSocket recorders."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.doubles.comfyui.launcher import RunningDouble, start_double

DATA_DIR = Path(__file__).resolve().parent / "comfyui" / "data"
CAPTURES_0_26 = DATA_DIR / "captures" / "v0.26.0"
CAPTURES_0_3 = DATA_DIR / "captures" / "v0.3.64"
LTX2_API_DIR = DATA_DIR / "ltx2_api"


class WsRecorder:
    """Records every frame of one WebSocket connection to the double."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, first_message: dict[str, Any] | None = None
    ) -> None:
        self.session = session
        self.url = url
        self.first_message = first_message
        self.frames: list[tuple[str, Any]] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsRecorder:
        self.ws = await self.session.ws_connect(self.url)
        if self.first_message is not None:
            await self.ws.send_str(json.dumps(self.first_message))
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda kind, data: kind == "text" and data["type"] == "status")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(("text", json.loads(message.data)))
            elif message.type == aiohttp.WSMsgType.BINARY:
                self.frames.append(("binary", message.data))
            self._changed.set()
        self.closed.set()
        self._changed.set()

    @property
    def sid(self) -> str:
        return self.texts()[0]["data"]["sid"]

    def texts(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.frames if kind == "text"]

    def binaries(self) -> list[bytes]:
        return [data for kind, data in self.frames if kind == "binary"]

    def types(self) -> list[str]:
        return [
            data["type"] if kind == "text" else f"binary:{struct.unpack('>I', data[:4])[0]}"
            for kind, data in self.frames
        ]

    def for_prompt(self, prompt_id: str) -> list[dict[str, Any]]:
        return [data for data in self.texts() if data["data"].get("prompt_id") == prompt_id]

    async def wait_for(self, predicate: Callable[[str, Any], bool], timeout: float = 10.0) -> Any:
        async def scan() -> Any:
            seen = 0
            while True:
                for kind, data in self.frames[seen:]:
                    if predicate(kind, data):
                        return data
                seen = len(self.frames)
                if self.closed.is_set():
                    raise AssertionError(f"socket closed before the awaited frame; got {self.types()}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_type(
        self, type_: str, prompt_id: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda kind, data: (
                kind == "text"
                and data["type"] == type_
                and (prompt_id is None or data["data"].get("prompt_id") == prompt_id)
            ),
            timeout,
        )

    async def wait_done(self, prompt_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for ``executing {node: null, prompt_id}``, the last message of a prompt."""
        return await self.wait_for(
            lambda kind, data: (
                kind == "text"
                and data["type"] == "executing"
                and data["data"].get("node") is None
                and data["data"].get("prompt_id") == prompt_id
            ),
            timeout,
        )


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDouble]:
    """One double (0.26.0) per test module."""
    with start_double(tmp_path_factory.mktemp("comfy"), "--double-step-seconds", "0.001") as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def post_prompt(
    session: aiohttp.ClientSession, double: RunningDouble, graph: dict[str, Any], **body: Any
) -> tuple[int, Any]:
    response = await session.post(double.url + "/prompt", json={"prompt": graph, **body})
    return response.status, await response.json()


async def submit(
    session: aiohttp.ClientSession, double: RunningDouble, graph: dict[str, Any], **body: Any
) -> Any:
    """POST a prompt that must be accepted; its 200 body."""
    status, answer = await post_prompt(session, double, graph, **body)
    assert status == 200, f"the double refused the prompt: {answer}"
    return answer


async def history_entry(
    session: aiohttp.ClientSession, double: RunningDouble, prompt_id: str
) -> dict[str, Any]:
    response = await session.get(f"{double.url}/history/{prompt_id}")
    return (await response.json())[prompt_id]


def load_capture(name: str) -> Any:
    return json.loads((CAPTURES_0_26 / name).read_text())


def unique_colour() -> int:
    """An EmptyImage colour no other test uses, so nothing comes from the cache by accident."""
    return uuid.uuid4().int % 16777216
