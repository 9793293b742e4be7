"""render_template: parameters and model roles land in every node that reads them."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from handler.models.lock import ModelLock
from handler.templates import (
    TEMPLATE_NAMES,
    TemplateParamsError,
    render_template,
    template_spec,
    validate_template_params,
)

JOB_MEDIA = {
    "t2v": {},
    "i2v": {"image": "aGVsbG8="},
    "canny": {"video": "aGVsbG8="},
    "depth": {"video": "aGVsbG8="},
}
INPUT_FILES = {"image": "job-1/first.png", "video": "job-1/control.mp4"}


def render(name: str, lock: ModelLock, set_name: str = "fp8", **params: Any) -> tuple[dict, dict]:
    used = validate_template_params(name, {**JOB_MEDIA[name], **params}, rng=random.Random(3))
    media_files = {k: INPUT_FILES[k] for k in ("image", "video") if k in used}
    graph = render_template(name, used, model_files=lock.role_filenames(set_name), media_files=media_files)
    return graph, used


def inputs_of(graph: dict, class_type: str) -> list[dict]:
    return [node["inputs"] for node in graph.values() if node["class_type"] == class_type]


@pytest.mark.parametrize("set_name", ["bf16", "fp8"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_checkpoint_is_the_same_file_in_all_three_loaders(name: str, set_name: str, lock: ModelLock) -> None:
    graph, _ = render(name, lock, set_name)
    checkpoint = lock.role_filenames(set_name)["checkpoint"]
    names = [
        i["ckpt_name"]
        for c in ("CheckpointLoaderSimple", "LTXVAudioVAELoader", "LTXAVTextEncoderLoader")
        for i in inputs_of(graph, c)
    ]
    assert names == [checkpoint] * 3


def test_bf16_and_fp8_differ_only_in_the_checkpoint(lock: ModelLock) -> None:
    fp8, _ = render("depth", lock, "fp8", seed=1)
    bf16, _ = render("depth", lock, "bf16", seed=1)
    changed = {
        (node_id, key)
        for node_id in fp8
        for key in fp8[node_id]["inputs"]
        if fp8[node_id]["inputs"][key] != bf16[node_id]["inputs"][key]
    }
    assert changed == {("143:103", "ckpt_name"), ("143:96", "ckpt_name"), ("143:97", "ckpt_name")}
    assert bf16["143:103"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"
    assert fp8["143:103"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev-fp8.safetensors"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_model_file_in_a_rendered_graph_comes_from_the_lock(name: str, lock: ModelLock) -> None:
    for set_name in lock.sets:
        graph, _ = render(name, lock, set_name)
        files = lock.role_filenames(set_name)
        expected = {files[role] for role in template_spec(name).roles}
        seen = {
            value
            for node in graph.values()
            for value in node["inputs"].values()
            if isinstance(value, str)
            and value.endswith((".safetensors", ".ckpt", ".pt", ".gguf", ".bin", ".sft"))
        }
        assert seen == expected


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_no_placeholder_or_template_example_file_survives(name: str, lock: ModelLock) -> None:
    graph, _ = render(name, lock)
    text = json.dumps(graph)
    assert "<model:" not in text and "<media:" not in text
    for example in ("freckled_curly_girl.png", "squirrel_in_flower_garden.mp4", "ltx_2_canny_1st_frame.png",
                    "minimalist_sky_view_lounge"):  # fmt: skip
        assert example not in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_fps_is_consistent_everywhere_with_the_right_json_types(name: str, lock: ModelLock) -> None:
    graph, used = render(name, lock, fps=30)
    assert used["fps"] == 30
    conditioning = inputs_of(graph, "LTXVConditioning")[0]["frame_rate"]
    create_video = inputs_of(graph, "CreateVideo")[0]["fps"]
    audio = inputs_of(graph, "LTXVEmptyLatentAudio")[0]["frame_rate"]
    values = []
    for value, want_type in ((conditioning, float), (create_video, float), (audio, int)):
        if isinstance(value, list):  # a link to the primitive that holds it
            source = graph[value[0]]
            assert source["class_type"] == ("PrimitiveFloat" if want_type is float else "PrimitiveInt")
            value = source["inputs"]["value"]
        assert type(value) is want_type
        values.append(value)
    assert values == [30.0, 30.0, 30]


def test_i2v_size_is_set_on_the_resize_node(lock: ModelLock) -> None:
    graph, _ = render("i2v", lock, width=768, height=512)
    resize = graph["102"]["inputs"]
    assert (resize["resize_type.width"], resize["resize_type.height"]) == (768, 512)
    assert graph["92:89"]["inputs"]["width"] == ["92:106", 0]  # still derived from the resized image


def test_t2v_parameters_land_on_their_nodes(lock: ModelLock) -> None:
    graph, _ = render("t2v", lock, prompt="a fox", negative_prompt="", width=1920, height=1088, frames=257,
                      seed=2**64 - 1, steps=30, cfg=5.5)  # fmt: skip
    assert graph["92:3"]["inputs"]["text"] == "a fox"
    assert graph["92:4"]["inputs"]["text"] == ""
    assert (graph["92:89"]["inputs"]["width"], graph["92:89"]["inputs"]["height"]) == (1920, 1088)
    assert graph["92:62"]["inputs"]["value"] == 257
    assert graph["92:11"]["inputs"]["noise_seed"] == 2**64 - 1
    assert graph["92:67"]["inputs"]["noise_seed"] == 0  # stage 2 keeps the template's seed
    assert graph["92:9"]["inputs"]["steps"] == 30
    assert graph["92:47"]["inputs"]["cfg"] == 5.5
    assert graph["92:82"]["inputs"]["cfg"] == 1  # stage 2 keeps cfg 1


@pytest.mark.parametrize(("name", "video_node"), [("canny", "127"), ("depth", "183")])
def test_control_templates_with_a_first_frame(name: str, video_node: str, lock: ModelLock) -> None:
    graph, _ = render(name, lock, image="x", frames=97, width=768, height=512)
    assert graph[video_node]["inputs"]["file"] == INPUT_FILES["video"]
    assert graph["160"] == {
        **graph["160"],
        "class_type": "LoadImage",
        "inputs": {"image": INPUT_FILES["image"]},
    }
    assert graph["169"]["inputs"]["value"] is False  # Ignore First Frame?
    assert graph["168"]["inputs"]["value"] == 97
    assert (graph["166"]["inputs"]["value"], graph["167"]["inputs"]["value"]) == (768, 512)


@pytest.mark.parametrize("name", ["canny", "depth"])
def test_control_templates_without_a_first_frame_need_no_image_file(name: str, lock: ModelLock) -> None:
    graph, used = render(name, lock)
    assert "image" not in used
    assert graph["160"]["class_type"] == "EmptyImage"
    assert graph["169"]["inputs"]["value"] is True
    assert not inputs_of(graph, "LoadImage")
    # the resize of the (ignored) first frame still has an image to read
    assert graph["165"]["inputs"]["input"] == ["160", 0]


def test_render_returns_a_fresh_graph_each_time(lock: ModelLock) -> None:
    first, used = render("t2v", lock, seed=1)
    first["92:3"]["inputs"]["text"] = "mutated"
    first["92:1"]["inputs"]["ckpt_name"] = "mutated"
    del first["75"]
    second = render_template("t2v", used, model_files=lock.role_filenames("fp8"), media_files={})
    assert second["92:3"]["inputs"]["text"] != "mutated"
    assert "75" in second
    assert template_spec("t2v").graph["92:1"]["inputs"]["ckpt_name"] == "<model:checkpoint>"


def test_missing_role_names_role_and_template(lock: ModelLock) -> None:
    used = validate_template_params("depth", {"video": "v"}, rng=random.Random(1))
    files = dict(lock.role_filenames("fp8"))
    del files["depth_vae"], files["depth_model"]
    with pytest.raises(TemplateParamsError) as caught:
        render_template("depth", used, model_files=files, media_files={"video": "v.mp4"})
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(
        "model role 'depth_model': needed by template 'depth' (loaders 181:10.unet_name)"
    )
    assert problems[1].startswith(
        "model role 'depth_vae': needed by template 'depth' (loaders 181:14.vae_name)"
    )


def test_missing_checkpoint_lists_all_three_loaders() -> None:
    used = validate_template_params("t2v", {}, rng=random.Random(1))
    with pytest.raises(TemplateParamsError) as caught:
        render_template(
            "t2v",
            used,
            model_files={"text_encoder": "t", "distilled_lora": "l", "spatial_upscaler": "u"},
            media_files={},
        )
    assert caught.value.problems == [
        "model role 'checkpoint': needed by template 't2v' (loaders 92:1.ckpt_name, 92:48.ckpt_name, 92:60.ckpt_name) "
        "but the model set does not provide it; it provides: distilled_lora, spatial_upscaler, text_encoder"
    ]


def test_given_media_needs_an_input_file_name(lock: ModelLock) -> None:
    used = validate_template_params("canny", {"video": "v", "image": "i"}, rng=random.Random(1))
    with pytest.raises(TemplateParamsError) as caught:
        render_template("canny", used, model_files=lock.role_filenames("fp8"), media_files={"video": "v.mp4"})
    assert caught.value.problems == ["image: no input-folder file name given for it (media_files has: video)"]


def test_unvalidated_params_are_refused(lock: ModelLock) -> None:
    with pytest.raises(TemplateParamsError) as caught:
        render_template(
            "t2v", {"prompt": "a cat", "duration": 4}, model_files=lock.role_filenames("fp8"), media_files={}
        )
    problems = caught.value.problems
    assert any(p.startswith("duration: is not a rendered parameter") for p in problems)
    assert any(p.startswith("seed: missing") for p in problems)
    assert any(p.startswith("width: missing") for p in problems)


def test_required_media_missing_at_render(lock: ModelLock) -> None:
    used = validate_template_params("i2v", {"image": "x"}, rng=random.Random(1))
    del used["image"]
    with pytest.raises(TemplateParamsError) as caught:
        render_template("i2v", used, model_files=lock.role_filenames("fp8"), media_files={})
    assert caught.value.problems == ["image: required by template 'i2v' but missing"]


def test_output_nodes_are_savevideo(lock: ModelLock) -> None:
    for name in TEMPLATE_NAMES:
        graph, _ = render(name, lock)
        assert graph[template_spec(name).output_node]["class_type"] == "SaveVideo"


def test_a_template_key_naming_the_same_template_is_tolerated(lock: ModelLock) -> None:
    used = validate_template_params("t2v", {"seed": 9}, rng=random.Random(1))
    graph = render_template(
        "t2v", {"template": "t2v", **used}, model_files=lock.role_filenames("fp8"), media_files={}
    )
    assert graph["92:11"]["inputs"]["noise_seed"] == 9
