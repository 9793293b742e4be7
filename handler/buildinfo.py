"""What an image knows about itself: /opt/worker/build-info.json, written at build time.

Example (a baked fp8 image)::

    {"variant": "fp8", "model_set": "fp8", "models_dir": "/opt/worker/models",
     "models_verified": true, "lock_digest": "<sha256 of models.lock.yaml>",
     "comfyui_commit": "7cb784e0...", "version": "0.1.0", "created": "2026-11-27T14:00:00Z"}

A slim image has ``"model_set": null`` and ``"models_dir": null``. Outside an image (a source
checkout) there is no file and ``BuildInfo.unknown()`` stands in.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError


class BuildInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    variant: str
    model_set: str | None = None
    models_dir: str | None = None
    models_verified: bool = False  # baked models were hashed against the lock during the build
    lock_digest: str | None = None
    comfyui_commit: str | None = None
    version: str | None = None
    created: str | None = None

    @classmethod
    def unknown(cls) -> BuildInfo:
        return cls(variant="source")

    @property
    def is_baked(self) -> bool:
        return self.model_set is not None and self.models_dir is not None


def read_build_info(path: Path) -> BuildInfo:
    """Read the image's build info; a missing file means "not an image" (a source checkout)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BuildInfo.unknown()
    try:
        return BuildInfo.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{path} is not valid build info: {exc}") from None
