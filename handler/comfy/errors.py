"""ComfyUI's error answers turned into errors a user can act on (pure; no I/O).

Every error the worker returns has the shape ``{"error": "<one line>", "details": [...]}``.
The one line stands alone (RunPod's local API and dashboards show only it); ``details`` keeps
every node-level fact ComfyUI gave: node id, class, input, message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_LISTED_NAMES = 20
TRACEBACK_TAIL = 3


class JobFailure(Exception):
    """A job ended in an error that the worker reports as ``{"error", "details", ...}``."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.extra = extra

    def as_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {"error": self.message}
        if self.details:
            result["details"] = self.details
        result.update(self.extra)
        return result


def _combo_options(input_config: Any) -> list[str] | None:
    """Options of a combo input in either encoding ComfyUI uses (legacy list or V3 COMBO)."""
    if not isinstance(input_config, (list, tuple)) or not input_config:
        return None
    head = input_config[0]
    if isinstance(head, list):
        return [str(o) for o in head]
    if head == "COMBO" and len(input_config) > 1 and isinstance(input_config[1], Mapping):
        options = input_config[1].get("options")
        if isinstance(options, list):
            return [str(o) for o in options]
    return None


def _short_list(names: Iterable[str]) -> str:
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(names[:MAX_LISTED_NAMES])
    if len(names) > MAX_LISTED_NAMES:
        shown += f", ... ({len(names) - MAX_LISTED_NAMES} more)"
    return shown


def node_error_details(node_errors: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One detail per problem in ComfyUI's ``node_errors`` (its ``error.details`` is often empty)."""
    details: list[dict[str, Any]] = []
    for node_id, node in node_errors.items():
        if not isinstance(node, Mapping):
            continue
        class_type = node.get("class_type")
        for error in node.get("errors") or []:
            extra = error.get("extra_info") or {}
            input_name = extra.get("input_name") or None
            message = str(error.get("message") or error.get("type") or "invalid")
            reason = str(error.get("details") or "")
            if error.get("type") == "value_not_in_list":
                options = _combo_options(extra.get("input_config"))
                received = extra.get("received_value")
                message = f"{received!r} is not one of the available values"
                if options is not None:
                    message += f"; available: {_short_list(options)}"
            elif reason and reason != input_name:
                message = f"{message}: {reason}"
            detail = {
                "node_id": str(node_id),
                "class_type": class_type,
                "input": input_name,
                "message": message,
            }
            if error.get("type"):
                detail["type"] = error["type"]
            details.append(detail)
    return details


def _describe(detail: Mapping[str, Any]) -> str:
    where = f"node {detail['node_id']}"
    if detail.get("class_type"):
        where += f" ({detail['class_type']})"
    if detail.get("input"):
        where += f" input '{detail['input']}'"
    return f"{where}: {detail['message']}"


def summarize(prefix: str, details: list[dict[str, Any]]) -> str:
    """``prefix: first problem (+N more)`` on one line."""
    if not details:
        return prefix
    line = f"{prefix}: {_describe(details[0])}"
    if len(details) > 1:
        line += f" (+{len(details) - 1} more, see details)"
    return " ".join(line.split())


def validation_failure(body: Any, *, model_hint: str | None = None) -> JobFailure:
    """A ComfyUI 400 from ``POST /prompt`` (or a 200 carrying node_errors) as a JobFailure."""
    body = body if isinstance(body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else {}
    node_errors = body.get("node_errors") if isinstance(body.get("node_errors"), Mapping) else {}
    details = node_error_details(node_errors)
    if not details:
        # Errors about the prompt as a whole (unknown class, no outputs, bad prompt id) have
        # no node_errors; their message and extra_info say it all.
        message = str(error.get("message") or "ComfyUI rejected the workflow")
        extra = error.get("extra_info") or {}
        detail: dict[str, Any] = {"type": error.get("type"), "message": message}
        if extra.get("node_id") is not None:
            detail["node_id"] = str(extra["node_id"])
            detail["class_type"] = extra.get("class_type")
        elif error.get("details"):
            detail["message"] = f"{message} ({error['details']})"
        details = [detail]
        line = f"ComfyUI rejected the workflow: {detail['message']}"
        if detail.get("node_id"):
            line = f"ComfyUI rejected the workflow: node {detail['node_id']}: {message}"
        return JobFailure(line, details)
    if model_hint and any(d.get("type") == "value_not_in_list" for d in details):
        for d in details:
            if d.get("type") == "value_not_in_list":
                d["hint"] = model_hint
    return JobFailure(summarize("ComfyUI rejected the workflow", details), details)


def execution_failure(data: Mapping[str, Any]) -> JobFailure:
    """ComfyUI's ``execution_error`` payload: node id/type, exception and the traceback tail."""
    node_id = data.get("node_id")
    node_type = data.get("node_type")
    exc_type = str(data.get("exception_type") or "error")
    exc_message = str(data.get("exception_message") or "").strip()
    short_type = exc_type.rsplit(".", 1)[-1]
    traceback = [str(line).rstrip() for line in (data.get("traceback") or [])][-TRACEBACK_TAIL:]
    detail = {
        "node_id": None if node_id is None else str(node_id),
        "class_type": node_type,
        "exception_type": exc_type,
        "message": exc_message,
        "traceback": traceback,
    }
    where = f"node {node_id} ({node_type})" if node_id is not None else "the workflow"
    line = (
        f"ComfyUI failed while running {where}: {short_type}: {exc_message}"
        if exc_message
        else (f"ComfyUI failed while running {where}: {short_type}")
    )
    return JobFailure(" ".join(line.split()), [detail])


def interrupted_failure(data: Mapping[str, Any], reason: str) -> JobFailure:
    """An interrupted prompt (our timeout, a cancel, or someone else's /interrupt)."""
    detail = {"node_id": data.get("node_id"), "class_type": data.get("node_type"), "message": reason}
    return JobFailure(reason, [detail] if data.get("node_id") is not None else [])
