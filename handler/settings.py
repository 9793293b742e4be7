"""Worker configuration, read once from environment variables.

Every setting has one environment variable (the field's alias), a default and a description;
the README's configuration table lists the same names. ``Settings.from_env`` takes any mapping,
so tests build settings without touching ``os.environ``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from handler.log import normalize_level

# The RunPod network volume's mount point in serverless workers.
RUNPOD_VOLUME = Path("/runpod-volume")
# Where an image keeps what it knows about itself and its baked models.
DEFAULT_WORKER_HOME = Path("/opt/worker")


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the variable."""


class Settings(BaseModel):
    """All worker settings. Field aliases are the environment variable names."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    # --- ComfyUI child process -------------------------------------------------------------
    comfyui_path: Path = Field(
        Path("/opt/ComfyUI"), alias="COMFYUI_PATH", description="ComfyUI checkout (holds main.py)."
    )
    comfyui_python: str | None = Field(
        None,
        alias="COMFYUI_PYTHON",
        description="Python that runs ComfyUI; default /opt/venv/bin/python if present, else this Python.",
    )
    comfyui_host: str = Field("127.0.0.1", alias="COMFYUI_HOST", description="Address ComfyUI listens on.")
    comfyui_port: int = Field(8188, alias="COMFYUI_PORT", description="Port ComfyUI listens on.")
    comfyui_args: str = Field(
        "", alias="COMFYUI_ARGS", description="Extra ComfyUI command-line arguments (shell syntax)."
    )
    comfyui_cpu: bool = Field(False, alias="COMFYUI_CPU", description="Run ComfyUI with --cpu (no GPU).")
    comfyui_startup_timeout: float = Field(
        600.0, alias="COMFYUI_STARTUP_TIMEOUT", description="Seconds to wait for ComfyUI to answer."
    )
    comfyui_log_lines: int = Field(
        200, alias="COMFYUI_LOG_LINES", description="ComfyUI log lines kept for error reports."
    )
    comfyui_data_dir: Path | None = Field(
        None,
        alias="COMFYUI_DATA_DIR",
        description="Parent of ComfyUI's input/, output/ and temp/ folders; default COMFYUI_PATH.",
    )

    # --- Serving -----------------------------------------------------------------------------
    serve_api: bool = Field(
        False, alias="SERVE_API", description="Serve the RunPod SDK's local API instead of polling RunPod."
    )
    serve_api_host: str = Field("127.0.0.1", alias="SERVE_API_HOST", description="Local API bind address.")
    serve_api_port: int = Field(8000, alias="SERVE_API_PORT", description="Local API port.")
    log_level: str = Field("INFO", alias="LOG_LEVEL", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["auto", "text", "json"] = Field(
        "auto", alias="LOG_FORMAT", description="auto = JSON lines on RunPod (RUNPOD_ENDPOINT_ID set)."
    )
    runpod_endpoint_id: str | None = Field(
        None, alias="RUNPOD_ENDPOINT_ID", description="Set by RunPod; switches logs to JSON lines."
    )

    # --- Jobs ----------------------------------------------------------------------------------
    job_timeout: float = Field(
        1800.0,
        alias="JOB_TIMEOUT",
        description="Default per-job timeout in seconds (input `timeout` overrides).",
    )
    job_timeout_max: float = Field(
        86400.0, alias="JOB_TIMEOUT_MAX", description="Largest `timeout` a job may ask for, in seconds."
    )
    interrupt_grace: float = Field(
        15.0,
        alias="INTERRUPT_GRACE",
        description="Seconds an interrupted prompt may take to stop before ComfyUI is restarted.",
    )
    progress_interval: float = Field(
        1.0, alias="PROGRESS_INTERVAL", description="Least seconds between RunPod progress updates."
    )
    inline_max_bytes: int = Field(
        8_000_000,
        alias="INLINE_MAX_BYTES",
        description="Largest serialized result returned inline (RunPod's /run limit is 10 MB).",
    )
    warmup: str | None = Field(
        None,
        alias="WARMUP",
        description="Job input (JSON, or @path to a JSON file) run once before the first job.",
    )
    outputs_on_volume: bool = Field(
        False,
        alias="OUTPUTS_ON_VOLUME",
        description="Also keep each job's outputs in /runpod-volume/outputs/<job id>/.",
    )

    # --- Media inputs -----------------------------------------------------------------------
    media_max_bytes: int = Field(
        200_000_000, alias="MEDIA_MAX_BYTES", description="Largest media input (decoded) in bytes."
    )
    media_fetch_timeout: float = Field(
        60.0, alias="MEDIA_FETCH_TIMEOUT", description="Seconds allowed to download one media URL."
    )
    media_allow_private_urls: bool = Field(
        False,
        alias="MEDIA_ALLOW_PRIVATE_URLS",
        description="Allow media URLs on private, loopback and link-local addresses.",
    )

    # --- Output bucket ------------------------------------------------------------------------
    bucket_endpoint_url: str | None = Field(
        None, alias="BUCKET_ENDPOINT_URL", description="S3-compatible endpoint for large outputs."
    )
    bucket_access_key_id: SecretStr | None = Field(
        None, alias="BUCKET_ACCESS_KEY_ID", description="Bucket access key id."
    )
    bucket_secret_access_key: SecretStr | None = Field(
        None, alias="BUCKET_SECRET_ACCESS_KEY", description="Bucket secret key."
    )
    bucket_name: str | None = Field(
        None,
        alias="BUCKET_NAME",
        description="Bucket; default taken from a virtual-host endpoint (https://BUCKET.s3.REGION...).",
    )
    bucket_region: str | None = Field(None, alias="BUCKET_REGION", description="Bucket region, if needed.")
    bucket_url_expiry: int = Field(
        604800,
        ge=1,
        le=604800,  # SigV4 presigned URLs live at most 7 days
        alias="BUCKET_URL_EXPIRY",
        description="Lifetime of returned presigned URLs in seconds (at most 604800, 7 days).",
    )

    # --- Models ---------------------------------------------------------------------------------
    models_lock: Path | None = Field(
        None,
        alias="MODELS_LOCK",
        description="models.lock.yaml to use; default the one shipped with the worker.",
    )
    model_set: str | None = Field(
        None,
        alias="MODEL_SET",
        description="Model set for slim images (bf16 or fp8); baked images know theirs.",
    )
    models_dir: Path | None = Field(
        None, alias="MODELS_DIR", description="Explicit models directory, searched first."
    )
    baked_models_dir: Path = Field(
        DEFAULT_WORKER_HOME / "models", alias="BAKED_MODELS_DIR", description="The image's baked models."
    )
    runpod_volume: Path = Field(
        RUNPOD_VOLUME, alias="RUNPOD_VOLUME_PATH", description="Network volume mount point."
    )
    allow_downloads: bool = Field(
        False,
        alias="ALLOW_DOWNLOADS",
        description="Download missing model files from Hugging Face at startup.",
    )
    download_dir: Path | None = Field(
        None,
        alias="DOWNLOAD_DIR",
        description=(
            "Where downloads go; default /runpod-volume/models, or WORKER_HOME/downloads (container disk) "
            "without a volume or with a read-only one."
        ),
    )
    verify_models: Literal["download", "full"] = Field(
        "download",
        alias="VERIFY_MODELS",
        description=(
            "download: hash only downloads (always verified); full: also hash every located file "
            "once, remembered on the volume by path, size and mtime."
        ),
    )
    model_paths_yaml: Path | None = Field(
        None,
        alias="MODEL_PATHS_YAML",
        description="Where the generated extra_model_paths.yaml goes; default WORKER_HOME/state/.",
    )
    worker_home: Path = Field(
        DEFAULT_WORKER_HOME,
        alias="WORKER_HOME",
        description="Holds build-info.json; startup writes state/ (model symlink farm, extra_model_paths.yaml).",
    )
    hf_token: SecretStr | None = Field(
        None, alias="HF_TOKEN", description="Hugging Face token (gated repos)."
    )
    hf_endpoint: str | None = Field(None, alias="HF_ENDPOINT", description="Hugging Face endpoint override.")

    @field_validator(
        "comfyui_python",
        "bucket_endpoint_url",
        "bucket_name",
        "bucket_region",
        "warmup",
        "model_set",
        "runpod_endpoint_id",
        "hf_endpoint",
        mode="before",
    )
    @classmethod
    def _empty_string_is_unset(cls, value: object) -> object:
        # `docker run -e X=` and RunPod's UI both produce empty strings for "not set".
        return None if value == "" else value

    @field_validator(
        "bucket_access_key_id",
        "bucket_secret_access_key",
        "hf_token",
        "models_lock",
        "models_dir",
        "download_dir",
        "model_paths_yaml",
        "comfyui_data_dir",
        mode="before",
    )
    @classmethod
    def _empty_path_or_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        return normalize_level(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); errors name the variable."""
        source = dict(os.environ if environ is None else environ)
        try:
            return cls.model_validate(source)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else "?"
                alias = cls.model_fields[field].alias if field in cls.model_fields else field
                problems.append(f"{alias}={source.get(alias or '', '')!r}: {error['msg']}")
            raise SettingsError("invalid configuration: " + "; ".join(problems)) from None

    # --- Derived values (pure) --------------------------------------------------------------
    @property
    def comfyui_url(self) -> str:
        return f"http://{self.comfyui_host}:{self.comfyui_port}"

    @property
    def comfyui_data_root(self) -> Path:
        return self.comfyui_data_dir or self.comfyui_path

    @property
    def input_dir(self) -> Path:
        return self.comfyui_data_root / "input"

    @property
    def output_dir(self) -> Path:
        return self.comfyui_data_root / "output"

    @property
    def temp_dir(self) -> Path:
        return self.comfyui_data_root / "temp"

    @property
    def comfyui_extra_args(self) -> list[str]:
        return shlex.split(self.comfyui_args)

    @property
    def log_as_json(self) -> bool:
        if self.log_format == "auto":
            return bool(self.runpod_endpoint_id)
        return self.log_format == "json"

    @property
    def build_info_path(self) -> Path:
        return self.worker_home / "build-info.json"

    def secret_values(self) -> list[str]:
        """Every configured secret, so log output can be scrubbed of them."""
        secrets = (self.bucket_access_key_id, self.bucket_secret_access_key, self.hf_token)
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


def env_reference() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's configuration table."""
    rows = []
    for field in Settings.model_fields.values():
        default = field.default
        shown = "" if default is None else str(default)
        if isinstance(default, bool):
            shown = "true" if default else "false"
        rows.append((field.alias or "", shown, field.description or ""))
    return rows
