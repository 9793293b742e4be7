"""Helpers shared by the test suites (plain functions, not fixtures)."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (test servers bind to loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def containers_required() -> bool:
    """True when CI demands the container tier (``REQUIRE_CONTAINER_TESTS=1``, set by .ci/run)."""
    return os.environ.get("REQUIRE_CONTAINER_TESTS") == "1"


def skip_unless_required(reason: str) -> NoReturn:
    """Skip for a missing tool, or fail when CI demands container tests: CI never passes by skipping."""
    if containers_required():
        pytest.fail(f"{reason} (REQUIRE_CONTAINER_TESTS=1)")
    pytest.skip(reason)
