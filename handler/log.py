"""Logging: every line carries the job id; JSON lines on RunPod; secrets scrubbed.

The job id lives in a context variable, so concurrent asyncio tasks (the job, progress
updates, the ComfyUI log pump) each log with the id of the job they belong to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

_REDACTED = "***"


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = job_id_var.get()
        return True


class _SecretScrubber(logging.Filter):
    """Replaces any registered secret value in the formatted message with ***."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, _REDACTED)
        if scrubbed is not message and scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        prefix = f"{record.levelname:<7} {record.name}"
        if job:
            prefix += f" [{job}]"
        text = f"{prefix} | {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    """RunPod's log viewer reads {"requestId", "message", "level"} lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        line = {
            "requestId": getattr(record, "job_id", None),
            "message": message,
            "level": record.levelname,
            "logger": record.name,
            "time": round(record.created, 3),
        }
        return json.dumps(line, ensure_ascii=False)


_scrubber = _SecretScrubber()


def configure_logging(level: str = "INFO", as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Set up the root logger once: one stream handler on stderr, job ids, secret scrubbing."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ltx_worker", False):
            root.removeHandler(existing)
    stream = logging.StreamHandler(sys.stderr)
    stream._ltx_worker = True  # type: ignore[attr-defined]
    stream.addFilter(_JobIdFilter())
    stream.addFilter(_scrubber)
    stream.setFormatter(_JsonFormatter() if as_json else _TextFormatter())
    root.addHandler(stream)
    root.setLevel(level)
    register_secrets(secrets)
    # Chatty libraries stay at WARNING unless we debug.
    for name in ("botocore", "boto3", "urllib3", "s3transfer", "aiohttp.access", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values that must never appear in a log line (tokens, bucket keys)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            _scrubber.secrets.add(secret)


@contextlib.contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Tag every log line inside the block with ``job_id``."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


class Stopwatch:
    """Millisecond timings for the result's `timings` block."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._last = self._start
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round((now - self._last) * 1000, 1)
        self._last = now

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._start) * 1000, 1)
