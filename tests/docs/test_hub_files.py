"""The RunPod Hub files (.runpod/hub.json, .runpod/tests.json): their documented shape, and that
what they configure is real: settings the worker reads, GPU pools that exist and fit the model set,
CUDA versions the images run on, a disk the downloads fit on, and tests whose inputs the worker
accepts and completes (a Hub test passes on any HTTP 200, so these checks are the real ones).
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from handler.job.schema import parse_job_input
from handler.models.lock import load_lock
from handler.settings import Settings, SettingsError
from handler.templates import template_media_slots, validate_template_params
from tests.integration.harness import REPO, WorkerProcess

HUB_DIR = REPO / ".runpod"
SCHEMAS = Path(__file__).parent / "schemas"

# RunPod GPU pools (docs.runpod.io references/gpu-types; shared/facts/runpod.md section 5): VRAM in GB.
GPU_POOLS = {
    "AMPERE_16": 16,
    "AMPERE_24": 24,
    "ADA_24": 24,
    "AMPERE_48": 48,
    "ADA_48_PRO": 48,
    "AMPERE_80": 80,
    "ADA_80_PRO": 80,
    "HOPPER_141": 141,
}
# GPU type ids (as tests.json's gpuTypeId takes them) of the pools this worker can use.
GPU_TYPE_POOLS = {
    "NVIDIA L40": "ADA_48_PRO",
    "NVIDIA L40S": "ADA_48_PRO",
    "NVIDIA RTX 6000 Ada Generation": "ADA_48_PRO",
    "NVIDIA RTX A6000": "AMPERE_48",
    "NVIDIA A40": "AMPERE_48",
    "NVIDIA A100 80GB PCIe": "AMPERE_80",
    "NVIDIA A100-SXM4-80GB": "AMPERE_80",
    "NVIDIA H100 80GB HBM3": "ADA_80_PRO",
    "NVIDIA H100 PCIe": "ADA_80_PRO",
    "NVIDIA H200": "HOPPER_141",
}
# Least VRAM per model set (README "Variants"; facts/ltx2.md section 3): the checkpoint and the
# Gemma text encoder resident, plus the LoRA patch, the upscaler and activations.
SET_MIN_VRAM_GB = {"fp8": 48, "bf16": 80}
# Variables RunPod's platform reads, not the worker: allowed in the Hub files, nowhere else.
PLATFORM_VARIABLES = {
    "RUNPOD_INIT_TIMEOUT": "seconds a worker may take to start before it is marked unhealthy"
}
# Container disk a slim worker needs besides its downloads (estimates, docs/deploy-runpod.md).
SLIM_IMAGE_GB = 12
WORKING_SPACE_GB = 10
# A Hub test's input must stay cheap: it runs on every release.
CHEAP = {"pixels": 256 * 256, "frames": 17, "steps": 4}
# Time a tiny job may take after the worker has started (model load included), in seconds.
JOB_BUDGET_SECONDS = 600


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def hub() -> dict[str, Any]:
    return load_json(HUB_DIR / "hub.json")


@pytest.fixture(scope="module")
def hub_tests() -> dict[str, Any]:
    return load_json(HUB_DIR / "tests.json")


def schema_errors(document: Any, schema_name: str) -> list[str]:
    schema = load_json(SCHEMAS / schema_name)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


# --- shape ------------------------------------------------------------------------------------
def test_hub_json_has_the_documented_shape(hub: dict[str, Any]) -> None:
    assert schema_errors(hub, "runpod-hub.schema.json") == []
    assert hub["category"] == "video" and hub["config"]["runsOn"] == "GPU"


def test_tests_json_has_the_documented_shape(hub_tests: dict[str, Any]) -> None:
    assert schema_errors(hub_tests, "runpod-hub-tests.schema.json") == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("category",), "videos"),
        (("type",), "pod"),
        (("config", "runsOn"), "TPU"),
        (("config", "containerDiskInGb"), "90"),
        (("config", "allowedCudaVersions"), ["12"]),
        (("config", "env", 0, "input", "type"), "enum"),
        (("config", "env", 1, "input", "trueValue"), None),
        (("config", "gpuIds"), "ADA_48_PRO,,ADA_80_PRO"),
        (("config", "gpuCont"), 1),
    ],
    ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else None,
)
def test_the_schema_refuses_what_the_format_does_not_allow(
    hub: dict[str, Any], path: tuple[Any, ...], value: Any
) -> None:
    broken = copy.deepcopy(hub)
    target = broken
    for part in path[:-1]:
        target = target[part]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    assert schema_errors(broken, "runpod-hub.schema.json") != []


# --- the settings they set are real ---------------------------------------------------------
def env_entries(hub: dict[str, Any], hub_tests: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, key, entry) for every environment variable the Hub files name."""
    found = [(f"hub.json config.env[{i}]", e["key"], e) for i, e in enumerate(hub["config"]["env"])]
    for i, preset in enumerate(hub["config"].get("presets", [])):
        found += [
            (f"hub.json presets[{i}]", key, {"key": key, "value": v}) for key, v in preset["defaults"].items()
        ]
    found += [
        (f"tests.json config.env[{i}]", e["key"], e) for i, e in enumerate(hub_tests["config"].get("env", []))
    ]
    return found


def setting_aliases() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


def as_env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parsed_setting(key: str, value: Any) -> Any:
    """What the worker makes of KEY=value (raises SettingsError when it refuses it)."""
    settings = Settings.from_env({key: as_env_text(value)})
    field = next(name for name, f in Settings.model_fields.items() if f.alias == key)
    return getattr(settings, field)


def test_every_variable_is_a_worker_setting_or_a_platform_one(
    hub: dict[str, Any], hub_tests: dict[str, Any]
) -> None:
    known = setting_aliases() | set(PLATFORM_VARIABLES)
    unknown = [f"{where}: {key}" for where, key, _ in env_entries(hub, hub_tests) if key not in known]
    assert unknown == [], "not read by the worker (handler/settings.py) nor by RunPod"


def test_every_value_they_can_take_is_accepted_by_the_worker(
    hub: dict[str, Any], hub_tests: dict[str, Any]
) -> None:
    problems = []
    for where, key, entry in env_entries(hub, hub_tests):
        if key in PLATFORM_VARIABLES:
            if not re.fullmatch(
                r"[1-9][0-9]*", as_env_text(entry.get("value", entry.get("input", {}).get("default")))
            ):
                problems.append(f"{where}: {key} must be a whole number of seconds")
            continue
        spec = entry.get("input")
        values = [entry["value"]] if spec is None else []
        if spec is not None:
            if "default" in spec and spec["default"] != "":
                values.append(spec["default"])
            values += [option["value"] for option in spec.get("options", [])]
            if spec["type"] == "boolean":
                values += [spec["trueValue"], spec["falseValue"]]
                if (
                    parsed_setting(key, spec["trueValue"]) is not True
                    or parsed_setting(key, spec["falseValue"]) is not False
                ):
                    problems.append(
                        f"{where}: {key} trueValue/falseValue do not mean true/false to the worker"
                    )
            if spec["type"] == "number":
                values += [spec[bound] for bound in ("min", "max") if bound in spec]
                if "min" in spec and "max" in spec and not spec["min"] <= spec["default"] <= spec["max"]:
                    problems.append(
                        f"{where}: {key} default {spec['default']} outside {spec['min']}..{spec['max']}"
                    )
            if spec.get("options") and spec.get("default") not in [o["value"] for o in spec["options"]]:
                problems.append(f"{where}: {key} default {spec.get('default')!r} is not one of its options")
        for value in values:
            try:
                parsed_setting(key, value)
            except SettingsError as exc:
                problems.append(f"{where}: {exc}")
    assert problems == []


def test_model_set_options_are_the_lock_sets(hub: dict[str, Any]) -> None:
    [entry] = [e for e in hub["config"]["env"] if e["key"] == "MODEL_SET"]
    assert {o["value"] for o in entry["input"]["options"]} == set(load_lock().sets)
    presets = {p["defaults"]["MODEL_SET"] for p in hub["config"]["presets"]}
    assert presets == set(load_lock().sets)


def test_secrets_have_no_default_and_are_advanced(hub: dict[str, Any]) -> None:
    secret_keys = {"HF_TOKEN", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY"}
    entries = {e["key"]: e for e in hub["config"]["env"]}
    for key in secret_keys & set(entries):
        assert "value" not in entries[key], f"{key} must be an input, never a fixed value"
        assert entries[key]["input"].get("default", "") == ""


# --- hardware ----------------------------------------------------------------------------------
def pools_of(gpu_ids: str) -> list[str]:
    return [item.strip() for item in gpu_ids.split(",") if not item.strip().startswith("-")]


def default_model_set(hub: dict[str, Any]) -> str:
    [entry] = [e for e in hub["config"]["env"] if e["key"] == "MODEL_SET"]
    return entry["input"]["default"]


def test_gpu_pools_exist_and_fit_the_default_set(hub: dict[str, Any]) -> None:
    pools = pools_of(hub["config"]["gpuIds"])
    assert 1 <= len(pools) <= 3, "RunPod takes up to 3 GPU types, in priority order"
    assert [p for p in pools if p not in GPU_POOLS] == [], "unknown pool ids"
    need = SET_MIN_VRAM_GB[default_model_set(hub)]
    assert [p for p in pools if GPU_POOLS[p] < need] == [], (
        f"pools with less than {need} GB for the default set"
    )


def test_the_test_gpu_is_one_the_endpoint_may_use(hub: dict[str, Any], hub_tests: dict[str, Any]) -> None:
    gpu = hub_tests["config"]["gpuTypeId"]
    assert gpu in GPU_TYPE_POOLS, f"{gpu!r} is not a GPU type id this worker knows"
    assert GPU_TYPE_POOLS[gpu] in pools_of(hub["config"]["gpuIds"])
    test_env = {e["key"]: e["value"] for e in hub_tests["config"]["env"]}
    assert GPU_POOLS[GPU_TYPE_POOLS[gpu]] >= SET_MIN_VRAM_GB[test_env["MODEL_SET"]]


def image_cuda_version() -> tuple[int, int]:
    """major.minor of the CUDA base image docker-bake.hcl builds on."""
    bake = (REPO / "docker-bake.hcl").read_text(encoding="utf-8")
    match = re.search(r'variable "BASE_IMAGE"\s*\{[^}]*default\s*=\s*"nvidia/cuda:(\d+)\.(\d+)', bake)
    assert match, "docker-bake.hcl: BASE_IMAGE is not an nvidia/cuda image"
    return int(match.group(1)), int(match.group(2))


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def test_cuda_versions_are_ones_the_images_run_on(hub: dict[str, Any], hub_tests: dict[str, Any]) -> None:
    floor = image_cuda_version()
    for name, allowed in (
        ("hub.json", hub["config"]["allowedCudaVersions"]),
        ("tests.json", hub_tests["config"]["allowedCudaVersions"]),
    ):
        too_old = [v for v in allowed if version(v) < floor]
        assert too_old == [], f"{name}: the images need CUDA >= {floor[0]}.{floor[1]} (NVIDIA_REQUIRE_CUDA)"
        assert f"{floor[0]}.{floor[1]}" in allowed, f"{name}: the images' own CUDA version is not allowed"
    assert hub_tests["config"]["allowedCudaVersions"] == hub["config"]["allowedCudaVersions"]


def test_container_disk_holds_the_largest_set_without_a_volume(hub: dict[str, Any]) -> None:
    lock = load_lock()
    largest = max(sum(e.size or 0 for e in lock.set_entries(name)) for name in lock.sets)
    need = math.ceil(largest / 1e9 + SLIM_IMAGE_GB + WORKING_SPACE_GB)
    assert hub["config"]["containerDiskInGb"] >= need


# --- the tests ---------------------------------------------------------------------------------
def hub_test_inputs() -> list[tuple[str, dict[str, Any]]]:
    return [(t["name"], t["input"]) for t in load_json(HUB_DIR / "tests.json")["tests"]]


def test_each_test_allows_a_cold_start(hub_tests: dict[str, Any]) -> None:
    env = {e["key"]: e["value"] for e in hub_tests["config"]["env"]}
    init_seconds = int(env.get("RUNPOD_INIT_TIMEOUT", "420"))  # RunPod's limit without it: 7 minutes
    for test in hub_tests["tests"]:
        assert test["timeout"] >= (init_seconds + JOB_BUDGET_SECONDS) * 1000, test["name"]


def test_tests_enable_what_a_fresh_endpoint_needs(hub_tests: dict[str, Any]) -> None:
    """A Hub test endpoint has no volume: the slim image must be told its set and to download it."""
    env = {e["key"]: e["value"] for e in hub_tests["config"]["env"]}
    assert env.get("MODEL_SET") in load_lock().sets
    assert parsed_setting("ALLOW_DOWNLOADS", env.get("ALLOW_DOWNLOADS", "false")) is True


@pytest.mark.parametrize(("name", "job_input"), hub_test_inputs(), ids=[n for n, _ in hub_test_inputs()])
def test_test_input_passes_the_worker_validation_and_is_cheap(name: str, job_input: dict[str, Any]) -> None:
    request = parse_job_input(
        job_input,
        default_timeout=1800,
        max_timeout=86400,
        validate_template=validate_template_params,
        template_media=template_media_slots,
    )
    if request.template is not None:
        used = request.template_params
        assert used["width"] * used["height"] <= CHEAP["pixels"], name
        assert used["frames"] <= CHEAP["frames"] and used["steps"] <= CHEAP["steps"], name
        assert not request.media, f"{name}: a Hub test cannot rely on media URLs being reachable"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "job_input"), hub_test_inputs(), ids=[n for n, _ in hub_test_inputs()])
def test_test_input_completes_on_the_worker(
    name: str, job_input: dict[str, Any], docs_worker: WorkerProcess
) -> None:
    answer = docs_worker.runsync(job_input, timeout=120)
    assert answer.get("status") == "COMPLETED", answer
    output = answer["output"]
    assert output["status"] == "success" and output["outputs"], output
    if "template" in job_input:
        assert [item["mime"] for item in output["outputs"]] == ["video/mp4"]
