"""The prompt queue and the executor: one prompt at a time, in a worker thread, like ComfyUI.

It reproduces what a client can observe of ComfyUI's ``PromptQueue``, ``PromptExecutor`` and
``ExecutionList``:

- queue items are ``(number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)`` in a
  heap (``front`` gives a negative number); every change broadcasts ``status``; taking an item
  broadcasts it too, and the count only drops when the item finishes;
- the node order is ComfyUI's: outputs are added to an execution list depth-first, and among the
  ready nodes an output node is picked first, then a node that unblocks an output, then one two
  steps from an output, else the first ready one;
- messages: ``execution_start``, ``execution_cached``, per node ``progress_state`` (running) ->
  ``executing`` -> [``progress`` ticks] -> ``executed`` (UI nodes) -> ``progress_state``
  (finished); then ``execution_success`` / ``execution_error`` / ``execution_interrupted``. Prompt
  messages go to the submitting client id only; ``progress_state`` and ``progress`` go to that id
  too, which means to every socket when the prompt had no client id (as recorded);
  ``execution_interrupted`` is sent even without a client id;
- caching: a node whose class and inputs (recursively through links) equal an earlier run's is
  answered from the cache and listed in ``execution_cached``; a cached output node still gets
  ``executed`` with its old output. 0.26.0 keeps results of many prompts (its RAM-pressure
  cache), 0.3.64 only those the new prompt shares with the previous one;
- interrupts are checked at each progress tick and at the start of each non-cached node, after
  its ``executing`` message;
- history is written before the final ``status``, and ``executing {node: null}`` comes last.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import json
import logging
import os
import struct
import sys
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .folders import FolderPaths
from .nodes import NEVER_CACHED, InterruptProcessingException, NodeContext, hang_forever, run_node
from .schema import input_specs, is_link, is_output_node, return_types

logger = logging.getLogger("comfy_double")

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

BINARY_PREVIEW_IMAGE = 1
BINARY_TEXT = 3
BINARY_PREVIEW_IMAGE_WITH_METADATA = 4

OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size to a large number."
)

# Files whose content decides whether a loader re-runs (ComfyUI's IS_CHANGED / fingerprint).
_FILE_INPUTS = {"LoadImage": "image", "LoadImageMask": "image", "LoadAudio": "audio", "LoadVideo": "file"}


def now_ms() -> int:
    return int(time.time() * 1000)


class InterruptFlag:
    """ComfyUI's global ``interrupt_processing`` flag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False

    def set(self, value: bool = True) -> None:
        with self._lock:
            self._set = value

    def is_set(self) -> bool:
        with self._lock:
            return self._set

    def throw_if_set(self) -> None:
        with self._lock:
            if self._set:
                self._set = False
                raise InterruptProcessingException()


class ExecutionHost(Protocol):
    """What the executor needs from the server."""

    client_id: str | None
    last_node_id: str | None
    last_prompt_id: str | None
    folders: FolderPaths
    interrupt: InterruptFlag
    disable_metadata: bool
    step_seconds: float
    keep_cache_across_prompts: bool

    def send_sync(self, event: str | int, data: Any, sid: str | None = None) -> None: ...

    def queue_updated(self) -> None: ...

    def supports_preview_metadata(self, sid: str | None) -> bool: ...

    def drop_sockets(self) -> None: ...

    def flush_messages(self, timeout: float) -> None: ...

    def current_object_info(self) -> Mapping[str, Any]: ...


# -------------------------------------------------------------------------------------- queue


class PromptQueue:
    """ComfyUI's prompt queue, history included."""

    def __init__(self, host: ExecutionHost) -> None:
        self.host = host
        self.mutex = threading.RLock()
        self.not_empty = threading.Condition(self.mutex)
        self.task_counter = 0
        self.queue: list[tuple[Any, ...]] = []
        self.currently_running: dict[int, tuple[Any, ...]] = {}
        self.history: dict[str, dict[str, Any]] = {}

    def put(self, item: tuple[Any, ...]) -> None:
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.host.queue_updated()
            self.not_empty.notify()

    def get(self, timeout: float | None = None) -> tuple[tuple[Any, ...], int] | None:
        with self.not_empty:
            while not self.queue:
                self.not_empty.wait(timeout=timeout)
                if timeout is not None and not self.queue:
                    return None
            item = heapq.heappop(self.queue)
            item_id = self.task_counter
            self.currently_running[item_id] = copy.deepcopy(item)
            self.task_counter += 1
            self.host.queue_updated()
            return item, item_id

    def task_done(
        self,
        item_id: int,
        history_result: dict[str, Any],
        status: dict[str, Any] | None,
    ) -> None:
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            if len(self.history) > MAXIMUM_HISTORY_SIZE:
                self.history.pop(next(iter(self.history)))
            entry: dict[str, Any] = {
                "prompt": list(prompt[:5]),
                "outputs": {},
                "status": copy.deepcopy(status),
            }
            entry.update(history_result)
            self.history[prompt[1]] = entry
            self.host.queue_updated()

    def get_current_queue(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """(running, pending) with the sensitive field removed, pending in heap order."""
        with self.mutex:
            running = [list(copy.deepcopy(item[:5])) for item in self.currently_running.values()]
            pending = [list(copy.deepcopy(item[:5])) for item in self.queue]
            return running, pending

    def get_tasks_remaining(self) -> int:
        with self.mutex:
            return len(self.queue) + len(self.currently_running)

    def wipe_queue(self) -> None:
        with self.mutex:
            self.queue = []
            self.host.queue_updated()

    def delete_queue_item(self, function: Callable[[tuple[Any, ...]], bool]) -> bool:
        with self.mutex:
            for index, item in enumerate(self.queue):
                if function(item):
                    if len(self.queue) == 1:
                        self.wipe_queue()  # ComfyUI sends a second status here
                    else:
                        self.queue.pop(index)
                        heapq.heapify(self.queue)
                    self.host.queue_updated()
                    return True
        return False

    def is_running(self, prompt_id: str) -> bool:
        with self.mutex:
            return any(item[1] == prompt_id for item in self.currently_running.values())

    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        with self.mutex:
            if prompt_id is None:
                out: dict[str, Any] = {}
                if offset < 0 and max_items is not None:
                    offset = len(self.history) - max_items
                for index, key in enumerate(self.history):
                    if index >= offset:
                        out[key] = copy.deepcopy(self.history[key])
                        if max_items is not None and len(out) >= max_items:
                            break
                return out
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}

    def wipe_history(self) -> None:
        with self.mutex:
            self.history = {}

    def delete_history_item(self, prompt_id: str) -> None:
        with self.mutex:
            self.history.pop(prompt_id, None)


# ----------------------------------------------------------------------------- execution list


class ExecutionList:
    """ComfyUI's topological execution list (``comfy_execution.graph.ExecutionList``)."""

    def __init__(
        self,
        prompt: Mapping[str, Any],
        is_cached: Callable[[str], bool],
        is_output: Callable[[str], bool],
    ) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.is_output = is_output
        self.pending_nodes: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[int, bool]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending_nodes:
                continue
            self.pending_nodes[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in self.prompt[unique_id]["inputs"].values():
                if is_link(value) and value[0] in self.prompt:
                    from_id, socket = value
                    if not self.is_cached(from_id):
                        stack.append(from_id)
                    links.append((from_id, socket, unique_id))
        for from_id, socket, to_id in links:
            self._add_strong_link(from_id, socket, to_id)

    def _add_strong_link(self, from_id: str, socket: int, to_id: str) -> None:
        if self.is_cached(from_id):
            return
        self.add_node(from_id)
        if to_id not in self.blocking[from_id]:
            self.blocking[from_id][to_id] = {}
            self.block_count[to_id] += 1
        self.blocking[from_id][to_id][socket] = True

    def is_empty(self) -> bool:
        return not self.pending_nodes

    def ready_nodes(self) -> list[str]:
        return [node_id for node_id in self.pending_nodes if self.block_count[node_id] == 0]

    def pick(self) -> str | None:
        """The next node to run, or None when only a dependency cycle is left."""
        available = self.ready_nodes()
        if not available:
            return None
        for node_id in available:
            if self.is_output(node_id):
                return node_id
        for node_id in available:
            if any(self.is_output(blocked) for blocked in self.blocking[node_id]):
                return node_id
        for node_id in available:
            for blocked in self.blocking[node_id]:
                if any(self.is_output(further) for further in self.blocking[blocked]):
                    return node_id
        return available[0]

    def complete(self, node_id: str) -> None:
        del self.pending_nodes[node_id]
        for blocked in self.blocking[node_id]:
            self.block_count[blocked] -= 1
        del self.blocking[node_id]


def execution_order(
    prompt: Mapping[str, Any],
    outputs: list[str],
    object_info: Mapping[str, Any],
    cached: frozenset[str] = frozenset(),
) -> list[str]:
    """The order ComfyUI runs a prompt's nodes in (pure; for tests and tools)."""
    execution = ExecutionList(
        prompt,
        lambda node_id: node_id in cached,
        lambda node_id: is_output_node(object_info[prompt[node_id]["class_type"]]),
    )
    for output in outputs:
        execution.add_node(output)
    order = []
    while not execution.is_empty():
        node_id = execution.pick()
        if node_id is None:
            break
        order.append(node_id)
        execution.complete(node_id)
    return order


# ------------------------------------------------------------------------------------ progress


class ProgressRegistry:
    """Per-prompt node states; every change sends the whole map of non-pending nodes."""

    def __init__(self, prompt_id: str, host: ExecutionHost) -> None:
        self.prompt_id = prompt_id
        self.host = host
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"state": "pending", "value": 0, "max": 1}
        return self.nodes[node_id]

    def start(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="running", value=0.0, max=1.0)
        self._send()

    def update(self, node_id: str, value: float, maximum: float) -> None:
        entry = self._entry(node_id)
        entry.update(state="running", value=value, max=maximum)
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry["state"] = "finished"
        entry["value"] = entry["max"]
        self._send()

    def _send(self) -> None:
        active = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self.nodes.items()
            if entry["state"] != "pending"
        }
        self.host.send_sync(
            "progress_state", {"prompt_id": self.prompt_id, "nodes": active}, self.host.client_id
        )


# --------------------------------------------------------------------------------------- cache


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class OutputCache:
    """Node results by input signature."""

    def __init__(self, keep_across_prompts: bool, limit: int = 1024) -> None:
        self.keep_across_prompts = keep_across_prompts
        self.limit = limit
        self.entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self.signatures: dict[str, str] = {}

    def set_prompt(self, signatures: dict[str, str]) -> None:
        self.signatures = signatures
        if not self.keep_across_prompts:
            used = set(signatures.values())
            for key in [key for key in self.entries if key not in used]:
                del self.entries[key]

    def get(self, node_id: str) -> CacheEntry | None:
        key = self.signatures.get(node_id)
        entry = self.entries.get(key) if key is not None else None
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def set(self, node_id: str, entry: CacheEntry) -> None:
        key = self.signatures[node_id]
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)

    def all_node_ids(self) -> list[str]:
        return list(self.signatures)


def _has_unique_id_input(class_info: Mapping[str, Any]) -> bool:
    hidden = class_info.get("input", {}).get("hidden", {}) or {}
    return any(
        spec == "UNIQUE_ID" or (isinstance(spec, list) and spec[:1] == ["UNIQUE_ID"])
        for spec in hidden.values()
    )


def compute_signatures(
    prompt: Mapping[str, Any],
    object_info: Mapping[str, Any],
    is_changed: Callable[[str, Mapping[str, Any]], Any],
) -> dict[str, str]:
    """A cache key per node: class, change marker and inputs, recursively through links."""
    memo: dict[str, str] = {}
    visiting: set[str] = set()

    def signature(node_id: str) -> str:
        if node_id in memo:
            return memo[node_id]
        if node_id in visiting or node_id not in prompt:
            return f"unresolvable:{node_id}"
        visiting.add(node_id)
        node = prompt[node_id]
        class_type = node["class_type"]
        parts: list[Any] = [class_type, is_changed(node_id, node)]
        if _has_unique_id_input(object_info.get(class_type, {})):
            parts.append(node_id)
        inputs = node.get("inputs", {})
        for key in sorted(inputs):
            value = inputs[key]
            if is_link(value):
                parts.append([key, "link", signature(value[0]), value[1]])
            else:
                parts.append([key, value])
        visiting.discard(node_id)
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()
        memo[node_id] = digest
        return digest

    return {node_id: signature(node_id) for node_id in prompt}


def format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def full_type_name(exc_type: type) -> str:
    module = exc_type.__module__
    if module in (None, "builtins", "__builtin__"):
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


# ------------------------------------------------------------------------------------ executor


class PromptExecutor:
    """Runs one prompt, sending ComfyUI's messages through the host."""

    def __init__(self, host: ExecutionHost) -> None:
        self.host = host
        self.cache = OutputCache(keep_across_prompts=host.keep_cache_across_prompts)
        self.status_messages: list[list[Any]] = []
        self.success = True
        self.history_result: dict[str, Any] = {}

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": now_ms()}
        self.status_messages.append([event, data])
        if self.host.client_id is not None or broadcast:
            self.host.send_sync(event, data, self.host.client_id)

    def _is_changed(self, node_id: str, node: Mapping[str, Any]) -> Any:
        class_type = node["class_type"]
        if class_type in NEVER_CACHED:
            return uuid.uuid4().hex  # like IS_CHANGED returning NaN: never equal
        input_name = _FILE_INPUTS.get(class_type)
        if input_name is None:
            return ""
        value = node.get("inputs", {}).get(input_name)
        if not isinstance(value, str):
            return ""
        path = self.host.folders.get_annotated_filepath(value)
        try:
            if class_type == "LoadVideo":
                return os.path.getmtime(path)
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return uuid.uuid4().hex

    def execute(
        self, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any], outputs: list[str]
    ) -> None:
        host = self.host
        host.interrupt.set(False)
        host.client_id = extra_data.get("client_id") if "client_id" in extra_data else None
        object_info = host.current_object_info()
        self.status_messages = []
        self.success = True
        self.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        progress = ProgressRegistry(prompt_id, host)
        self.cache.set_prompt(compute_signatures(prompt, object_info, self._is_changed))
        cached_nodes = [node_id for node_id in prompt if self.cache.get(node_id) is not None]
        self.add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False)

        results: dict[str, tuple[Any, ...]] = {}
        ui_outputs: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        current_outputs = self.cache.all_node_ids()
        execution = ExecutionList(
            prompt,
            lambda node_id: self.cache.get(node_id) is not None,
            lambda node_id: is_output_node(object_info[prompt[node_id]["class_type"]]),
        )
        for output in outputs:
            execution.add_node(output)

        failure: tuple[dict[str, Any], BaseException] | None = None
        while not execution.is_empty():
            node_id = execution.pick()
            if node_id is None:
                blamed = next(iter(execution.pending_nodes))
                failure = (
                    {
                        "node_id": blamed,
                        "exception_message": "Dependency cycle detected",
                        "exception_type": "graph.DependencyCycleError",
                        "traceback": [],
                        "current_inputs": [],
                    },
                    RuntimeError("Dependency cycle detected"),
                )
                break
            error = self._execute_node(
                prompt, prompt_id, node_id, extra_data, object_info, progress, results, ui_outputs, executed
            )
            if error is not None:
                failure = error
                break
            execution.complete(node_id)

        if failure is None:
            self.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        else:
            self.success = False
            self._handle_execution_error(prompt_id, prompt, current_outputs, executed, *failure)

        self.history_result = {
            "outputs": {node_id: ui["output"] for node_id, ui in ui_outputs.items()},
            "meta": {node_id: ui["meta"] for node_id, ui in ui_outputs.items()},
        }
        host.last_node_id = None

    def _handle_execution_error(
        self,
        prompt_id: str,
        prompt: Mapping[str, Any],
        current_outputs: list[str],
        executed: list[str],
        error: dict[str, Any],
        exception: BaseException,
    ) -> None:
        node_id = error["node_id"]
        message: dict[str, Any] = {
            "prompt_id": prompt_id,
            "node_id": node_id,
            "node_type": prompt[node_id]["class_type"],
            # ComfyUI sends a set; recorded captures show the most recent node first.
            "executed": list(reversed(executed)),
        }
        if isinstance(exception, InterruptProcessingException):
            self.add_message("execution_interrupted", message, broadcast=True)
            return
        message.update(
            exception_message=error["exception_message"],
            exception_type=error["exception_type"],
            traceback=error["traceback"],
            current_inputs=error["current_inputs"],
            current_outputs=list(current_outputs),
        )
        self.add_message("execution_error", message, broadcast=False)

    def _context(
        self,
        prompt: Mapping[str, Any],
        prompt_id: str,
        node_id: str,
        extra_data: Mapping[str, Any],
        progress: ProgressRegistry,
    ) -> NodeContext:
        host = self.host

        def progress_hook(value: float, total: float, preview_png: bytes | None = None) -> None:
            host.interrupt.throw_if_set()
            progress.update(node_id, value, total)
            supports_metadata = host.supports_preview_metadata(host.client_id)
            if preview_png is not None and supports_metadata:
                meta = json.dumps(
                    {
                        "node_id": node_id,
                        "prompt_id": prompt_id,
                        "display_node_id": node_id,
                        "parent_node_id": None,
                        "real_node_id": node_id,
                        "image_type": "image/png",
                    }
                ).encode()
                host.send_sync(
                    BINARY_PREVIEW_IMAGE_WITH_METADATA,
                    struct.pack(">I", len(meta)) + meta + preview_png,
                    host.client_id,
                )
            host.send_sync(
                "progress",
                {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
                host.client_id,
            )
            if preview_png is not None and not supports_metadata:
                host.send_sync(BINARY_PREVIEW_IMAGE, struct.pack(">I", 2) + preview_png, host.client_id)

        def send_text(text: str) -> None:
            node_bytes = node_id.encode()
            host.send_sync(BINARY_TEXT, struct.pack(">I", len(node_bytes)) + node_bytes + text.encode(), None)

        def crash(code: int) -> None:
            # Let what was already said (the POST answer, this node's "executing") reach the
            # clients, as it would before a real segfault a moment into the node.
            host.flush_messages(timeout=2.0)
            time.sleep(0.1)
            logger.error("DoubleCrash: node %s ends the process with exit code %d", node_id, code)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

        return NodeContext(
            node_id=node_id,
            class_type=prompt[node_id]["class_type"],
            prompt_id=prompt_id,
            prompt=prompt,
            extra_data=extra_data,
            folders=host.folders,
            disable_metadata=host.disable_metadata,
            step_seconds=host.step_seconds,
            progress=progress_hook,
            check_interrupt=host.interrupt.throw_if_set,
            send_text=send_text,
            drop_sockets=host.drop_sockets,
            crash=crash,
            hang=hang_forever,
        )

    def _input_data(
        self,
        prompt: Mapping[str, Any],
        node_id: str,
        object_info: Mapping[str, Any],
        results: Mapping[str, tuple[Any, ...]],
        extra_data: Mapping[str, Any],
    ) -> dict[str, Any]:
        node = prompt[node_id]
        class_info = object_info[node["class_type"]]
        specs = input_specs(class_info, node["inputs"])
        data: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            if is_link(value):
                source = results.get(value[0])
                if source is None:
                    cached = self.cache.get(value[0])
                    source = cached.outputs if cached is not None else None
                data[name] = source[value[1]] if source is not None and value[1] < len(source) else None
            elif name in specs:
                data[name] = value
        for name, spec in (class_info.get("input", {}).get("hidden") or {}).items():
            kind = spec[0] if isinstance(spec, list) else spec
            if kind == "PROMPT":
                data[name] = prompt
            elif kind == "EXTRA_PNGINFO":
                data[name] = extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                data[name] = node_id
        return data

    def _execute_node(
        self,
        prompt: Mapping[str, Any],
        prompt_id: str,
        node_id: str,
        extra_data: Mapping[str, Any],
        object_info: Mapping[str, Any],
        progress: ProgressRegistry,
        results: dict[str, tuple[Any, ...]],
        ui_outputs: dict[str, dict[str, Any]],
        executed: list[str],
    ) -> tuple[dict[str, Any], BaseException] | None:
        host = self.host
        cached = self.cache.get(node_id)
        if cached is not None:
            if host.client_id is not None:
                output = cached.ui["output"] if cached.ui else None
                host.send_sync(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": output, "prompt_id": prompt_id},
                    host.client_id,
                )
            if cached.ui is not None:
                ui_outputs[node_id] = cached.ui
            progress.finish(node_id)
            return None

        input_data: dict[str, Any] | None = None
        try:
            progress.start(node_id)
            input_data = self._input_data(prompt, node_id, object_info, results, extra_data)
            if host.client_id is not None:
                host.last_node_id = node_id
                host.send_sync(
                    "executing",
                    {"node": node_id, "display_node": node_id, "prompt_id": prompt_id},
                    host.client_id,
                )
            host.interrupt.throw_if_set()
            context = self._context(prompt, prompt_id, node_id, extra_data, progress)
            node_inputs = {
                key: value for key, value in input_data.items() if key not in ("prompt", "extra_pnginfo")
            }
            outputs, ui = run_node(context, node_inputs, list(return_types(prompt, node_id, object_info)))
            results[node_id] = outputs
            ui_entry = None
            if ui:
                ui_entry = {
                    "meta": {
                        "node_id": node_id,
                        "display_node": node_id,
                        "parent_node": None,
                        "real_node_id": node_id,
                    },
                    "output": ui,
                }
                ui_outputs[node_id] = ui_entry
                if host.client_id is not None:
                    host.send_sync(
                        "executed",
                        {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
                        host.client_id,
                    )
            self.cache.set(node_id, CacheEntry(outputs, ui_entry))
            progress.finish(node_id)
            executed.append(node_id)
            return None
        except InterruptProcessingException as interrupted:
            logger.info("Processing interrupted")
            return {"node_id": node_id}, interrupted
        except Exception as ex:
            tips = OOM_TIPS if full_type_name(type(ex)) == "torch.OutOfMemoryError" else ""
            formatted = {name: [format_value(value)] for name, value in (input_data or {}).items()}
            logger.error("!!! Exception during processing !!! %s", ex)
            logger.error("%s", traceback.format_exc())
            return (
                {
                    "node_id": node_id,
                    "exception_message": f"{ex}\n{tips}",
                    "exception_type": full_type_name(type(ex)),
                    "traceback": traceback.format_tb(ex.__traceback__),
                    "current_inputs": formatted,
                },
                ex,
            )


def prompt_worker(
    queue: PromptQueue, executor: PromptExecutor, host: ExecutionHost, stop: threading.Event
) -> None:
    """The worker loop: take the next prompt, run it, write history, say it is done."""
    while not stop.is_set():
        taken = queue.get(timeout=0.5)
        if taken is None:
            continue
        item, item_id = taken
        started = time.perf_counter()
        prompt_id = item[1]
        host.last_prompt_id = prompt_id
        extra_data = dict(item[3])
        extra_data.update(item[5] if len(item) > 5 else {})
        try:
            executor.execute(item[2], prompt_id, extra_data, item[4])
        except Exception:
            # A bug in the double, not a node failure: keep the queue moving and say so loudly.
            logger.exception("comfy_double: internal error while executing prompt %s", prompt_id)
            executor.success = False
            executor.history_result = {"outputs": {}, "meta": {}}
        status = {
            "status_str": "success" if executor.success else "error",
            "completed": executor.success,
            "messages": executor.status_messages,
        }
        queue.task_done(item_id, executor.history_result, status)
        if host.client_id is not None:
            host.send_sync("executing", {"node": None, "prompt_id": prompt_id}, host.client_id)
        elapsed = time.perf_counter() - started
        if elapsed > 600:
            logger.info("Prompt executed in %s", time.strftime("%H:%M:%S", time.gmtime(elapsed)))
        else:
            logger.info("Prompt executed in %.2f seconds", elapsed)
