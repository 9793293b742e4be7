"""Render an LTX-2 workflow template (t2v, i2v, canny, depth) from a few simple parameters.

The templates are data: ``workflows/<name>.api.json`` holds the API-format graph derived from the
official ComfyUI template, and ``workflows/templates.yaml`` maps each simple parameter (``prompt``,
``width``, ``frames``, ``fps``, ``seed``, ...) to the node inputs it sets and each model role
(``checkpoint``, ``text_encoder``, ...) to the loader inputs that read it. From that mapping this
module builds one pydantic model per template; job validation and the published JSON Schema both
come from those models, so they cannot drift apart.

Typical use (what the handler does for a template job)::

    used = validate_template_params("t2v", {"prompt": "a cat", "frames": 97})
    prompt = render_template(
        "t2v", used, model_files=load_lock().role_filenames("fp8"), media_files={}
    )
    # queue `prompt`; report `used` (it holds the seed that was picked) in the job result

Both functions are pure. ``python -m handler render t2v --param prompt="a cat"`` prints the same
prompt for debugging or for loading into ComfyUI.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from handler.fsutil import write_atomic
from handler.job.schema import is_link

if TYPE_CHECKING:
    from handler.buildinfo import BuildInfo
    from handler.models.lock import ModelLock
    from handler.settings import Settings

TEMPLATE_NAMES: tuple[str, ...] = ("t2v", "i2v", "canny", "depth")
# The set `render` names files from when neither an image nor MODEL_SET says (a source checkout).
RENDER_DEFAULT_SET = "fp8"
WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"
MANIFEST_NAME = "templates.yaml"

# Random seeds stay below 2**53 so that JavaScript clients read the reported seed exactly and can
# send it back to reproduce a video; a seed the client gives may use RandomNoise's full range.
RANDOM_SEED_LIMIT = 2**53

_MODEL_PLACEHOLDER = "<model:{}>"
_MEDIA_PLACEHOLDER = "<media:{}>"
_PLACEHOLDER_PREFIXES = ("<model:", "<media:")
_KINDS = frozenset({"string", "integer", "number", "media"})
_MEDIA_KINDS = frozenset({"image", "video"})


class TemplateParamsError(ValueError):
    """Template parameters were refused; ``problems`` lists every problem, each naming its parameter."""

    def __init__(self, template: str, problems: Sequence[str]) -> None:
        self.template = template
        self.problems: list[str] = list(problems)
        listing = "; ".join(self.problems)
        super().__init__(f"template {template!r}: {listing}")


class TemplateDefinitionError(RuntimeError):
    """workflows/ is inconsistent (a bug in the shipped templates, not in a job); names file and place."""


@dataclass(frozen=True)
class MediaSlot:
    """A media parameter of a template: what a job must upload to ComfyUI's input folder."""

    param: str
    kind: str  # "image" | "video"
    required: bool


@dataclass(frozen=True)
class Target:
    """One node input a parameter writes."""

    node: str
    input: str
    as_type: str | None = None  # "int" | "float": the JSON type the node stores

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass(frozen=True)
class GraphEdit:
    """Fixed edits applied when an optional media parameter is given or absent."""

    sets: tuple[tuple[Target, Any], ...] = ()
    replace_nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ParamSpec:
    """A simple parameter of one template: its limits (shared) and where it goes (per template)."""

    name: str
    kind: str  # string | integer | number | media
    description: str
    why: str
    targets: tuple[Target, ...]
    default: Any = None
    has_default: bool = False
    default_reason: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    multiple_of: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    not_blank: bool = False
    frames_rule: bool = False
    nullable: bool = False
    converts_to: str | None = None
    media_kind: str | None = None
    required: bool = False
    when_given: GraphEdit = field(default_factory=GraphEdit)
    when_absent: GraphEdit = field(default_factory=GraphEdit)

    @property
    def is_media(self) -> bool:
        return self.kind == "media"


@dataclass(frozen=True)
class ModelInput:
    """A loader input that reads the file of one model role."""

    node: str
    input: str
    role: str

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass(frozen=True)
class TemplateSpec:
    """One template: its graph, its parameters, its model roles and where it came from."""

    name: str
    title: str
    description: str
    workflow_path: Path
    graph_text: str  # the graph as JSON: every use parses a fresh copy, so nobody can alter it
    output_node: str
    provenance: Mapping[str, Any]
    params: Mapping[str, ParamSpec]  # declaration order, media last
    models: tuple[ModelInput, ...]
    input_model: type[BaseModel]

    @property
    def graph(self) -> dict[str, Any]:
        """A fresh copy of the graph as stored (placeholders and official defaults in place)."""
        return json.loads(self.graph_text)

    @property
    def roles(self) -> list[str]:
        return list(dict.fromkeys(m.role for m in self.models))


# --------------------------------------------------------------------------------------------
# Loading workflows/ (I/O at the edge, then pure checks)
# --------------------------------------------------------------------------------------------


def load_templates(directory: Path | str | None = None) -> dict[str, TemplateSpec]:
    """Load and cross-check every template in ``directory`` (default: the worker's ``workflows/``).

    Raises:
        TemplateDefinitionError: the mapping and a graph disagree (unknown node or input, a
            placeholder nobody fills, targets of one parameter holding different defaults, ...).
    """
    root = Path(directory) if directory is not None else WORKFLOWS_DIR
    manifest_path = root / MANIFEST_NAME
    try:
        from ruamel.yaml import YAML

        manifest = YAML(typ="safe").load(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateDefinitionError(f"template mapping not found at {manifest_path}") from None
    except Exception as exc:  # ruamel raises several unrelated types for bad YAML
        raise TemplateDefinitionError(f"{manifest_path} is not valid YAML: {exc}") from None
    graphs: dict[str, Any] = {}
    for name, raw in _mapping(manifest.get("templates"), f"{manifest_path}: templates").items():
        workflow = _mapping(raw, f"{manifest_path}: templates.{name}").get("workflow")
        if not isinstance(workflow, str):
            raise TemplateDefinitionError(f"{manifest_path}: templates.{name}.workflow: expected a file name")
        path = root / workflow
        try:
            graphs[str(name)] = (path, json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise TemplateDefinitionError(
                f"{manifest_path}: templates.{name}: no workflow file {path}"
            ) from None
        except ValueError as exc:
            raise TemplateDefinitionError(f"{path} is not valid JSON: {exc}") from None
    return parse_templates(manifest, graphs, source=manifest_path)


def parse_templates(
    manifest: Mapping[str, Any], graphs: Mapping[str, tuple[Path, Mapping[str, Any]]], *, source: Path
) -> dict[str, TemplateSpec]:
    """Build the template specs from the parsed mapping and graphs (pure)."""
    if manifest.get("schema") != 1:
        raise TemplateDefinitionError(f"{source}: schema: expected 1, got {manifest.get('schema')!r}")
    shared = _mapping(manifest.get("parameters"), f"{source}: parameters")
    templates = _mapping(manifest.get("templates"), f"{source}: templates")
    if tuple(templates) != TEMPLATE_NAMES:
        raise TemplateDefinitionError(
            f"{source}: templates: expected {', '.join(TEMPLATE_NAMES)} in that order, got {', '.join(templates)}"
        )
    specs: dict[str, TemplateSpec] = {}
    for name in TEMPLATE_NAMES:
        path, graph = graphs[name]
        specs[name] = _parse_template(name, templates[name], shared, path, graph, source)
    return specs


def _parse_template(
    name: str,
    raw: Mapping[str, Any],
    shared: Mapping[str, Any],
    path: Path,
    graph: Mapping[str, Any],
    source: Path,
) -> TemplateSpec:
    where = f"{source}: templates.{name}"
    if not isinstance(graph, Mapping) or not graph:
        raise TemplateDefinitionError(f"{path}: expected an API-format graph (node id -> node)")
    params: dict[str, ParamSpec] = {}
    for pname, praw in _mapping(raw.get("params"), f"{where}.params").items():
        params[pname] = _parse_param(pname, praw or {}, shared, graph, f"{where}.params.{pname}", media=False)
    for pname, praw in _mapping(raw.get("media") or {}, f"{where}.media").items():
        if pname in params:
            raise TemplateDefinitionError(f"{where}.media.{pname}: also listed under params")
        params[pname] = _parse_param(pname, praw or {}, shared, graph, f"{where}.media.{pname}", media=True)
    for spec in params.values():
        if spec.converts_to is not None and spec.converts_to not in params:
            raise TemplateDefinitionError(
                f"{where}.params.{spec.name}: converts to unknown {spec.converts_to!r}"
            )

    models = []
    for index, mraw in enumerate(raw.get("models") or []):
        loc = f"{where}.models[{index}]"
        target = _parse_target(_mapping(mraw, loc), graph, loc)
        role = mraw.get("role")
        if not isinstance(role, str) or not role:
            raise TemplateDefinitionError(f"{loc}.role: expected a model role name")
        held = graph[target.node]["inputs"][target.input]
        if held != _MODEL_PLACEHOLDER.format(role):
            raise TemplateDefinitionError(
                f"{path}: node {target} holds {held!r}, but {loc} maps it to role {role!r}: "
                f"the graph must hold {_MODEL_PLACEHOLDER.format(role)!r}"
            )
        models.append(ModelInput(target.node, target.input, role))
    _check_every_placeholder_is_mapped(path, graph, params, models)

    output_node = str(raw.get("output_node"))
    if output_node not in graph:
        raise TemplateDefinitionError(f"{where}.output_node: node {output_node!r} is not in {path.name}")
    model = _build_input_model(name, str(raw.get("title", name)), str(raw.get("description", "")), params)
    return TemplateSpec(
        name=name,
        title=str(raw.get("title", name)),
        description=" ".join(str(raw.get("description", "")).split()),
        workflow_path=path,
        graph_text=json.dumps(graph, ensure_ascii=False),
        output_node=output_node,
        provenance=dict(raw.get("provenance") or {}),
        params=params,
        models=tuple(models),
        input_model=model,
    )


def _parse_param(
    name: str,
    raw: Mapping[str, Any],
    shared: Mapping[str, Any],
    graph: Mapping[str, Any],
    where: str,
    *,
    media: bool,
) -> ParamSpec:
    if name not in shared:
        raise TemplateDefinitionError(f"{where}: no shared definition parameters.{name}")
    base = _mapping(shared[name], f"parameters.{name}")
    kind = base.get("type")
    if kind not in _KINDS:
        raise TemplateDefinitionError(
            f"parameters.{name}.type: expected one of {sorted(_KINDS)}, got {kind!r}"
        )
    if media != (kind == "media"):
        raise TemplateDefinitionError(f"{where}: media parameters go under media:, others under params:")
    targets = tuple(
        _parse_target(t, graph, f"{where}.targets[{i}]") for i, t in enumerate(raw.get("targets") or [])
    )
    converts_to = raw.get("converts_to")
    if not targets and converts_to is None:
        raise TemplateDefinitionError(f"{where}: expected targets (or converts_to)")

    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "description": " ".join(str(raw.get("description") or base.get("description") or "").split()),
        "why": " ".join(str(base.get("why") or "").split()),
        "targets": targets,
        "converts_to": converts_to,
    }
    for key in ("minimum", "maximum", "exclusive_minimum", "multiple_of", "min_length", "max_length"):
        if base.get(key) is not None:
            values[key] = base[key]
    values["not_blank"] = bool(base.get("not_blank", False))
    values["frames_rule"] = bool(base.get("frames_rule", False))
    values["nullable"] = bool(base.get("nullable", False))

    if media:
        media_kind = base.get("kind")
        if media_kind not in _MEDIA_KINDS:
            raise TemplateDefinitionError(
                f"parameters.{name}.kind: expected image or video, got {media_kind!r}"
            )
        values["media_kind"] = media_kind
        values["required"] = bool(raw.get("required", False))
        values["when_given"] = _parse_edit(raw.get("when_given"), graph, f"{where}.when_given")
        values["when_absent"] = _parse_edit(raw.get("when_absent"), graph, f"{where}.when_absent")
        if values["required"] and raw.get("when_absent"):
            raise TemplateDefinitionError(f"{where}: a required media parameter cannot have when_absent")
        for target in targets:
            held = graph[target.node]["inputs"][target.input]
            if held != _MEDIA_PLACEHOLDER.format(name):
                raise TemplateDefinitionError(
                    f"node {target} holds {held!r}, but {where} maps it to media parameter {name!r}: "
                    f"the graph must hold {_MEDIA_PLACEHOLDER.format(name)!r}"
                )
        return ParamSpec(**values)

    if "default" in raw:
        values["default"], values["has_default"] = raw["default"], True
        values["default_reason"] = raw.get("default_reason")
        if not values["default_reason"]:
            raise TemplateDefinitionError(
                f"{where}: a default that differs from the graph needs default_reason"
            )
    elif name == "seed" or converts_to is not None:
        values["has_default"] = False  # seed: random; converted parameters: none
    else:
        held = [graph[t.node]["inputs"][t.input] for t in targets]
        if any(_differs(held[0], other) for other in held[1:]):
            listing = ", ".join(f"{t}={v!r}" for t, v in zip(targets, held, strict=True))
            raise TemplateDefinitionError(
                f"{where}: the targets hold different values in the graph ({listing})"
            )
        values["default"], values["has_default"] = held[0], True
    if values["has_default"]:
        values["default"] = _normalise(kind, values["default"], where)
    return ParamSpec(**values)


def _parse_target(raw: Any, graph: Mapping[str, Any], where: str) -> Target:
    raw = _mapping(raw, where)
    node, input_name, as_type = str(raw.get("node")), raw.get("input"), raw.get("as")
    if node not in graph:
        raise TemplateDefinitionError(f"{where}: node {node!r} is not in the graph")
    inputs = graph[node].get("inputs", {})
    if input_name not in inputs:
        raise TemplateDefinitionError(
            f"{where}: node {node} ({graph[node].get('class_type')}) has no input {input_name!r}; "
            f"it has: {', '.join(inputs)}"
        )
    if is_link(inputs[input_name]):
        raise TemplateDefinitionError(f"{where}: {node}.{input_name} is a link; set its source node instead")
    if as_type not in (None, "int", "float"):
        raise TemplateDefinitionError(f"{where}.as: expected int or float, got {as_type!r}")
    return Target(node, str(input_name), as_type)


def _parse_edit(raw: Any, graph: Mapping[str, Any], where: str) -> GraphEdit:
    if not raw:
        return GraphEdit()
    raw = _mapping(raw, where)
    sets = []
    for index, item in enumerate(raw.get("set") or []):
        item = _mapping(item, f"{where}.set[{index}]")
        if "value" not in item:
            raise TemplateDefinitionError(f"{where}.set[{index}]: expected a value")
        sets.append((_parse_target(item, graph, f"{where}.set[{index}]"), item["value"]))
    replace = {}
    for node_id, node in _mapping(raw.get("replace_nodes") or {}, f"{where}.replace_nodes").items():
        if str(node_id) not in graph:
            raise TemplateDefinitionError(f"{where}.replace_nodes: node {node_id!r} is not in the graph")
        node = _mapping(node, f"{where}.replace_nodes.{node_id}")
        if not isinstance(node.get("class_type"), str) or not isinstance(node.get("inputs"), Mapping):
            raise TemplateDefinitionError(f"{where}.replace_nodes.{node_id}: expected class_type and inputs")
        replace[str(node_id)] = dict(node)
    return GraphEdit(sets=tuple(sets), replace_nodes=replace)


def _check_every_placeholder_is_mapped(
    path: Path, graph: Mapping[str, Any], params: Mapping[str, ParamSpec], models: Sequence[ModelInput]
) -> None:
    mapped = {(m.node, m.input) for m in models}
    mapped |= {(t.node, t.input) for p in params.values() if p.is_media for t in p.targets}
    for node_id, node in graph.items():
        for input_name, value in node.get("inputs", {}).items():
            is_placeholder = isinstance(value, str) and value.startswith(_PLACEHOLDER_PREFIXES)
            if is_placeholder and (node_id, input_name) not in mapped:
                raise TemplateDefinitionError(
                    f"{path}: node {node_id}.{input_name} holds {value!r} but templates.yaml maps nothing to it"
                )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TemplateDefinitionError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) != float(b)
    return a != b


def _normalise(kind: str, value: Any, where: str) -> Any:
    # The graph stores fps as 24 in one node and 24.0 in another: defaults take the parameter's type.
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        if float(value).is_integer():
            return int(value)
    elif kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif kind == "string" and isinstance(value, str):
        return value
    raise TemplateDefinitionError(f"{where}: default {value!r} is not a valid {kind}")


# --------------------------------------------------------------------------------------------
# The pydantic models (one per template) and the JSON Schema
# --------------------------------------------------------------------------------------------


def nearest_valid_frames(value: float) -> tuple[int, int]:
    """The 8n+1 frame counts just below and above ``value`` (equal when it already is one)."""
    lower = 8 * math.floor((value - 1) / 8) + 1
    upper = lower if lower == value else lower + 8
    return lower, upper


def frames_for_duration(duration: float, fps: int) -> int:
    """``duration`` seconds at ``fps``, rounded to the nearest 8n+1 frame count (halfway rounds up)."""
    return 8 * math.floor((duration * fps - 1) / 8 + 0.5) + 1


def _whole_float_to_int(value: Any) -> Any:
    # JSON has one number type and JSON Schema counts 24.0 as an integer: so do we. Nothing else
    # is coerced ("24" and true stay errors).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_frames_rule(value: int) -> int:
    if (value - 1) % 8:
        lower, upper = nearest_valid_frames(value)
        raise PydanticCustomError(
            "frames_8n_plus_1",
            "must be 8n+1 (nearest: {lower} or {upper}), got {value}",
            {"lower": lower, "upper": upper, "value": value},
        )
    return value


def _field_type(spec: ParamSpec) -> Any:
    number_limits: dict[str, Any] = {}
    if spec.minimum is not None:
        number_limits["ge"] = spec.minimum
    if spec.exclusive_minimum is not None:
        number_limits["gt"] = spec.exclusive_minimum
    if spec.maximum is not None:
        number_limits["le"] = spec.maximum
    if spec.kind == "integer":
        if spec.multiple_of is not None:
            number_limits["multiple_of"] = spec.multiple_of
        # the coercion wraps the constrained type, so the JSON Schema keeps the constraints
        annotated: Any = Annotated[
            Annotated[int, Strict(), Field(**number_limits)], BeforeValidator(_whole_float_to_int)
        ]
        if spec.frames_rule:
            annotated = Annotated[annotated, AfterValidator(_check_frames_rule)]
    elif spec.kind == "number":
        annotated = Annotated[float, Strict(), Field(allow_inf_nan=False, **number_limits)]
    else:  # string and media
        constraints = StringConstraints(
            min_length=1 if spec.is_media else spec.min_length,
            max_length=spec.max_length,
            pattern=r"\S" if spec.not_blank else None,
        )
        annotated = Annotated[str, Strict(), constraints]
    return annotated


def _frames_enum(spec: ParamSpec) -> list[int]:
    low = int(spec.minimum if spec.minimum is not None else 1)
    high = int(spec.maximum if spec.maximum is not None else low)
    return [n for n in range(low, high + 1) if (n - 1) % 8 == 0]


def _build_input_model(
    name: str, title: str, description: str, params: Mapping[str, ParamSpec]
) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "template": (Literal[name], Field(description=f"The template: {name} ({title}).")),
    }
    for spec in params.values():
        annotated = _field_type(spec)
        extra: dict[str, Any] = {}
        if spec.frames_rule:
            extra["enum"] = _frames_enum(spec)  # 8n+1 as JSON Schema can say it
        field_info: dict[str, Any] = {"description": spec.description}
        if extra:
            field_info["json_schema_extra"] = extra
        if spec.is_media:
            if spec.required:
                fields[spec.name] = (annotated, Field(**field_info))
            else:
                fields[spec.name] = (annotated | None, Field(default=None, **field_info))
        elif spec.nullable or spec.converts_to is not None:
            fields[spec.name] = (annotated | None, Field(default=None, **field_info))
        else:
            fields[spec.name] = (annotated, Field(default=spec.default, **field_info))
    model_extra: dict[str, Any] = {}
    if any(spec.converts_to for spec in params.values()):
        pairs = [[s.converts_to, s.name] for s in params.values() if s.converts_to]
        model_extra["allOf"] = [{"not": {"required": pair}} for pair in pairs]
    config = ConfigDict(
        extra="forbid",
        title=f"{name}: {title}",
        json_schema_extra=model_extra or None,
    )
    model = create_model(
        f"TemplateInput_{name}",
        __config__=config,
        __doc__=" ".join(description.split()) or None,
        **fields,
    )
    return model


def template_input_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the template part of a job input: ``{"template": ..., <params>}``.

    One ``oneOf`` branch per template, told apart by ``template``; generated from the same pydantic
    models that :func:`validate_template_params` validates with. The rules JSON Schema cannot
    state (a duration is converted into frames and then limited like them) are in the descriptions.
    Returns a fresh dict each call.
    """
    return json.loads(_schema_text())


@lru_cache(maxsize=1)
def _schema_text() -> str:
    union = Union[tuple(spec.input_model for spec in _specs().values())]  # noqa: UP007 (runtime tuple)
    adapter = TypeAdapter(Annotated[union, Field(discriminator="template")])
    body = adapter.json_schema(ref_template="#/$defs/{model}")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LTX-2 template job input",
        "description": (
            "The template part of a job's `input`: `template` plus its simple parameters, at the top "
            "level next to `params`, `images`, `timeout` and `output` (which the job schema adds). "
            "Unknown parameters are refused. Media values are base64, a data URI or an http(s) URL."
        ),
        **body,
    }
    return json.dumps(schema, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _specs() -> dict[str, TemplateSpec]:
    return load_templates()


def _spec_or_error(name: Any) -> TemplateSpec:
    specs = _specs()
    if not isinstance(name, str) or name not in specs:
        raise TemplateParamsError(
            str(name), [f"template: unknown template {name!r}; known: {', '.join(TEMPLATE_NAMES)}"]
        )
    return specs[name]


def template_spec(name: str) -> TemplateSpec:
    """The loaded template (graph, mapping, provenance); raises TemplateParamsError for an unknown name."""
    return _spec_or_error(name)


def template_media_slots(name: str) -> list[MediaSlot]:
    """The media parameters of a template, in declaration order (required ones first in practice)."""
    spec = _spec_or_error(name)
    return [MediaSlot(p.name, p.media_kind or "", p.required) for p in spec.params.values() if p.is_media]


def validate_template_params(
    name: str, params: Mapping[str, Any], *, rng: random.Random | None = None
) -> dict[str, Any]:
    """Check a template job's simple parameters and return every parameter that will be used.

    Applies the template's defaults, turns ``duration`` (seconds) into ``frames`` (``duration x
    fps`` rounded to the nearest 8n+1, halfway up), and picks a random ``seed`` (below 2**53)
    when none is given. Media parameters are returned as given: their values are opaque here.
    A ``template`` key, if present, must equal ``name``.

    Args:
        name: one of :data:`TEMPLATE_NAMES`.
        params: the job's template parameters (``prompt``, ``width``, ...).
        rng: the source of the random seed (default: the system's).

    Returns:
        ``{parameter: value}`` in the template's order, ready for :func:`render_template` and for
        the job result; sending it back reproduces the same prompt.

    Raises:
        TemplateParamsError: every problem at once, each naming the parameter, e.g.
            ``"frames: must be 8n+1 (nearest: 113 or 121), got 120"``.
    """
    spec = _spec_or_error(name)
    if not isinstance(params, Mapping):
        raise TemplateParamsError(
            name, [f"parameters: expected a mapping of name -> value, got {_json_type(params)}"]
        )
    data = {str(key): value for key, value in params.items()}
    problems: list[tuple[str, str]] = []
    if "template" in data and data["template"] != name:
        problems.append(
            ("template", f"is {_short(data['template'])}, but the parameters are checked for {name!r}")
        )
    data["template"] = name

    try:
        validated = spec.input_model.model_validate(data)
    except ValidationError as exc:
        validated = None
        problems.extend(_describe_error(error, spec) for error in exc.errors())
    problems.extend(_conversion_problems(spec, data))
    if problems:
        raise TemplateParamsError(name, _ordered(problems, spec))
    assert validated is not None

    used: dict[str, Any] = {}
    for pname, pspec in spec.params.items():
        value = getattr(validated, pname)
        if pspec.converts_to is not None:
            if value is not None:
                fps = validated.fps  # type: ignore[attr-defined]
                used[pspec.converts_to] = frames_for_duration(value, fps)
            continue
        if pname == "seed" and value is None:
            value = (rng or random.SystemRandom()).randrange(RANDOM_SEED_LIMIT)
        if pspec.is_media and value is None:
            continue
        used.setdefault(pname, value)
    # keep the declared order even when frames came from duration
    order = list(spec.params)
    return dict(sorted(used.items(), key=lambda item: order.index(item[0])))


def render_template(
    name: str,
    params: Mapping[str, Any],
    *,
    model_files: Mapping[str, str],
    media_files: Mapping[str, str],
) -> dict[str, Any]:
    """The API-format prompt for a template: a fresh graph with the parameters and files filled in.

    Args:
        name: one of :data:`TEMPLATE_NAMES`.
        params: the output of :func:`validate_template_params`.
        model_files: model role -> the file name ComfyUI sees (``lock.role_filenames(set)``).
        media_files: media parameter -> the file's name in ComfyUI's input folder.

    Raises:
        TemplateParamsError: a parameter is missing (params did not come from validation), a given
            media parameter has no file name, or the model set lacks a role the template needs.
    """
    spec = _spec_or_error(name)
    graph = spec.graph
    problems: list[tuple[str, str]] = []
    for key in params:
        if key == "template" and params[key] == name:
            continue
        if key not in spec.params or spec.params[key].converts_to is not None:
            problems.append(
                (
                    key,
                    f"is not a rendered parameter of template {name!r}; pass the output of validate_template_params",
                )
            )

    for pname, pspec in spec.params.items():
        if pspec.converts_to is not None:
            continue
        value = params.get(pname)
        if pspec.is_media:
            if value is None:
                if pspec.required:
                    problems.append((pname, f"required by template {name!r} but missing"))
                else:
                    _apply_edit(graph, pspec.when_absent)
                continue
            file_name = media_files.get(pname)
            if not isinstance(file_name, str) or not file_name:
                problems.append(
                    (
                        pname,
                        f"no input-folder file name given for it (media_files has: {_names(media_files)})",
                    )
                )
                continue
            for target in pspec.targets:
                graph[target.node]["inputs"][target.input] = file_name
            _apply_edit(graph, pspec.when_given)
            continue
        if value is None:
            problems.append((pname, "missing; pass the output of validate_template_params"))
            continue
        for target in pspec.targets:
            graph[target.node]["inputs"][target.input] = _cast(value, target.as_type)

    missing_roles: dict[str, list[str]] = {}
    for model_input in spec.models:
        file_name = model_files.get(model_input.role)
        if not isinstance(file_name, str) or not file_name:
            missing_roles.setdefault(model_input.role, []).append(str(model_input))
            continue
        graph[model_input.node]["inputs"][model_input.input] = file_name
    for role, loaders in missing_roles.items():
        problems.append(
            (
                f"model role {role!r}",
                f"needed by template {name!r} (loaders {', '.join(loaders)}) but the model set does not "
                f"provide it; it provides: {_names(model_files)}",
            )
        )
    if problems:
        raise TemplateParamsError(name, _ordered(problems, spec))
    leftover = sorted(_placeholders(graph))
    if leftover:  # load-time checks make this unreachable; never queue a graph with placeholders
        raise TemplateDefinitionError(
            f"template {name!r} rendered with unfilled inputs: {', '.join(leftover)}"
        )
    return graph


def _apply_edit(graph: dict[str, Any], edit: GraphEdit) -> None:
    for node_id, node in edit.replace_nodes.items():
        graph[node_id] = copy.deepcopy(dict(node))
    for target, value in edit.sets:
        graph[target.node]["inputs"][target.input] = _cast(value, target.as_type)


def _cast(value: Any, as_type: str | None) -> Any:
    if as_type == "float":
        return float(value)
    if as_type == "int":
        return int(value)
    return value


def _placeholders(graph: Mapping[str, Any]) -> Iterator[str]:
    for node_id, node in graph.items():
        for input_name, value in node.get("inputs", {}).items():
            if isinstance(value, str) and value.startswith(_PLACEHOLDER_PREFIXES):
                yield f"{node_id}.{input_name}={value}"


# --------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
}


def _describe_error(error: Mapping[str, Any], spec: TemplateSpec) -> tuple[str, str]:
    loc = error.get("loc") or ()
    param = str(loc[0]) if loc else "parameters"
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    pspec = spec.params.get(param)
    if kind == "extra_forbidden":
        elsewhere = [other.name for other in _specs().values() if param in other.params]
        hint = f" ({param} belongs to {', '.join(elsewhere)})" if elsewhere else ""
        return (
            param,
            f"unknown parameter for template {spec.name!r}{hint}; it takes: {', '.join(spec.params)}",
        )
    if kind == "frames_8n_plus_1":
        return param, str(error.get("msg"))
    if kind == "missing":
        what = pspec.description if pspec else ""
        return param, f"required by template {spec.name!r}: {what}".rstrip(": ")
    if kind in _TYPE_WORDS:
        return param, f"expected {_TYPE_WORDS[kind]}, got {_json_type(value)} {_short(value)}"
    if kind == "greater_than_equal":
        return param, f"must be at least {_num(ctx.get('ge'))}, got {_short(value)}"
    if kind == "greater_than":
        return param, f"must be more than {_num(ctx.get('gt'))}, got {_short(value)}"
    if kind == "less_than_equal":
        return param, f"must be at most {_num(ctx.get('le'))}, got {_short(value)}"
    if kind == "multiple_of":
        step = int(ctx.get("multiple_of", 1))
        lower = (int(value) // step) * step
        return param, (
            f"must be a multiple of {step} (the two-stage pipeline renders at half size on a 32-pixel grid; "
            f"nearest: {lower} or {lower + step}), got {_short(value)}"
        )
    if kind == "string_too_short":
        return param, "must not be empty"
    if kind == "string_too_long":
        return param, f"must be at most {ctx.get('max_length')} characters, got {len(value)}"
    if kind == "string_pattern_mismatch":
        return param, "must not be empty or only whitespace"
    if kind == "finite_number":
        return param, f"must be a finite number, got {_short(value)}"
    if kind == "literal_error" and param == "template":
        return param, f"is {_short(value)}, but the parameters are checked for {spec.name!r}"
    return param, f"{error.get('msg', 'invalid')}, got {_short(value)}"


def _conversion_problems(spec: TemplateSpec, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rules across parameters: duration or frames (not both), and the frames a duration gives."""
    problems = []
    for pspec in spec.params.values():
        target_name = pspec.converts_to
        if target_name is None or data.get(pspec.name) is None:
            continue
        duration = data[pspec.name]
        if target_name in data:
            problems.append(
                (
                    pspec.name,
                    f"give either {target_name} or {pspec.name}, not both "
                    f"(got {target_name}={_short(data[target_name])}, {pspec.name}={_short(duration)})",
                )
            )
            continue
        fps = _whole_float_to_int(data.get("fps", spec.params["fps"].default))
        if not (_is_number(duration) and duration > 0 and math.isfinite(duration)):
            continue  # the field's own check reports it
        if not (isinstance(fps, int) and not isinstance(fps, bool) and fps >= 1):
            continue
        frames = frames_for_duration(duration, fps)
        target = spec.params[target_name]
        low, high = target.minimum, target.maximum
        exact = duration * fps
        how = f"{_num(duration)} s at {fps} fps is {_num(round(exact, 3))} frames, {frames} as 8n+1"
        if low is not None and frames < low:
            problems.append(
                (
                    pspec.name,
                    f"too short: {how}; the minimum is {int(low)} frames ({_num(round(low / fps, 3))} s at {fps} fps)",
                )
            )
        elif high is not None and frames > high:
            problems.append(
                (
                    pspec.name,
                    f"too long: {how}; the maximum is {int(high)} frames ({_num(round(high / fps, 3))} s at {fps} fps)",
                )
            )
    return problems


def _ordered(problems: Sequence[tuple[str, str]], spec: TemplateSpec) -> list[str]:
    order = {name: index for index, name in enumerate(["template", *spec.params])}
    ranked = sorted(enumerate(problems), key=lambda item: (order.get(item[1][0], len(order)), item[0]))
    return [f"{param}: {message}" for _, (param, message) in ranked]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    # Media values can be megabytes of base64: never echo more than a glimpse.
    if isinstance(value, str):
        if len(value) > limit:
            return f"{value[:limit]!r}... ({len(value)} characters)"
        return repr(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return _num(value)
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else f"{text[:limit]}... ({_json_type(value)})"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _names(mapping: Mapping[str, Any]) -> str:
    return ", ".join(sorted(mapping)) or "nothing"


# --------------------------------------------------------------------------------------------
# Generated documentation (docs/template-input.schema.json, docs/templates.md)
# --------------------------------------------------------------------------------------------

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
SCHEMA_DOC = "template-input.schema.json"
MARKDOWN_DOC = "templates.md"


def schema_document() -> str:
    """The published schema file's exact text."""
    return json.dumps(template_input_schema(), indent=2, ensure_ascii=False) + "\n"


def markdown_document() -> str:
    """The published template reference (docs/templates.md), generated from the same mapping."""
    specs = _specs()
    lines = [
        "# Workflow templates",
        "",
        "<!-- Generated by `python -m handler.templates --write-docs` from workflows/templates.yaml; do not edit. -->",
        "",
        "A job can name a template instead of sending a whole ComfyUI graph:",
        "",
        "```json",
        '{"input": {"template": "t2v", "prompt": "a red fox running through snow", "frames": 97, "seed": 42}}',
        "```",
        "",
        "Template parameters sit at the top level of `input`, next to `template`; `params`",
        "(`{node_id: {input: value}}`) still overrides any node after the template is rendered. Unknown",
        "parameters are refused, every problem is reported at once and names its parameter, and the job",
        "result reports the parameters actually used (with the seed that was picked, so the video can be",
        "reproduced). The JSON Schema of this part of the input is",
        f"[`{SCHEMA_DOC}`]({SCHEMA_DOC}).",
        "",
        "`python -m handler render TEMPLATE --param name=value ...` prints the API-format prompt a job",
        "would queue (media parameters there are file names in ComfyUI's input folder), to debug a job",
        "or to load it into ComfyUI.",
        "",
        "Frames must be 8n+1; `duration` (seconds) is turned into frames as duration x fps rounded to",
        "the nearest 8n+1 (halfway rounds up), e.g. 5 s at 24 fps = 120, so 121 frames.",
        "",
    ]
    shared_order = list(next(iter(specs.values())).params)
    for spec in specs.values():
        lines += [f"## `{spec.name}`: {spec.title}", "", spec.description, ""]
        lines += ["| parameter | type | default | limits | description |", "|---|---|---|---|---|"]
        for pspec in spec.params.values():
            lines.append(
                f"| `{pspec.name}` | {_doc_type(pspec)} | {_doc_default(pspec)} | {_doc_limits(pspec)} | "
                f"{pspec.description} |"
            )
        lines += [
            "",
            f"Model roles: {', '.join(f'`{r}`' for r in spec.roles)}. Output node: `{spec.output_node}` (SaveVideo).",
            "",
        ]
        prov = spec.provenance
        lines += [
            f"From the official template `{prov.get('template')}` (sha256 `{prov.get('template_sha256')}`, "
            f"{prov.get('template_date')}, minComfyUIVersion {prov.get('min_comfyui_version')}); "
            f"derived {prov.get('derived')}, changes listed in `workflows/templates.yaml`.",
            "",
        ]
    lines += ["## Why these limits", ""]
    seen = []
    for name in shared_order + [n for s in specs.values() for n in s.params if n not in shared_order]:
        if name in seen:
            continue
        seen.append(name)
        pspec = next(s.params[name] for s in specs.values() if name in s.params)
        if pspec.why:
            lines.append(f"- `{name}`: {pspec.why}")
    lines.append("")
    return "\n".join(lines)


def _doc_type(spec: ParamSpec) -> str:
    if spec.is_media:
        return f"{spec.media_kind} ({'required' if spec.required else 'optional'})"
    return spec.kind + (" or null" if spec.nullable else "")


def _doc_default(spec: ParamSpec) -> str:
    if spec.is_media:
        return ""
    if spec.name == "seed":
        return "random"
    if not spec.has_default:
        return ""
    if isinstance(spec.default, str):
        text = spec.default if len(spec.default) <= 60 else spec.default[:57] + "..."
        return "`" + text.replace("|", "\\|").replace("`", "'") + "`"
    note = f" ({spec.default_reason})" if spec.default_reason else ""
    return f"{_num(spec.default)}{note}"


def _doc_limits(spec: ParamSpec) -> str:
    parts = []
    if spec.frames_rule:
        parts.append("8n+1")
    if spec.minimum is not None and spec.maximum is not None:
        parts.append(f"{_num(spec.minimum)}..{_num(spec.maximum)}")
    elif spec.exclusive_minimum is not None and spec.maximum is not None:
        parts.append(f"> {_num(spec.exclusive_minimum)}, <= {_num(spec.maximum)}")
    if spec.multiple_of:
        parts.append(f"multiple of {spec.multiple_of}")
    if spec.max_length:
        parts.append(f"at most {spec.max_length} characters")
    if spec.not_blank:
        parts.append("not blank")
    return ", ".join(parts)


def write_docs(directory: Path | None = None) -> list[Path]:
    """Write the generated schema and reference into ``directory`` (default ``docs/``)."""
    target = directory or DOCS_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in ((SCHEMA_DOC, schema_document()), (MARKDOWN_DOC, markdown_document())):
        path = target / file_name
        write_atomic(path, text)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# `python -m handler render`
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("template", choices=TEMPLATE_NAMES, help="the template to render")
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter, e.g. prompt='a cat' frames=97 seed=7 (numbers as JSON); repeatable",
    )
    parser.add_argument(
        "--image", metavar="NAME", help="image parameter: a file name in ComfyUI's input folder"
    )
    parser.add_argument(
        "--video", metavar="NAME", help="control video: a file name in ComfyUI's input folder"
    )
    parser.add_argument(
        "--set",
        dest="model_set",
        metavar="SET",
        help="model set whose file names the loaders get (default: the image's baked set, else MODEL_SET, "
        "else fp8)",
    )
    parser.add_argument(
        "--lock", type=Path, metavar="PATH", help="models.lock.yaml (default: MODELS_LOCK or the shipped one)"
    )
    parser.add_argument(
        "--show-params", action="store_true", help="also print the parameters used (with the seed) to stderr"
    )


def parse_cli_params(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["prompt=a cat", "frames=97"]`` -> ``{"prompt": "a cat", "frames": 97}``.

    Values of text and media parameters are taken as written; other values are read as JSON
    (``97``, ``4.5``, ``null``), falling back to the raw text so validation can name the problem.
    """
    spec = _spec_or_error(name)
    params: dict[str, Any] = {}
    problems = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--param {pair!r}: expected NAME=VALUE")
            continue
        pspec = spec.params.get(key)
        if pspec is not None and pspec.kind in ("string", "media"):
            params[key] = raw
        else:
            try:
                params[key] = json.loads(raw)
            except ValueError:
                params[key] = raw
    if problems:
        raise TemplateParamsError(name, problems)
    return params


def render_model_set(
    settings: Settings, build_info: BuildInfo, lock: ModelLock, override: str | None = None
) -> tuple[str, list[str]]:
    """The model set whose file names ``render`` gives the loaders, and warnings to show.

    The worker's own choice (:func:`handler.models.locate.active_model_set`: the image's baked
    set, else ``MODEL_SET``), with ``override`` (``--set``) winning over both; outside an image
    with nothing configured, :data:`RENDER_DEFAULT_SET`, since a prompt needs some file names.

    Raises:
        ValueError: the set asked for is not in the lock (the message names the lock's sets).
    """
    from handler.models.locate import active_model_set

    nothing_chosen = override is None and settings.model_set is None and not build_info.is_baked
    if nothing_chosen and RENDER_DEFAULT_SET in lock.sets:
        return RENDER_DEFAULT_SET, []
    name, problem, warnings = active_model_set(settings, build_info, lock, override)
    if name is None:
        raise ValueError(problem)
    return name, warnings


def run(args: argparse.Namespace) -> int:
    from handler.buildinfo import read_build_info
    from handler.models.lock import LockError, load_lock
    from handler.settings import Settings

    try:
        params = parse_cli_params(args.template, args.param)
        for media_name in ("image", "video"):
            given = getattr(args, media_name, None)
            if given is not None:
                params[media_name] = given
        used = validate_template_params(args.template, params)
        settings = Settings.from_env(os.environ)
        lock = load_lock(args.lock or settings.models_lock)
        build_info = read_build_info(settings.build_info_path)
        model_set, warnings = render_model_set(settings, build_info, lock, args.model_set or None)
        for warning in warnings:
            print(f"render: {warning}", file=sys.stderr)
        model_files = lock.role_filenames(model_set)
        media_files = {
            slot.param: used[slot.param] for slot in template_media_slots(args.template) if slot.param in used
        }
        prompt = render_template(args.template, used, model_files=model_files, media_files=media_files)
    except TemplateParamsError as exc:
        print(f"render: invalid parameters for template {args.template!r}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except (LockError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    json.dump(prompt, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    if args.show_params:
        print(json.dumps({"template": args.template, **used}, ensure_ascii=False), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m handler.templates --write-docs``: regenerate the published schema and reference."""
    parser = argparse.ArgumentParser(prog="python -m handler.templates", description=main.__doc__)
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write docs/template-input.schema.json and docs/templates.md",
    )
    args = parser.parse_args(argv)
    if not args.write_docs:
        parser.print_help()
        return 2
    for path in write_docs():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
