"""ComfyUI's prompt validation, as a pure function.

``validate_prompt(prompt, object_info)`` answers what ``POST /prompt`` of ComfyUI 0.26.0 (or
0.3.64) answers for the same prompt and node schemas: the HTTP status, the exact JSON body
(``{"error": {...}, "node_errors": {...}}`` on 400; ``{"prompt_id", "number", "node_errors"}`` on
200) and the output nodes that will run. It follows the server's own algorithm, quirks included:

- nodes are checked for a ``class_type`` and a known class first (the first bad node decides);
- only ancestors of output nodes are validated, output by output, with a shared memo;
- an upstream error makes every downstream node invalid but only the node with the error is
  reported, and ``error.details`` only lists the errors of output nodes themselves;
- ``dependent_outputs``: for each failed output, every invalid node found so far gets that output
  appended (the server does exactly this, so a node can list an output that does not depend on it);
- a prompt where some outputs are valid is accepted (200) and still carries ``node_errors``;
- widget values are converted in place (``fps: 8`` becomes ``8.0`` on a FLOAT input): the
  converted graph is returned as ``PromptValidation.prompt`` and is what the queue and history hold.

Pure: no file system. File-backed inputs (LoadImage, LoadVideo, LoadAudio) are checked with the
``input_file_exists`` callback, by default against the combo options in ``object_info`` (fill them
with ``object_info_with_files``).
"""

from __future__ import annotations

import copy
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import (
    FILE_VALIDATED_INPUTS,
    combo_options,
    effective_input_type,
    input_specs,
    is_output_node,
    object_info_with_files,
    return_types,
    spec_type_and_options,
    validate_node_input,
)

__all__ = [
    "PromptValidation",
    "is_canonical_uuid",
    "object_info_with_files",
    "validate_graph",
    "validate_prompt",
]

VERSION_0_26 = "0.26.0"
VERSION_0_3 = "0.3.64"
SUPPORTED_VERSIONS = (VERSION_0_26, VERSION_0_3)

_REQUEST_KEYS = frozenset(
    {"prompt", "client_id", "prompt_id", "extra_data", "front", "number", "partial_execution_targets"}
)


@dataclass(frozen=True)
class PromptValidation:
    """What ``POST /prompt`` answers for a prompt.

    Attributes:
        ok: the prompt would be queued (HTTP 200).
        status: 200 or 400.
        body: the JSON body ComfyUI answers. On 200 it is ``{"prompt_id", "number",
            "node_errors"}``; on 400 ``{"error": {type, message, details, extra_info},
            "node_errors": {...}}``.
        outputs: ids of the output nodes that will execute (empty on 400).
        prompt: the graph after ComfyUI's in-place conversions of widget values (what the queue,
            history and ``/api/jobs`` show); empty when validation stopped before any node.
        prompt_id: the prompt id the server uses (the client's, or a new uuid4).
        log: the lines ComfyUI logs for a rejected output, for the double's log.
    """

    ok: bool
    status: int
    body: dict[str, Any]
    outputs: list[str]
    prompt: dict[str, Any] = field(default_factory=dict)
    prompt_id: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def node_errors(self) -> dict[str, Any]:
        """The ``node_errors`` part of the body (empty when there are none)."""
        return self.body.get("node_errors", {})

    @property
    def error_type(self) -> str | None:
        """``error.type`` of a 400 answer, else None."""
        error = self.body.get("error")
        return error.get("type") if isinstance(error, dict) else None


def is_canonical_uuid(value: Any) -> bool:
    """True for a UUID string in canonical lowercase hyphenated form (what 0.26 accepts)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _error(type_: str, message: str, details: str = "", extra_info: dict[str, Any] | None = None) -> dict:
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


def _rejected(
    error: dict[str, Any], node_errors: dict[str, Any] | None = None, **kwargs: Any
) -> PromptValidation:
    return PromptValidation(
        ok=False, status=400, body={"error": error, "node_errors": node_errors or {}}, outputs=[], **kwargs
    )


def _looks_like_node(value: Any) -> bool:
    return isinstance(value, Mapping) and ("class_type" in value or "inputs" in value)


def _split_request(payload: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any]]:
    """Tell a ``POST /prompt`` body from a bare graph: returns (is_body, body_or_graph)."""
    if "prompt" in payload and not _looks_like_node(payload["prompt"]):
        return True, payload
    if not payload:
        return True, payload
    if any(_looks_like_node(value) for value in payload.values()):
        return False, payload
    return bool(set(payload) & _REQUEST_KEYS), payload


def _full_type_name(exc_type: type) -> str:
    module = exc_type.__module__
    if module in (None, "builtins", "__builtin__"):
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


def _strip_annotation(name: str) -> tuple[str, str | None]:
    for tag in ("output", "input", "temp"):
        suffix = f"[{tag}]"
        if name.endswith(suffix):
            return name[: -len(suffix)].rstrip(), tag
    return name, None


def _default_file_exists(object_info: Mapping[str, Any]) -> Callable[[str, str, str], bool]:
    """Existence check from the combo options that ``object_info_with_files`` filled."""

    def exists(class_type: str, input_name: str, value: str) -> bool:
        name, folder = _strip_annotation(value)
        if folder not in (None, "input"):
            return False
        entry = object_info.get(class_type, {})
        for category in ("required", "optional"):
            spec = entry.get("input", {}).get(category, {}).get(input_name)
            if spec is not None:
                input_type, extra = spec_type_and_options(spec)
                return name in (combo_options(input_type, extra) or [])
        return False

    return exists


class _CycleError(RecursionError):
    pass


class _Validator:
    """One validation run: ComfyUI's ``validate_inputs`` with its ``validated`` memo."""

    def __init__(
        self,
        prompt: dict[str, Any],
        object_info: Mapping[str, Any],
        file_exists: Callable[[str, str, str], bool],
    ) -> None:
        self.prompt = prompt
        self.object_info = object_info
        self.file_exists = file_exists
        self.validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}
        self._in_progress: set[str] = set()

    def validate_inputs(self, unique_id: str) -> tuple[bool, list[dict[str, Any]], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self._in_progress:
            # ComfyUI recurses until Python's recursion limit on a cycle of static links.
            raise _CycleError("maximum recursion depth exceeded")
        self._in_progress.add(unique_id)
        try:
            return self._validate_inputs(unique_id)
        finally:
            self._in_progress.discard(unique_id)

    def _validate_inputs(self, unique_id: str) -> tuple[bool, list[dict[str, Any]], str]:
        node = self.prompt[unique_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        class_info = self.object_info[class_type]
        specs = input_specs(class_info, inputs)
        custom_validated = [name for (cls, name) in FILE_VALIDATED_INPUTS if cls == class_type]

        errors: list[dict[str, Any]] = []
        valid = True
        for name, (category, spec) in specs.items():
            input_type, extra = spec_type_and_options(spec)
            info = [input_type, extra]
            if name not in inputs:
                if category == "required" and input_type != "COMFY_AUTOGROW_V3":
                    errors.append(
                        _error(
                            "required_input_missing", "Required input is missing", name, {"input_name": name}
                        )
                    )
                continue

            value = inputs[name]
            if isinstance(value, list):
                if len(value) != 2:
                    errors.append(
                        _error(
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            name,
                            {"input_name": name, "input_config": info, "received_value": value},
                        )
                    )
                    continue
                source_id = value[0]
                self.prompt[source_id]["class_type"]  # KeyError for a link to a missing node, as ComfyUI
                received_type = return_types(self.prompt, source_id, self.object_info)[value[1]]
                if not validate_node_input(received_type, effective_input_type(input_type, extra)):
                    details = f"{name}, received_type({received_type}) mismatch input_type({input_type})"
                    errors.append(
                        _error(
                            "return_type_mismatch",
                            "Return type mismatch between linked nodes",
                            details,
                            {
                                "input_name": name,
                                "input_config": info,
                                "received_type": received_type,
                                "linked_node": value,
                            },
                        )
                    )
                    continue
                try:
                    result = self.validate_inputs(source_id)
                    if result[0] is False:
                        valid = False
                        continue
                except Exception as ex:
                    valid = False
                    self.validated[source_id] = (
                        False,
                        [
                            _error(
                                "exception_during_inner_validation",
                                "Exception when validating inner node",
                                str(ex),
                                {
                                    "input_name": name,
                                    "input_config": info,
                                    "exception_message": str(ex),
                                    "exception_type": _full_type_name(type(ex)),
                                    "traceback": traceback.format_tb(ex.__traceback__),
                                    "linked_node": value,
                                },
                            )
                        ],
                        source_id,
                    )
                    continue
            else:
                try:
                    if isinstance(value, dict) and "__value__" in value:
                        value = value["__value__"]
                        inputs[name] = value
                    if input_type == "INT":
                        value = int(value)
                        inputs[name] = value
                    if input_type == "FLOAT":
                        value = float(value)
                        inputs[name] = value
                    if input_type == "STRING":
                        value = str(value)
                        inputs[name] = value
                    if input_type == "BOOLEAN":
                        value = bool(value)
                        inputs[name] = value
                except Exception as ex:
                    errors.append(
                        _error(
                            "invalid_input_type",
                            f"Failed to convert an input value to a {input_type} value",
                            f"{name}, {value}, {ex}",
                            {
                                "input_name": name,
                                "input_config": info,
                                "received_value": value,
                                "exception_message": str(ex),
                            },
                        )
                    )
                    continue

                if name in custom_validated:
                    continue
                error = self._value_error(name, value, input_type, extra, info)
                if error is not None:
                    errors.append(error)

        for name in custom_validated:
            if name not in inputs:
                # ComfyUI calls the validate function without the argument and it raises.
                raise TypeError(f"VALIDATE_INPUTS() missing 1 required positional argument: '{name}'")
            value = inputs[name]
            if isinstance(value, list) or self.file_exists(class_type, name, str(value)):
                continue
            message = FILE_VALIDATED_INPUTS[(class_type, name)]
            errors.append(
                _error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    f"{name} - {message}: {value}",
                    {"input_name": name},
                )
            )

        result = (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
        self.validated[unique_id] = result
        return result

    @staticmethod
    def _value_error(
        name: str, value: Any, input_type: Any, extra: Mapping[str, Any], info: list[Any]
    ) -> dict[str, Any] | None:
        if "min" in extra and value < extra["min"]:
            return _error(
                "value_smaller_than_min",
                "Value {} smaller than min of {}".format(value, extra["min"]),
                name,
                {"input_name": name, "input_config": info, "received_value": value},
            )
        if "max" in extra and value > extra["max"]:
            return _error(
                "value_bigger_than_max",
                "Value {} bigger than max of {}".format(value, extra["max"]),
                name,
                {"input_name": name, "input_config": info, "received_value": value},
            )
        options = combo_options(input_type, extra)
        if options is None:
            return None
        if extra.get("multiselect", False) and isinstance(value, list):
            invalid = [item for item in value if item not in options]
        else:
            invalid = [value] if value not in options else []
        if not invalid:
            return None
        input_config: list[Any] | None = info
        if len(options) > 20:
            list_info = f"(list of length {len(options)})"
            input_config = None
        else:
            list_info = str(options)
        return _error(
            "value_not_in_list",
            "Value not in list",
            f"{name}: '{value}' not in {list_info}",
            {"input_name": name, "input_config": input_config, "received_value": value},
        )


def _check_nodes(
    graph: Mapping[str, Any], object_info: Mapping[str, Any], version: str
) -> dict[str, Any] | None:
    """The per-node class checks done before anything else; the first bad node's error."""
    for node_id in graph:
        node = graph[node_id]
        meta = node.get("_meta") if isinstance(node, Mapping) else None
        title = meta.get("title") if isinstance(meta, Mapping) else None
        if not isinstance(node, Mapping) or "class_type" not in node:
            if version == VERSION_0_3:
                return _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                )
            shown = title or f"ID #{node_id}"
            return _error(
                "missing_node_type",
                f"Node '{shown}' has no class_type. The workflow may be corrupted or a custom node is missing.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": None, "node_title": title},
            )
        class_type = node["class_type"]
        if not isinstance(class_type, str) or class_type not in object_info:
            if version == VERSION_0_3:
                return _error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                )
            return _error(
                "missing_node_type",
                f"Node '{class_type}' not found. The custom node may not be installed.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": class_type, "node_title": title or class_type},
            )
    return None


def validate_prompt(
    prompt: Mapping[str, Any],
    object_info: Mapping[str, Any],
    *,
    prompt_id: str | None = None,
    number: int | float = 0,
    version: str = VERSION_0_26,
    partial_execution_targets: Sequence[str] | None = None,
    input_file_exists: Callable[[str, str, str], bool] | None = None,
) -> PromptValidation:
    """Validate a prompt the way ``POST /prompt`` of ComfyUI does.

    Args:
        prompt: either the ``POST /prompt`` body (``{"prompt": graph, "prompt_id": ...,
            "partial_execution_targets": [...]}``) or the API-format graph itself
            (``{node_id: {"class_type", "inputs"}}``). Not modified.
        object_info: node schemas in ``/object_info`` form; for loaders and LoadImage/LoadVideo
            fill the file combos first with ``object_info_with_files``.
        prompt_id: the id to answer with (overrides the body's); without one a uuid4 is made.
            On 0.26.0 a client-chosen id must be a canonical lowercase UUID.
        number: the queue number to put in a 200 answer.
        version: ``"0.26.0"`` (default) or ``"0.3.64"``: error kinds that differ between them
            (``missing_node_type`` vs ``invalid_prompt``, the prompt-id rule).
        partial_execution_targets: only these output nodes are validated and run.
        input_file_exists: ``(class_type, input_name, value) -> bool`` for file-backed inputs;
            by default a value exists when it is one of the input's combo options.

    Returns:
        A ``PromptValidation`` with the status, the exact body and the outputs to execute.

    Raises:
        ValueError: ``version`` is not one of the supported versions.
        TypeError: the graph is not a mapping (ComfyUI answers 500 to such a body).
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {SUPPORTED_VERSIONS}, got {version!r}")
    is_body, payload = _split_request(prompt)
    if is_body:
        if "prompt" not in payload:
            return _rejected(_error("no_prompt", "No prompt provided", "No prompt provided"))
        graph = payload["prompt"]
        if prompt_id is None:
            prompt_id = payload.get("prompt_id")
        if partial_execution_targets is None:
            partial_execution_targets = payload.get("partial_execution_targets")
    else:
        graph = payload

    return validate_graph(
        graph,
        object_info,
        prompt_id=prompt_id,
        number=number,
        version=version,
        partial_execution_targets=partial_execution_targets,
        input_file_exists=input_file_exists,
    )


def validate_graph(
    graph: Any,
    object_info: Mapping[str, Any],
    *,
    prompt_id: Any = None,
    number: int | float = 0,
    version: str = VERSION_0_26,
    partial_execution_targets: Sequence[str] | None = None,
    input_file_exists: Callable[[str, str, str], bool] | None = None,
) -> PromptValidation:
    """``validate_prompt`` for the value of a body's ``"prompt"`` key (never a whole body).

    Same arguments and result as ``validate_prompt``; the server uses it because it already
    knows which part of the request is the graph.
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {SUPPORTED_VERSIONS}, got {version!r}")
    if prompt_id is not None and version == VERSION_0_26 and not is_canonical_uuid(prompt_id):
        return _rejected(
            _error(
                "invalid_prompt_id",
                "prompt_id must be a valid UUID",
                "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
                "omit it to let the server generate one",
            )
        )
    prompt_id = str(uuid.uuid4()) if prompt_id is None else str(prompt_id)

    if not isinstance(graph, Mapping):
        raise TypeError(f"the prompt must map node ids to nodes, got {type(graph).__name__}")
    graph = copy.deepcopy(dict(graph))

    node_error = _check_nodes(graph, object_info, version)
    if node_error is not None:
        return _rejected(node_error, prompt_id=prompt_id)

    # ComfyUI collects output nodes in a set, so its order is a per-process hash order. Reverse
    # prompt order is one such order, and the one the recorded 0.26.0 captures show.
    outputs = [
        node_id
        for node_id, node in reversed(graph.items())
        if is_output_node(object_info[node["class_type"]])
        and (partial_execution_targets is None or node_id in partial_execution_targets)
    ]
    if not outputs:
        return _rejected(
            _error("prompt_no_outputs", "Prompt has no outputs"), prompt=graph, prompt_id=prompt_id
        )

    validator = _Validator(graph, object_info, input_file_exists or _default_file_exists(object_info))
    good_outputs: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    log: list[str] = []
    for output_id in outputs:
        try:
            valid, reasons, _ = validator.validate_inputs(output_id)
        except Exception as ex:
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {
                        "exception_type": _full_type_name(type(ex)),
                        "traceback": traceback.format_tb(ex.__traceback__),
                    },
                )
            ]
            validator.validated[output_id] = (False, reasons, output_id)

        if valid is True:
            good_outputs.append(output_id)
            continue
        log.append(f"Failed to validate prompt for output {output_id}:")
        if reasons:
            log.append("* (prompt):")
            log.extend(f"  - {reason['message']}: {reason['details']}" for reason in reasons)
        failed.append((output_id, reasons))
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            # Downstream nodes of a bad node are invalid without reasons of their own: not reported.
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    class_type = graph[node_id]["class_type"]
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": class_type,
                    }
                    log.append(f"* {class_type} {node_id}:")
                    log.extend(f"  - {reason['message']}: {reason['details']}" for reason in node_reasons)
                node_errors[node_id]["dependent_outputs"].append(output_id)
        log.append("Output will be ignored")

    if not good_outputs:
        details = "\n".join(
            f"{reason['message']}: {reason['details']}" for _, reasons in failed for reason in reasons
        )
        return _rejected(
            _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            node_errors,
            prompt=graph,
            prompt_id=prompt_id,
            log=log,
        )
    return PromptValidation(
        ok=True,
        status=200,
        body={"prompt_id": prompt_id, "number": number, "node_errors": node_errors},
        outputs=good_outputs,
        prompt=graph,
        prompt_id=prompt_id,
        log=log,
    )
