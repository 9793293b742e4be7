"""The 0.26.0 ``/api/jobs`` view of the queue and history, as pure functions.

A job is a queue item (``pending`` / ``in_progress``) or a history entry (``completed``,
``failed``, or ``cancelled`` when the run ended with ``execution_interrupted``). Summaries carry
``id, status, priority, create_time, execution_start_time, execution_end_time, execution_error,
outputs_count, preview_output`` with absent (None) fields left out; a single finished job also
carries ``outputs``, ``execution_status`` and ``workflow: {prompt, extra_data}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ALL_STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
HISTORY_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})

PREVIEWABLE_MEDIA_TYPES = frozenset({"images", "video", "audio", "3d"})
THREE_D_EXTENSIONS = (".obj", ".fbx", ".gltf", ".glb", ".usdz")

CANCEL_RUNNING = "running"
CANCEL_PENDING = "pending"
CANCEL_TERMINAL = "terminal"
CANCEL_UNKNOWN = "unknown"


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _job_metadata(extra_data: Mapping[str, Any]) -> tuple[Any, Any]:
    pnginfo = extra_data.get("extra_pnginfo") or {}
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
    workflow_id = workflow.get("id") if isinstance(workflow, Mapping) else None
    return extra_data.get("create_time"), workflow_id


def _output_item(item: Any) -> Any:
    """An output list item as the jobs API counts it (3D file names become file dicts)."""
    if isinstance(item, str):
        if item.lower().endswith(THREE_D_EXTENSIONS):
            return {"filename": item, "type": "output", "subfolder": "", "mediaType": "3d"}
        return None
    if isinstance(item, dict):
        return item
    return None


def _previewable(media_type: str, item: Mapping[str, Any]) -> bool:
    if media_type in PREVIEWABLE_MEDIA_TYPES:
        return True
    fmt = item.get("format") or ""
    if isinstance(fmt, str) and fmt.startswith(("video/", "audio/")):
        return True
    return str(item.get("filename", "")).lower().endswith(THREE_D_EXTENSIONS)


def outputs_summary(outputs: Mapping[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """(number of output items, preview item): the first previewable ``type: output`` item wins."""
    count = 0
    preview = None
    fallback = None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, Mapping):
            continue
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for raw in items:
                item = _output_item(raw)
                if item is None:
                    continue
                count += 1
                if preview is not None or not _previewable(media_type, item):
                    continue
                enriched = {**item, "nodeId": node_id}
                enriched.setdefault("mediaType", media_type)
                if item.get("type") == "output":
                    preview = enriched
                elif fallback is None:
                    fallback = enriched
    return count, preview or fallback


def normalize_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    normalized: dict[str, Any] = {}
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, Mapping):
            normalized[node_id] = node_outputs
            continue
        node: dict[str, Any] = {}
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                node[media_type] = items
                continue
            node[media_type] = [(_output_item(item) or item) for item in items if item is not None]
        normalized[node_id] = node
    return normalized


def queue_job(item: Sequence[Any], status: str) -> dict[str, Any]:
    """A pending or running queue item (``[number, id, prompt, extra_data, outputs]``)."""
    create_time, workflow_id = _job_metadata(item[3])
    return _without_none(
        {
            "id": item[1],
            "status": status,
            "priority": item[0],
            "create_time": create_time,
            "outputs_count": 0,
            "workflow_id": workflow_id,
        }
    )


def history_job(prompt_id: str, entry: Mapping[str, Any], include_outputs: bool = False) -> dict[str, Any]:
    """A finished job from its history entry."""
    priority, _, prompt, extra_data, _ = entry["prompt"][:5]
    create_time, workflow_id = _job_metadata(extra_data)
    status_info = entry.get("status") or {}
    outputs = entry.get("outputs", {})
    count, preview = outputs_summary(outputs)
    start = end = error = None
    interrupted = False
    for message in status_info.get("messages", []):
        if not (isinstance(message, (list, tuple)) and len(message) >= 2 and isinstance(message[1], Mapping)):
            continue
        event, data = message[0], message[1]
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
            elif event == "execution_interrupted":
                interrupted = True
    status_str = status_info.get("status_str")
    status = (CANCELLED if interrupted else FAILED) if status_str == "error" else COMPLETED
    job = _without_none(
        {
            "id": prompt_id,
            "status": status,
            "priority": priority,
            "create_time": create_time,
            "execution_start_time": start,
            "execution_end_time": end,
            "execution_error": error,
            "outputs_count": count,
            "preview_output": preview,
            "workflow_id": workflow_id,
        }
    )
    if include_outputs:
        job["outputs"] = normalize_outputs(outputs)
        job["execution_status"] = status_info
        job["workflow"] = {"prompt": prompt, "extra_data": extra_data}
    return job


def get_job(
    prompt_id: str,
    running: Sequence[Sequence[Any]],
    pending: Sequence[Sequence[Any]],
    history: Mapping[str, Any],
) -> dict[str, Any] | None:
    """One job by id (finished jobs with their outputs), or None."""
    if prompt_id in history:
        return history_job(prompt_id, history[prompt_id], include_outputs=True)
    for item in running:
        if item[1] == prompt_id:
            return queue_job(item, IN_PROGRESS)
    for item in pending:
        if item[1] == prompt_id:
            return queue_job(item, PENDING)
    return None


class JobQueryError(ValueError):
    """A bad query parameter of ``GET /api/jobs``."""


def parse_jobs_query(query: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters of ``GET /api/jobs`` to ``list_jobs`` keyword arguments.

    Raises:
        JobQueryError: naming the parameter and what it accepts.
    """
    statuses = None
    if query.get("status"):
        statuses = [part.strip() for part in query["status"].split(",") if part.strip()]
        bad = [status for status in statuses if status not in ALL_STATUSES]
        if bad:
            raise JobQueryError(
                f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(ALL_STATUSES)}"
            )
    sort_by = query.get("sort_by", "created_at")
    if sort_by not in ("created_at", "execution_duration"):
        raise JobQueryError("sort_by must be 'created_at' or 'execution_duration'")
    sort_order = query.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise JobQueryError("sort_order must be 'asc' or 'desc'")
    limit = None
    if query.get("limit") not in (None, ""):
        try:
            limit = int(query["limit"])
        except ValueError as exc:
            raise JobQueryError("limit must be an integer") from exc
        if limit <= 0:
            raise JobQueryError("limit must be a positive integer")
    offset = 0
    if query.get("offset") not in (None, ""):
        try:
            offset = int(query["offset"])
        except ValueError as exc:
            raise JobQueryError("offset must be an integer") from exc
        offset = max(0, offset)
    return {
        "statuses": statuses,
        "workflow_id": query.get("workflow_id") or None,
        "sort_by": sort_by,
        "sort_order": sort_order,
        "limit": limit,
        "offset": offset,
    }


def list_jobs(
    running: Sequence[Sequence[Any]],
    pending: Sequence[Sequence[Any]],
    history: Mapping[str, Any],
    *,
    statuses: Sequence[str] | None = None,
    workflow_id: str | None = None,
    sort_by: str = "created_at",
    sort_order: str = "desc",
    limit: int | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """The ``GET /api/jobs`` body: ``{"jobs": [...], "pagination": {...}}``."""
    wanted = set(statuses or ALL_STATUSES)
    jobs: list[dict[str, Any]] = []
    if IN_PROGRESS in wanted:
        jobs.extend(queue_job(item, IN_PROGRESS) for item in running)
    if PENDING in wanted:
        jobs.extend(queue_job(item, PENDING) for item in pending)
    if wanted & HISTORY_STATUSES:
        for prompt_id, entry in history.items():
            job = history_job(prompt_id, entry)
            if job["status"] in wanted:
                jobs.append(job)
    if workflow_id:
        jobs = [job for job in jobs if job.get("workflow_id") == workflow_id]

    def key(job: Mapping[str, Any]) -> Any:
        if sort_by == "execution_duration":
            start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
            return end - start if start and end else 0
        return job.get("create_time", 0)

    jobs.sort(key=key, reverse=sort_order == "desc")
    total = len(jobs)
    if offset > 0:
        jobs = jobs[offset:]
    if limit is not None:
        jobs = jobs[:limit]
    return {
        "jobs": jobs,
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(jobs) < total,
        },
    }


def classify_for_cancel(
    job_id: str,
    running: Sequence[Sequence[Any]],
    pending: Sequence[Sequence[Any]],
    history: Mapping[str, Any],
) -> str:
    if any(item[1] == job_id for item in running):
        return CANCEL_RUNNING
    if any(item[1] == job_id for item in pending):
        return CANCEL_PENDING
    if job_id in history:
        return CANCEL_TERMINAL
    return CANCEL_UNKNOWN


def cancel_job(
    job_id: str,
    running: Sequence[Sequence[Any]],
    pending: Sequence[Sequence[Any]],
    history: Mapping[str, Any],
    interrupt: Callable[[str], bool],
    dequeue: Callable[[str], bool],
) -> str:
    """Interrupt a running job or dequeue a pending one; the classification of what happened.

    ``interrupt``/``dequeue`` return whether they acted, so a job that moved on between the
    snapshot and the action is handled (a pending job that just started is interrupted).
    """
    kind = classify_for_cancel(job_id, running, pending, history)
    if kind == CANCEL_RUNNING:
        return CANCEL_RUNNING if interrupt(job_id) else CANCEL_UNKNOWN
    if kind == CANCEL_PENDING:
        if dequeue(job_id):
            return CANCEL_PENDING
        return CANCEL_RUNNING if interrupt(job_id) else CANCEL_UNKNOWN
    return kind
