"""workflows/: the graphs, the mapping and the lock agree with each other."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from handler.models.lock import ModelLock
from handler.templates import (
    MANIFEST_NAME,
    TEMPLATE_NAMES,
    WORKFLOWS_DIR,
    TemplateDefinitionError,
    load_templates,
    parse_templates,
    template_spec,
)

# ComfyUI's loaders: class -> {input: models folder it lists} (folder_paths names).
LOADER_FOLDERS = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "LTXVAudioVAELoader": {"ckpt_name": "checkpoints"},
    "LTXAVTextEncoderLoader": {"ckpt_name": "checkpoints", "text_encoder": "text_encoders"},
    "LoraLoaderModelOnly": {"lora_name": "loras"},
    "LatentUpscaleModelLoader": {"model_name": "latent_upscale_models"},
    "UNETLoader": {"unet_name": "diffusion_models"},
    "VAELoader": {"vae_name": "vae"},
}
OFFICIAL_MANIFEST = Path(__file__).resolve().parents[1] / "fixtures" / "ltx2" / "manifest-entries-ltx2.json"
MODEL_FILE = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$")


def raw_inputs() -> tuple[dict, dict[str, tuple[Path, dict]]]:
    manifest = YAML(typ="safe").load((WORKFLOWS_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))
    graphs = {}
    for name, raw in manifest["templates"].items():
        path = WORKFLOWS_DIR / raw["workflow"]
        graphs[name] = (path, json.loads(path.read_text(encoding="utf-8")))
    return manifest, graphs


def test_the_four_templates_load() -> None:
    specs = load_templates()
    assert tuple(specs) == TEMPLATE_NAMES


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_loader_input_is_covered_by_a_role(name: str) -> None:
    spec = template_spec(name)
    mapped = {(m.node, m.input): m.role for m in spec.models}
    loader_inputs = {
        (node_id, input_name)
        for node_id, node in spec.graph.items()
        for input_name in LOADER_FOLDERS.get(node["class_type"], {})
    }
    assert loader_inputs == set(mapped)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_no_model_file_name_is_hard_coded_in_a_graph(name: str) -> None:
    for node_id, node in template_spec(name).graph.items():
        for input_name, value in node["inputs"].items():
            if isinstance(value, str):
                assert not MODEL_FILE.search(value), f"{name}: {node_id}.{input_name} = {value!r}"


@pytest.mark.parametrize("set_name", ["bf16", "fp8"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_role_exists_in_each_lock_set_in_the_folder_its_loaders_read(
    name: str, set_name: str, lock: ModelLock
) -> None:
    model_set = lock.set(set_name)
    assert set(template_spec(name).roles) <= set(model_set.models), set(template_spec(name).roles) - set(
        model_set.models
    )
    spec = template_spec(name)
    for model_input in spec.models:
        entry = lock.entries[model_set.models[model_input.role]]
        folder = LOADER_FOLDERS[spec.graph[model_input.node]["class_type"]][model_input.input]
        assert entry.folder == folder, (
            f"{model_input} reads {folder}, the lock puts {entry.id} in {entry.folder}"
        )


def test_every_lock_set_serves_every_template(lock: ModelLock) -> None:
    # No set in the lock is limited to some templates, so each must serve all four.
    for set_name in lock.sets:
        for name in TEMPLATE_NAMES:
            assert set(template_spec(name).roles) <= set(lock.role_filenames(set_name)), (set_name, name)


def test_roles_per_template() -> None:
    common = ["checkpoint", "text_encoder", "distilled_lora", "spatial_upscaler"]
    assert template_spec("t2v").roles == common
    assert template_spec("i2v").roles == common
    assert set(template_spec("canny").roles) == {*common, "canny_ic_lora"}
    assert set(template_spec("depth").roles) == {*common, "depth_ic_lora", "depth_model", "depth_vae"}


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_provenance_is_recorded(name: str) -> None:
    prov = template_spec(name).provenance
    assert prov["template"].startswith("video_ltx2_") and prov["template"].endswith(".json")
    assert re.fullmatch(r"[0-9a-f]{64}", prov["template_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", prov["api_export_sha256"])
    assert prov["min_comfyui_version"] == "0.8.0"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prov["template_date"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prov["derived"])
    assert prov["changes"]


def test_recorded_template_hashes_match_the_official_manifest() -> None:
    # The LTX-2 entries of ComfyUI's workflow-templates manifest (file name -> sha256 of each
    # asset), kept in tests/fixtures/ltx2/ from the project's reference material.
    official = {
        asset["filename"]: asset["sha256"]
        for entry in json.loads(OFFICIAL_MANIFEST.read_text(encoding="utf-8"))
        for asset in entry["assets"]
    }
    for name in TEMPLATE_NAMES:
        prov = template_spec(name).provenance
        assert official[prov["template"]] == prov["template_sha256"]


# --- the loader refuses an inconsistent workflows/ ---------------------------------------------


def broken(edit: Any) -> str:
    manifest, graphs = raw_inputs()
    manifest, graphs = copy.deepcopy(manifest), copy.deepcopy(graphs)
    edit(manifest, graphs)
    with pytest.raises(TemplateDefinitionError) as caught:
        parse_templates(manifest, graphs, source=Path("templates.yaml"))
    return str(caught.value)


def test_unmapped_placeholder_is_refused() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        manifest["templates"]["t2v"]["models"].pop()  # 92:76 model_name

    assert (
        "92:76.model_name holds '<model:spatial_upscaler>' but templates.yaml maps nothing to it"
        in broken(edit)
    )


def test_hard_coded_file_name_where_a_role_is_mapped_is_refused() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        graphs["depth"][1]["181:14"]["inputs"]["vae_name"] = "vae-ft-mse-840000-ema-pruned.safetensors"

    assert "node 181:14.vae_name holds 'vae-ft-mse-840000-ema-pruned.safetensors'" in broken(edit)


def test_target_on_a_missing_input_is_refused() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        manifest["templates"]["i2v"]["params"]["steps"]["targets"][0]["input"] = "step"

    assert "node 92:9 (LTXVScheduler) has no input 'step'" in broken(edit)


def test_target_on_a_link_is_refused() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        manifest["templates"]["t2v"]["params"]["frames"]["targets"] = [{"node": "92:43", "input": "length"}]

    assert "92:43.length is a link; set its source node instead" in broken(edit)


def test_targets_holding_different_defaults_are_refused() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        graphs["i2v"][1]["92:51"]["inputs"]["frame_rate"] = 24

    assert "the targets hold different values in the graph" in broken(edit)


def test_overridden_default_needs_a_reason() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        del manifest["templates"]["t2v"]["params"]["height"]["default_reason"]

    assert "needs default_reason" in broken(edit)


def test_template_list_must_match_template_names() -> None:
    def edit(manifest: dict, graphs: dict) -> None:
        del manifest["templates"]["depth"]

    assert "expected t2v, i2v, canny, depth" in broken(edit)


def test_load_templates_names_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateDefinitionError, match="template mapping not found"):
        load_templates(tmp_path)
