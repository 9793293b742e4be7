"""ComfyUI's WebSocket messages, interpreted for one prompt (pure; no I/O).

ComfyUI sends every client JSON text frames ``{"type": T, "data": {...}}`` and binary frames
(``u32`` event type + payload: previews, and since 0.26 the TEXT event that core ``GetImageSize``
broadcasts to every socket with no prompt id). A ``PromptTracker`` is fed the decoded messages
and says when the prompt has finished, how, with which outputs, and how far along it is.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

TERMINAL_TYPES = frozenset({"execution_success", "execution_error", "execution_interrupted"})
BINARY_EVENT_NAMES = {
    1: "preview_image",
    2: "unencoded_preview_image",
    3: "text",
    4: "preview_image_with_metadata",
}


@dataclass(frozen=True)
class BinaryFrame:
    event: int
    name: str
    size: int


def decode_text_frame(text: str) -> dict[str, Any] | None:
    """A text frame as ``{"type", "data"}``, or None when it is not a well-formed message."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    if not isinstance(message.get("data"), dict):
        message["data"] = {}
    return message


def decode_binary_frame(payload: bytes) -> BinaryFrame:
    """Identify a binary frame; we never need its content (previews, GetImageSize text)."""
    if len(payload) < 4:
        return BinaryFrame(event=-1, name="truncated", size=len(payload))
    (event,) = struct.unpack(">I", payload[:4])
    return BinaryFrame(event=event, name=BINARY_EVENT_NAMES.get(event, "unknown"), size=len(payload))


@dataclass(frozen=True)
class Progress:
    """Where a prompt is: the node running, its step counter, and an overall percentage."""

    node: str | None
    class_type: str | None
    step: int | None
    steps: int | None
    nodes_done: int
    nodes_total: int
    percent: float

    def as_update(self) -> dict[str, Any]:
        update: dict[str, Any] = {
            "percent": self.percent,
            "nodes_done": self.nodes_done,
            "nodes_total": self.nodes_total,
        }
        if self.node is not None:
            update["node"] = self.node
            if self.class_type:
                update["class_type"] = self.class_type
        if self.step is not None and self.steps:
            update["step"] = self.step
            update["steps"] = self.steps
        return update


@dataclass
class PromptTracker:
    """Follows one prompt's messages to its end.

    ``feed`` takes every decoded text message of the connection: messages for other prompts and
    broadcasts are ignored. ``terminal`` becomes the ``execution_success`` / ``execution_error`` /
    ``execution_interrupted`` message; ``outputs`` collects each ``executed`` node's UI output
    (cached output nodes included, exactly as ComfyUI reports them).
    """

    prompt_id: str
    class_types: dict[str, str] = field(default_factory=dict)
    terminal: dict[str, Any] | None = None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: bool = False
    _done_nodes: set[str] = field(default_factory=set)
    _current: str | None = None
    _step: int | None = None
    _steps: int | None = None

    @classmethod
    def for_prompt(cls, prompt_id: str, prompt: dict[str, Any]) -> PromptTracker:
        class_types = {
            str(nid): str(node.get("class_type", ""))
            for nid, node in prompt.items()
            if isinstance(node, dict)
        }
        return cls(prompt_id=prompt_id, class_types=class_types)

    @property
    def finished(self) -> bool:
        return self.terminal is not None

    def feed(self, message: dict[str, Any]) -> bool:
        """Apply one message; True when it changed the progress (worth reporting)."""
        kind = message.get("type")
        data = message.get("data") or {}
        if data.get("prompt_id") != self.prompt_id:
            # After a reconnect ComfyUI resends `executing` without a prompt id (protocol g2):
            # accept it only while our prompt is the one running.
            if kind == "executing" and "prompt_id" not in data and self.started and not self.finished:
                return self._on_executing(data.get("node"))
            return False
        if kind == "execution_start":
            self.started = True
            return True
        if kind == "execution_cached":
            self.started = True
            self._done_nodes.update(str(n) for n in data.get("nodes") or [])
            return True
        if kind == "executing":
            self.started = True
            return self._on_executing(data.get("node"))
        if kind == "progress":
            node = data.get("node")
            if node is not None:
                self._current = str(node)
            self._step, self._steps = _as_int(data.get("value")), _as_int(data.get("max"))
            return True
        if kind == "executed":
            node = str(data.get("node"))
            output = data.get("output")
            if isinstance(output, dict):
                self.outputs[node] = output
            self._done_nodes.add(node)
            return True
        if kind in TERMINAL_TYPES:
            self.terminal = message
            return True
        return False

    def _on_executing(self, node: Any) -> bool:
        if node is None:
            return False  # the closing executing(null) follows the terminal message
        if self._current is not None and self._current != str(node):
            self._done_nodes.add(self._current)
        self._current, self._step, self._steps = str(node), None, None
        return True

    def progress(self) -> Progress:
        total = max(len(self.class_types), 1)
        done = len(self._done_nodes & set(self.class_types)) if self.class_types else len(self._done_nodes)
        fraction = 0.0
        if (
            self._current is not None
            and self._current not in self._done_nodes
            and self._step is not None
            and self._steps
        ):
            fraction = min(max(self._step / self._steps, 0.0), 1.0)
        percent = 100.0 if self.finished else min(99.0, round(100.0 * (done + fraction) / total, 1))
        return Progress(
            node=self._current,
            class_type=self.class_types.get(self._current or ""),
            step=self._step,
            steps=self._steps,
            nodes_done=done,
            nodes_total=total,
            percent=percent,
        )


def terminal_from_history(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The terminal message recorded in a ``/history/{id}`` entry, if the prompt has ended.

    History keeps ``status.messages`` as ``[[type, data], ...]``; its last terminal message is
    the one the WebSocket would have delivered.
    """
    status = entry.get("status") or {}
    for item in reversed(status.get("messages") or []):
        if isinstance(item, (list, tuple)) and len(item) == 2 and item[0] in TERMINAL_TYPES:
            return {"type": item[0], "data": item[1] if isinstance(item[1], dict) else {}}
    if status.get("completed") is True:
        return {"type": "execution_success", "data": {}}
    return None


def terminal_from_job(job: dict[str, Any]) -> dict[str, Any] | None:
    """The same from ComfyUI 0.26's ``/api/jobs/{id}``, which tells a cancel from a failure."""
    status = job.get("status")
    if status == "completed":
        return {"type": "execution_success", "data": {}}
    if status == "failed":
        return {"type": "execution_error", "data": dict(job.get("execution_error") or {})}
    if status == "cancelled":
        return {"type": "execution_interrupted", "data": {}}
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
