"""Node schemas: the recorded ``/object_info``, the double's own fault-injection classes, and the
pure helpers validation and execution share (input specs, return types, combo filling).

Everything here is pure: no file system, no network. The object_info dicts are ComfyUI's own
wire format (``{"input": {"required": {name: [type, opts]}}, "output": [...], ...}``).
"""

from __future__ import annotations

import copy
import json
import mimetypes
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
RECORDED_OBJECT_INFO = DATA_DIR / "object_info_v0.26.0.json"

# ComfyUI's extension filter for model folders (folder_paths.supported_pt_extensions).
SUPPORTED_PT_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})

# Folder names that ComfyUI maps onto newer ones when paths are registered or looked up.
LEGACY_FOLDER_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

# (class, input) -> model folder whose file list fills the combo, as ComfyUI's loaders do.
MODEL_COMBOS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("LTXVAudioVAELoader", "ckpt_name"): "checkpoints",
    ("LTXAVTextEncoderLoader", "ckpt_name"): "checkpoints",
    ("LTXAVTextEncoderLoader", "text_encoder"): "text_encoders",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoaderBypass", "lora_name"): "loras",
    ("LoraLoaderBypassModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("DiffusersLoader", "model_path"): "diffusers",
}

# (class, input) -> content types of input-folder files the combo lists (filter_files_content_types).
INPUT_COMBOS: dict[tuple[str, str], tuple[str, ...]] = {
    ("LoadImage", "image"): ("image",),
    ("LoadImageMask", "image"): ("image",),
    ("LoadVideo", "file"): ("video",),
    ("LoadAudio", "audio"): ("audio", "video"),
}

# Nodes with a custom validation function over one input: (class, input) -> message prefix.
# Like ComfyUI, those inputs skip the combo-list check and must name an existing input file.
FILE_VALIDATED_INPUTS: dict[tuple[str, str], str] = {
    ("LoadImage", "image"): "Invalid image file",
    ("LoadImageMask", "image"): "Invalid image file",
    ("LoadVideo", "file"): "Invalid video file",
    ("LoadAudio", "audio"): "Invalid audio file",
}

_EXTRA_MIMETYPES = {".webp": "image/webp", ".flac": "audio/flac", ".webm": "video/webm", ".mp4": "video/mp4"}


def guess_mimetype(filename: str) -> str | None:
    """Content type from the extension, with the few ComfyUI registers itself."""
    suffix = Path(filename).suffix.lower()
    if suffix in _EXTRA_MIMETYPES:
        return _EXTRA_MIMETYPES[suffix]
    return mimetypes.guess_type(filename)[0]


def filter_files_content_types(files: Sequence[str], content_types: Sequence[str]) -> list[str]:
    """Keep the files whose guessed content type's major part is one of ``content_types``."""
    kept = []
    for name in files:
        mime = guess_mimetype(name)
        if mime and mime.split("/", 1)[0] in content_types:
            kept.append(name)
    return kept


# --------------------------------------------------------------------------------------------
# The double's fault-injection classes (present in object_info so prompts using them validate).
# --------------------------------------------------------------------------------------------

_DOUBLE_CATEGORY = "_double/fault injection"
_SEED_SPEC = ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}]


def _double_class(
    name: str,
    description: str,
    required: dict[str, list[Any]],
    optional: dict[str, list[Any]],
    output: list[str],
    output_name: list[str],
    output_node: bool,
) -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    return {
        "input": inputs,
        "input_order": order,
        "is_input_list": False,
        "output": output,
        "output_is_list": [False] * len(output),
        "output_name": output_name,
        "name": name,
        "display_name": name,
        "description": description,
        "python_module": "custom_nodes.comfy_double",
        "category": _DOUBLE_CATEGORY,
        "output_node": output_node,
        "deprecated": False,
        "experimental": True,
        "dev_only": False,
        "api_node": False,
        "search_aliases": [],
        "has_intermediate_output": False,
    }


_PASSTHROUGH = {"value": ["*", {"tooltip": "Anything; passed through unchanged."}]}

DOUBLE_NODE_CLASSES: dict[str, dict[str, Any]] = {
    "DoubleSleep": _double_class(
        "DoubleSleep",
        "Sleeps `seconds`, sending `ticks` progress updates; interruptible at each tick.",
        {"seconds": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 86400.0, "step": 0.01}]},
        {"ticks": ["INT", {"default": 0, "min": 0, "max": 100000}], "seed": _SEED_SPEC, **_PASSTHROUGH},
        ["*"],
        ["value"],
        True,
    ),
    "DoubleFail": _double_class(
        "DoubleFail",
        "Raises an exception of the given type with the given message.",
        {
            "message": ["STRING", {"default": "double failure", "multiline": False}],
            "exception_type": ["STRING", {"default": "RuntimeError", "multiline": False}],
        },
        {"seed": _SEED_SPEC, **_PASSTHROUGH},
        ["*"],
        ["value"],
        True,
    ),
    "DoubleCrash": _double_class(
        "DoubleCrash",
        "Kills the whole server process at once with `exit_code`, as a segfaulting ComfyUI would.",
        {"exit_code": ["INT", {"default": 139, "min": 0, "max": 255}]},
        {"seed": _SEED_SPEC, **_PASSTHROUGH},
        ["*"],
        ["value"],
        True,
    ),
    "DoubleHang": _double_class(
        "DoubleHang",
        "Never finishes and ignores interrupts.",
        {},
        {"seed": _SEED_SPEC, **_PASSTHROUGH},
        ["*"],
        ["value"],
        True,
    ),
    "DoubleDropSockets": _double_class(
        "DoubleDropSockets",
        "Closes every WebSocket connection, then carries on; the prompt still completes.",
        {},
        {"seed": _SEED_SPEC, **_PASSTHROUGH},
        ["*"],
        ["value"],
        True,
    ),
    "DoubleOutputFile": _double_class(
        "DoubleOutputFile",
        "Writes an output file of `size_bytes` deterministic bytes and reports it under `key`.",
        {
            "size_bytes": ["INT", {"default": 1024, "min": 0, "max": 1 << 40}],
            "extension": ["STRING", {"default": "mp4", "multiline": False}],
            "filename_prefix": ["STRING", {"default": "double/out", "multiline": False}],
        },
        {"key": ["STRING", {"default": "images", "multiline": False}], "seed": _SEED_SPEC, **_PASSTHROUGH},
        [],
        [],
        True,
    ),
    "DoubleValue": _double_class(
        "DoubleValue",
        "An output node that writes no file: reports its value as text, in no time.",
        {},
        {"seed": _SEED_SPEC, **_PASSTHROUGH},
        ["INT"],
        ["seed"],
        True,
    ),
}


def load_recorded_object_info(path: Path = RECORDED_OBJECT_INFO) -> dict[str, Any]:
    """The node schemas recorded from ComfyUI 0.26.0, without the double's own classes."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def double_object_info(recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recorded schemas plus the double's fault-injection classes (appended at the end)."""
    info = dict(recorded if recorded is not None else load_recorded_object_info())
    for name, entry in DOUBLE_NODE_CLASSES.items():
        info[name] = copy.deepcopy(entry)
    return info


# --------------------------------------------------------------------------------------------
# Combo filling
# --------------------------------------------------------------------------------------------


def _set_combo_options(spec: list[Any], options: list[str]) -> list[Any]:
    """Return ``spec`` with its options replaced, keeping its encoding (legacy or V3)."""
    spec = copy.deepcopy(spec)
    if isinstance(spec[0], list):
        spec[0] = options
    else:
        if len(spec) < 2:
            spec.append({})
        spec[1]["options"] = options
    return spec


def merged_folder_files(folders: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Merge legacy folder names into their new names; sorted, de-duplicated lists."""
    merged: dict[str, set[str]] = {}
    for folder, files in folders.items():
        merged.setdefault(LEGACY_FOLDER_NAMES.get(folder, folder), set()).update(files)
    return {folder: sorted(files) for folder, files in merged.items()}


def object_info_with_files(
    object_info: Mapping[str, Any],
    folders: Mapping[str, Sequence[str]],
    input_files: Sequence[str],
) -> dict[str, Any]:
    """Fill the loader and LoadImage/LoadVideo/LoadAudio combos the way ComfyUI builds them.

    Args:
        object_info: node schemas in ``/object_info`` form (not modified).
        folders: model folder name (``checkpoints``, ``text_encoders``, ``loras``,
            ``latent_upscale_models``, ``diffusion_models``, ``vae``, ...; legacy ``unet`` and
            ``clip`` are merged into ``diffusion_models`` and ``text_encoders``) to the file names
            ComfyUI sees in it (paths relative to the folder, ``/``-separated).
        input_files: file names in the input folder; each load node lists those of its content
            type (images for LoadImage, videos for LoadVideo, audio and video for LoadAudio).

    Returns:
        A new dict: the classes whose combos changed are deep copies, the rest are shared.
    """
    files = merged_folder_files(folders)
    result = dict(object_info)
    changed: dict[str, dict[str, Any]] = {}

    def spec_slot(class_type: str, input_name: str) -> tuple[dict[str, Any], str] | None:
        entry = result.get(class_type)
        if entry is None:
            return None
        for category in ("required", "optional"):
            if input_name in entry.get("input", {}).get(category, {}):
                if class_type not in changed:
                    changed[class_type] = copy.deepcopy(entry)
                    result[class_type] = changed[class_type]
                return changed[class_type]["input"][category], input_name
        return None

    for (class_type, input_name), folder in MODEL_COMBOS.items():
        slot = spec_slot(class_type, input_name)
        if slot is None:
            continue
        options = list(files.get(folder, []))
        if class_type == "VAELoader":
            options.append("pixel_space")
        slot[0][input_name] = _set_combo_options(slot[0][input_name], options)

    for (class_type, input_name), content_types in INPUT_COMBOS.items():
        slot = spec_slot(class_type, input_name)
        if slot is None:
            continue
        options = sorted(filter_files_content_types(list(input_files), content_types))
        slot[0][input_name] = _set_combo_options(slot[0][input_name], options)
    return result


# --------------------------------------------------------------------------------------------
# Input specs and return types
# --------------------------------------------------------------------------------------------


def spec_type_and_options(spec: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
    """ComfyUI's ``get_input_info`` split: (input type, extra-info dict)."""
    input_type = spec[0]
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return input_type, extra


def _autogrow_names(template: Mapping[str, Any]) -> list[str]:
    if "names" in template:
        return [str(name) for name in template["names"]]
    prefix = str(template.get("prefix", "input"))
    maximum = int(template.get("max", 100))
    return [f"{prefix}{index}" for index in range(maximum)]


def input_specs(
    class_info: Mapping[str, Any], live_inputs: Mapping[str, Any]
) -> dict[str, tuple[str, list[Any]]]:
    """Every input a node of this class accepts, given the values it was sent.

    Returns ``{name: (category, spec)}`` in schema order (required, then optional). V3 dynamic
    inputs are expanded the way 0.26 does: a DynamicCombo ``resize_type`` set to option K adds
    K's inputs as ``"resize_type.<sub>"``; an Autogrow ``images`` adds ``"images.image0"``, ...
    for the keys present (the first ``min`` of them are required).
    """
    specs: dict[str, tuple[str, list[Any]]] = {}
    schema_inputs = class_info.get("input", {})
    for category in ("required", "optional"):
        for name, spec in schema_inputs.get(category, {}).items():
            input_type, extra = spec_type_and_options(spec)
            specs[name] = (category, list(spec))
            if input_type == "COMFY_DYNAMICCOMBO_V3":
                selected = live_inputs.get(name)
                for option in extra.get("options", []):
                    if option.get("key") == selected:
                        nested = option.get("inputs", {})
                        for sub_category in ("required", "optional"):
                            for sub_name, sub_spec in nested.get(sub_category, {}).items():
                                specs[f"{name}.{sub_name}"] = (sub_category, list(sub_spec))
            elif input_type == "COMFY_AUTOGROW_V3":
                template = extra.get("template", {})
                template_specs = [
                    sub_spec
                    for sub_category in ("required", "optional")
                    for sub_spec in template.get("input", {}).get(sub_category, {}).values()
                ]
                if not template_specs:
                    continue
                minimum = int(template.get("min", 0))
                for index, slot_name in enumerate(_autogrow_names(template)):
                    key = f"{name}.{slot_name}"
                    if key in live_inputs or index < minimum:
                        category_of_slot = "required" if index < minimum else "optional"
                        specs[key] = (category_of_slot, list(template_specs[0]))
    return specs


def is_output_node(class_info: Mapping[str, Any] | None) -> bool:
    """Whether ComfyUI treats the class as an output node (``OUTPUT_NODE``)."""
    return bool(class_info and class_info.get("output_node") is True)


def _matchtype_template(class_info: Mapping[str, Any], template_id: str) -> tuple[str | None, str]:
    """The input name bound to a MatchType template and its allowed types."""
    for category in ("required", "optional"):
        for name, spec in class_info.get("input", {}).get(category, {}).items():
            input_type, extra = spec_type_and_options(spec)
            if input_type == "COMFY_MATCHTYPE_V3":
                template = extra.get("template", {})
                if template.get("template_id") == template_id:
                    return name, str(template.get("allowed_types", "*"))
    return None, "*"


def is_link(value: Any) -> bool:
    """ComfyUI's link test: a 2-item list ``[node_id, output_index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def return_types(
    prompt: Mapping[str, Any], node_id: str, object_info: Mapping[str, Any], _depth: int = 0
) -> tuple[str, ...]:
    """The node's RETURN_TYPES, with V3 MatchType outputs resolved through the linked input.

    A MatchType output takes the type of whatever is linked to its template's input, or the
    template's allowed types when nothing resolvable is linked.
    """
    node = prompt[node_id]
    class_info = object_info[node["class_type"]]
    outputs = list(class_info.get("output", []))
    matchtypes = class_info.get("output_matchtypes") or []
    for index, output_type in enumerate(outputs):
        if output_type != "COMFY_MATCHTYPE_V3" or index >= len(matchtypes):
            continue
        input_name, allowed = _matchtype_template(class_info, matchtypes[index])
        resolved = allowed
        linked = node.get("inputs", {}).get(input_name) if input_name else None
        if is_link(linked) and linked[0] in prompt and _depth < 64:
            source = prompt[linked[0]]
            if isinstance(source, Mapping) and source.get("class_type") in object_info:
                source_types = return_types(prompt, linked[0], object_info, _depth + 1)
                if 0 <= linked[1] < len(source_types):
                    resolved = source_types[linked[1]]
        outputs[index] = resolved
    return tuple(outputs)


def validate_node_input(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """ComfyUI's type compatibility rule for links (comma lists intersect; ``*`` matches all)."""
    if received_type == input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {part.strip() for part in received_type.split(",")}
    expected = {part.strip() for part in input_type.split(",")}
    if "*" in received or "*" in expected:
        return True
    if strict:
        return received.issubset(expected)
    return bool(received & expected)


def effective_input_type(input_type: Any, extra: Mapping[str, Any]) -> Any:
    """The type a link must match: MatchType inputs accept their template's allowed types."""
    if input_type == "COMFY_MATCHTYPE_V3":
        return str(extra.get("template", {}).get("allowed_types", "*"))
    return input_type


def combo_options(input_type: Any, extra: Mapping[str, Any]) -> list[Any] | None:
    """Options of a combo input in either encoding (and a DynamicCombo's keys), else None."""
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO":
        return list(extra.get("options", []))
    if input_type == "COMFY_DYNAMICCOMBO_V3":
        return [option.get("key") for option in extra.get("options", [])]
    return None
