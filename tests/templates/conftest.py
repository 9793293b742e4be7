"""Shared fixtures for the workflow-template tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from handler.models.lock import ModelLock, load_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
OBJECT_INFO_PATH = REPO_ROOT / "tests" / "doubles" / "comfyui" / "data" / "object_info_v0.26.0.json"


@pytest.fixture(scope="session")
def object_info() -> dict:
    """Node schemas recorded from a real ComfyUI 0.26.0."""
    return json.loads(OBJECT_INFO_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def lock() -> ModelLock:
    return load_lock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261127)
