"""The job input: validated completely before anything is queued (pure; no I/O).

``job["input"]`` is either a raw ComfyUI workflow (API format) or a template name with simple
parameters next to it, plus optional ``params`` node overrides, ``images`` uploads, a
``timeout`` and ``output`` delivery options. Every problem is collected and reported at once,
each naming where it is (``input.images[0].name: ...``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

UI_FORMAT_HELP = (
    "input.workflow is in ComfyUI's UI (editor) format (it has 'nodes' and 'links'); the worker needs the "
    "API format: in ComfyUI open the workflow and use Workflow > Export (API) (older menus: enable dev mode "
    "options, then 'Save (API Format)'), and send that file's JSON as input.workflow"
)
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I
)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_\-\s]*={0,2}\s*$")


class InputError(ValueError):
    """The job input is invalid; ``problems`` lists every problem, each naming where it is."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        head = problems[0] if problems else "invalid input"
        more = f" (+{count - 1} more, see details)" if count > 1 else ""
        super().__init__(f"invalid input: {head}{more}")


# --- media references ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaRef:
    """A media value as sent: inline bytes (base64 or data URI) or a URL to fetch."""

    kind: Literal["base64", "data_uri", "url"]
    payload: str  # the base64 text, or the URL
    mime: str | None = None


def parse_media_ref(value: Any, where: str) -> MediaRef:
    """Classify a media value; raises InputError naming ``where`` when it is none of the forms."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            [f"{where}: expected base64 text, a data: URI or an http(s) URL, got {_kind(value)}"]
        )
    text = value.strip()
    if text[:5].lower() == "data:":
        match = _DATA_URI.match(text)
        if not match or not match.group("b64"):
            raise InputError([f"{where}: data URIs must be base64 ('data:<mime>;base64,<data>')"])
        payload = text[match.end() :]
        _check_base64(payload, where)
        return MediaRef("data_uri", payload, (match.group("mime") or "").lower() or None)
    if "://" in text[:12]:
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise InputError(
                [f"{where}: only http(s) URLs can be fetched, got {parts.scheme or 'no'} scheme"]
            )
        return MediaRef("url", text)
    _check_base64(text, where)
    return MediaRef("base64", text)


def _check_base64(payload: str, where: str) -> None:
    # A cheap syntax check now; the full decode (with its size cap) happens before queueing.
    if not payload or not _BASE64_CHARS.match(payload[:4096]) or not _BASE64_CHARS.match(payload[-4096:]):
        raise InputError([f"{where}: not valid base64 (nor a data: URI or an http(s) URL)"])


def decode_base64(payload: str, where: str, max_bytes: int) -> bytes:
    """Decode base64 (standard or URL-safe, padding optional) with a size cap."""
    compact = "".join(payload.split())
    if len(compact) * 3 // 4 > max_bytes + 3:
        raise InputError(
            [
                f"{where}: {len(compact) * 3 // 4} bytes is more than the {max_bytes}-byte limit (MEDIA_MAX_BYTES)"
            ]
        )
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise InputError([f"{where}: not valid base64"]) from None
    if not data:
        raise InputError([f"{where}: decodes to zero bytes"])
    return data


# --- the input model -------------------------------------------------------------------------------
def safe_relative_name(name: str) -> str:
    """A file name (optionally in subfolders) that stays inside ComfyUI's input folder."""
    if not name or name != name.strip():
        raise ValueError("must be a non-empty file name without surrounding spaces")
    if "\\" in name or "\x00" in name:
        raise ValueError("must not contain backslashes or NUL")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")):
        raise ValueError(
            "must be a relative name inside the input folder (no leading '/', no '..' or '.' parts)"
        )
    if any(part.startswith(".") for part in path.parts):
        raise ValueError("must not name a hidden file or folder")
    if len(name) > 255:
        raise ValueError("must be at most 255 characters")
    return name


class ImageUpload(BaseModel):
    """A file for ComfyUI's input folder (worker-comfyui's shape: images may be any media)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="File name the workflow's LoadImage/LoadVideo refers to.")
    image: str = Field(description="base64, a data: URI, or an http(s) URL.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return safe_relative_name(value)


class OutputOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivery: Literal["auto", "inline", "url"] = Field(
        "auto",
        description="auto: base64 when the result fits under INLINE_MAX_BYTES, else bucket URLs; "
        "inline: always base64 (fails if too large); url: always upload to the bucket.",
    )
    previews: bool = Field(False, description="Also return temporary previews (PreviewImage and the like).")


class JobInputModel(BaseModel):
    """The keys every job may carry; the rest are template parameters."""

    model_config = ConfigDict(extra="allow")

    workflow: dict[str, Any] | None = Field(None, description="An API-format ComfyUI workflow.")
    template: str | None = Field(None, description="A workflow template name: t2v, i2v, canny or depth.")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Node overrides {node_id: {input: value}} applied last."
    )
    images: list[ImageUpload] = Field(
        default_factory=list, description="Files to place in ComfyUI's input folder."
    )
    timeout: float | None = Field(None, gt=0, description="Seconds before the job is interrupted.")
    output: OutputOptions = Field(default_factory=OutputOptions)


@dataclass
class JobRequest:
    """A validated job, ready to run."""

    workflow: dict[str, Any] | None
    template: str | None
    template_params: dict[str, Any] | None
    params: dict[str, dict[str, Any]]
    images: list[ImageUpload]
    media: dict[str, MediaRef]  # "images[0]" or a template media parameter -> reference
    timeout: float
    output: OutputOptions


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = "input"
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return problems


def workflow_problems(workflow: Mapping[str, Any], where: str = "input.workflow") -> list[str]:
    """Structural checks ComfyUI would otherwise answer one at a time (pure)."""
    if "nodes" in workflow and "links" in workflow:
        return [UI_FORMAT_HELP]
    if not workflow:
        return [f"{where}: is empty; expected {{node_id: {{'class_type': ..., 'inputs': {{...}}}}}}"]
    problems = []
    for node_id, node in workflow.items():
        here = f"{where}[{node_id!r}]"
        if not isinstance(node, Mapping):
            problems.append(f"{here}: expected {{'class_type': ..., 'inputs': {{...}}}}, got {_kind(node)}")
            continue
        if not isinstance(node.get("class_type"), str) or not node.get("class_type"):
            problems.append(f"{here}: has no class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            problems.append(f"{here}.inputs: expected an object, got {_kind(inputs)}")
            continue
        for name, value in inputs.items():
            if is_link(value) and str(value[0]) not in workflow:
                problems.append(
                    f"{here}.inputs.{name}: links to node {str(value[0])!r}, which is not in the workflow"
                )
    return problems


def is_link(value: Any) -> bool:
    """True for an API-format link: ``[source node id, output index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def class_problems(
    workflow: Mapping[str, Any], object_info: Mapping[str, Any], where: str = "input.workflow"
) -> list[str]:
    """Node classes this ComfyUI does not have (a custom node missing from the image)."""
    problems = []
    for node_id, node in workflow.items():
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if isinstance(class_type, str) and class_type and class_type not in object_info:
            problems.append(
                f"{where}[{node_id!r}]: node class {class_type!r} is not installed in this worker's ComfyUI "
                "(a custom node this image does not include)"
            )
    return problems


def schema_inputs(object_info: Mapping[str, Any], class_type: str) -> list[str] | None:
    """Input names a node class accepts (required, optional, hidden), or None if unknown."""
    schema = object_info.get(class_type)
    if not isinstance(schema, Mapping):
        return None
    names: list[str] = []
    for section in ("required", "optional", "hidden"):
        group = (schema.get("input") or {}).get(section) or {}
        names.extend(str(n) for n in group)
    return names


def override_problems(
    workflow: Mapping[str, Any],
    params: Mapping[str, Mapping[str, Any]],
    object_info: Mapping[str, Any] | None,
) -> list[str]:
    """Each override must name a node of the workflow and an input that node class has."""
    problems = []
    for node_id, overrides in params.items():
        where = f"input.params[{node_id!r}]"
        node = workflow.get(str(node_id))
        if not isinstance(node, Mapping):
            problems.append(f"{where}: no node {node_id!r} in the workflow")
            continue
        class_type = str(node.get("class_type"))
        accepted = schema_inputs(object_info, class_type) if object_info else None
        present = set((node.get("inputs") or {}).keys())
        for name in overrides:
            if name in present:
                continue
            # DynamicCombo sub-inputs are sent as "name.sub" keys (ComfyUI 0.26).
            if accepted is not None and (name in accepted or name.split(".", 1)[0] in accepted):
                continue
            known = sorted(present | set(accepted or []))
            problems.append(
                f"{where}.{name}: node {node_id} ({class_type}) has no input {name!r}; its inputs: {', '.join(known) or 'none'}"
            )
    return problems


def apply_overrides(workflow: dict[str, Any], params: Mapping[str, Mapping[str, Any]]) -> None:
    """Set each override on the (already copied) workflow."""
    for node_id, overrides in params.items():
        inputs = workflow[str(node_id)].setdefault("inputs", {})
        inputs.update(overrides)


def parse_job_input(
    raw: Any,
    *,
    default_timeout: float,
    max_timeout: float,
    validate_template: Any = None,
    template_media: Any = None,
) -> JobRequest:
    """Validate ``job["input"]``; raises InputError with every problem.

    ``validate_template(name, params) -> dict`` and ``template_media(name) -> [MediaSlot]`` come
    from the templates module; they are parameters so this function stays pure and testable.
    """
    if not isinstance(raw, Mapping):
        raise InputError([f"input: expected an object, got {_kind(raw)}"])
    problems: list[str] = []
    workflow = raw.get("workflow")
    if isinstance(workflow, str):
        # A common mistake deserves its own message rather than "should be a valid dictionary".
        problems.append(
            "input.workflow: expected the workflow object itself, got a string (send JSON, not JSON text)"
        )
        raw = {k: v for k, v in raw.items() if k != "workflow"}
    try:
        model = JobInputModel.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
        model = None
    extras = {k: v for k, v in raw.items() if k not in JobInputModel.model_fields}

    template = raw.get("template")
    if workflow is None and template is None:
        problems.append(
            "input: give either 'workflow' (an API-format ComfyUI workflow) or 'template' (t2v, i2v, canny or depth)"
        )
    if workflow is not None and template is not None:
        problems.append("input: give either 'workflow' or 'template', not both")
    if isinstance(workflow, Mapping):
        problems.extend(workflow_problems(workflow))

    template_params: dict[str, Any] | None = None
    media: dict[str, MediaRef] = {}
    if template is not None and isinstance(template, str) and validate_template is not None:
        try:
            template_params = validate_template(template, extras)
        except ValueError as exc:  # TemplateParamsError
            problems.extend(f"input.{p}" for p in getattr(exc, "problems", [str(exc)]))
        if template_params is not None and template_media is not None:
            for slot in template_media(template):
                value = template_params.get(slot.param)
                if value is None:
                    continue
                try:
                    media[slot.param] = parse_media_ref(value, f"input.{slot.param}")
                except InputError as exc:
                    problems.extend(exc.problems)
    elif template is None and extras:
        names = ", ".join(sorted(map(str, extras)))
        problems.append(
            f"input: unknown keys {names}; known keys: {', '.join(JobInputModel.model_fields)} "
            "(template parameters need 'template')"
        )

    if model is not None:
        for index, upload in enumerate(model.images):
            try:
                media[f"images[{index}]"] = parse_media_ref(upload.image, f"input.images[{index}].image")
            except InputError as exc:
                problems.extend(exc.problems)
        names = [u.name for u in model.images]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"input.images: the name {name!r} is given more than once")
        if model.timeout is not None and model.timeout > max_timeout:
            problems.append(
                f"input.timeout: at most {max_timeout:g} seconds (JOB_TIMEOUT_MAX), got {model.timeout:g}"
            )

    if problems or model is None:
        raise InputError(problems)
    return JobRequest(
        workflow=dict(workflow) if isinstance(workflow, Mapping) else None,
        template=template,
        template_params=template_params,
        params={str(k): dict(v) for k, v in model.params.items()},
        images=list(model.images),
        media=media,
        timeout=model.timeout or default_timeout,
        output=model.output,
    )
