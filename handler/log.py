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


_secrets: set[str] = set()
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING", "ERROR": "ERROR"}


def normalize_level(level: str) -> str:
    """A log level name as logging knows it: case-insensitive, WARN accepted."""
    try:
        return _LEVELS[str(level).strip().upper()]
    except KeyError:
        raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {level!r}") from None


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _message_with_traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + formatter.formatException(record.exc_info)
    # Scrubbed last, so a secret in an exception's text or traceback is caught too.
    return scrub(message)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        prefix = f"{record.levelname:<7} {record.name}"
        if job:
            prefix += f" [{job}]"
        return f"{prefix} | {_message_with_traceback(self, record)}"


class _JsonFormatter(logging.Formatter):
    """RunPod's log viewer reads {"requestId", "message", "level"} lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = _message_with_traceback(self, record)
        line = {
            "requestId": getattr(record, "job_id", None),
            "message": message,
            "level": record.levelname,
            "logger": record.name,
            "time": round(record.created, 3),
        }
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str = "INFO", as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Set up the root logger once: one stream handler on stderr, job ids, secret scrubbing."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ltx_worker", False):
            root.removeHandler(existing)
    stream = logging.StreamHandler(sys.stderr)
    stream._ltx_worker = True  # type: ignore[attr-defined]
    stream.addFilter(_JobIdFilter())
    stream.setFormatter(_JsonFormatter() if as_json else _TextFormatter())
    root.addHandler(stream)
    level = normalize_level(level)
    root.setLevel(level)
    register_secrets(secrets)
    # Chatty libraries stay at WARNING unless we debug.
    for name in ("botocore", "boto3", "urllib3", "s3transfer", "aiohttp.access", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values that must never appear in a log line (tokens, bucket keys)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            _secrets.add(secret)


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
