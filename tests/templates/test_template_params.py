"""validate_template_params: defaults, conversions, seeds, and one test per refusal rule."""

from __future__ import annotations

import random

import pytest

from handler.templates import (
    RANDOM_SEED_LIMIT,
    TEMPLATE_NAMES,
    TemplateParamsError,
    frames_for_duration,
    nearest_valid_frames,
    template_media_slots,
    validate_template_params,
)

MEDIA = {
    "t2v": {},
    "i2v": {"image": "data:image/png;base64,iVBORw0KGgo="},
    "canny": {"video": "https://example.com/c.mp4"},
    "depth": {"video": "ZmFrZQ=="},
}


def problems_of(name: str, params: dict) -> list[str]:
    with pytest.raises(TemplateParamsError) as caught:
        validate_template_params(name, params, rng=random.Random(1))
    assert caught.value.template == name
    assert str(caught.value).startswith(f"template {name!r}: ")
    return caught.value.problems


def only_problem(name: str, params: dict) -> str:
    found = problems_of(name, params)
    assert len(found) == 1, found
    return found[0]


# --- defaults, seeds, conversions -----------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_defaults_come_from_the_official_templates(name: str, rng: random.Random) -> None:
    used = validate_template_params(name, MEDIA[name], rng=rng)
    expected_fps = 25 if name == "i2v" else 24
    expected_cfg = 3.0 if name in ("canny", "depth") else 4.0
    assert (used["width"], used["height"], used["frames"]) == (1280, 704, 121)
    assert used["fps"] == expected_fps and isinstance(used["fps"], int)
    assert used["steps"] == 20
    assert used["cfg"] == expected_cfg
    assert used["negative_prompt"].startswith("blurry, low quality, still frame")
    assert len(used["prompt"]) > 100  # the template's own example prompt
    assert "duration" not in used
    for key, value in MEDIA[name].items():
        assert used[key] == value  # opaque: passed through as given


def test_result_lists_every_parameter_in_template_order(rng: random.Random) -> None:
    used = validate_template_params("canny", {"video": "v", "image": "i", "seed": 5}, rng=rng)
    assert list(used) == [
        "prompt", "negative_prompt", "width", "height", "frames", "fps", "seed", "steps", "cfg", "video", "image",
    ]  # fmt: skip


def test_absent_optional_media_is_not_reported(rng: random.Random) -> None:
    used = validate_template_params("depth", {"video": "v"}, rng=rng)
    assert "image" not in used


def test_missing_seed_is_random_below_2_53_and_reported() -> None:
    seeds = {validate_template_params("t2v", {}, rng=random.Random(n))["seed"] for n in range(20)}
    assert len(seeds) == 20
    assert all(0 <= s < RANDOM_SEED_LIMIT == 2**53 for s in seeds)


def test_null_seed_means_random_and_rng_makes_it_reproducible() -> None:
    first = validate_template_params("t2v", {"seed": None}, rng=random.Random(7))["seed"]
    again = validate_template_params("t2v", {}, rng=random.Random(7))["seed"]
    assert first == again


def test_given_seed_is_kept_up_to_randomnoise_maximum(rng: random.Random) -> None:
    assert validate_template_params("t2v", {"seed": 2**64 - 1}, rng=rng)["seed"] == 2**64 - 1
    assert validate_template_params("t2v", {"seed": 0}, rng=rng)["seed"] == 0


def test_used_parameters_validate_again_to_themselves(rng: random.Random) -> None:
    for name in TEMPLATE_NAMES:
        used = validate_template_params(name, {**MEDIA[name], "duration": 4}, rng=rng)
        assert validate_template_params(name, used) == used


@pytest.mark.parametrize(
    ("duration", "fps", "frames"),
    [
        (5, 24, 121),
        (4, 24, 97),
        (5, 25, 129),
        (1, 24, 25),
        (0.5, 24, 9),
        (10.7, 24, 257),
        (2, 30, 57),
        (3.5, 24, 81),
    ],
)
def test_duration_becomes_the_nearest_8n_plus_1(
    duration: float, fps: int, frames: int, rng: random.Random
) -> None:
    assert frames_for_duration(duration, fps) == frames
    used = validate_template_params("t2v", {"duration": duration, "fps": fps}, rng=rng)
    assert used["frames"] == frames
    assert used["fps"] == fps
    assert "duration" not in used


def test_duration_halfway_rounds_up() -> None:
    # 13 frames lies halfway between 9 and 17; 12 and 14 are nearer to one of them
    assert frames_for_duration(13, 1) == 17
    assert frames_for_duration(12, 1) == 9
    assert frames_for_duration(14, 1) == 17


def test_duration_uses_the_templates_default_fps(rng: random.Random) -> None:
    # i2v defaults to 25 fps: 4 s = 100 frames -> 97; t2v at 24 fps: 96 -> 97 as well; 5 s differs
    assert validate_template_params("i2v", {"image": "x", "duration": 5}, rng=rng)["frames"] == 129
    assert validate_template_params("t2v", {"duration": 5}, rng=rng)["frames"] == 121


def test_nearest_valid_frames() -> None:
    assert nearest_valid_frames(120) == (113, 121)
    assert nearest_valid_frames(121) == (121, 121)
    assert nearest_valid_frames(2) == (1, 9)


def test_template_key_equal_to_the_name_is_accepted(rng: random.Random) -> None:
    assert validate_template_params("t2v", {"template": "t2v", "seed": 1}, rng=rng)["seed"] == 1


def test_integers_are_accepted_for_numbers(rng: random.Random) -> None:
    used = validate_template_params("t2v", {"cfg": 3, "duration": 2}, rng=rng)
    assert used["cfg"] == 3.0 and isinstance(used["cfg"], float)


def test_whole_floats_are_integers_as_in_json_schema(rng: random.Random) -> None:
    used = validate_template_params("t2v", {"frames": 97.0, "fps": 30.0, "seed": 5.0}, rng=rng)
    assert (used["frames"], used["fps"], used["seed"]) == (97, 30, 5)
    assert all(type(used[k]) is int for k in ("frames", "fps", "seed"))


# --- every refusal names its parameter --------------------------------------------------------


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(TemplateParamsError) as caught:
        validate_template_params("flf2v", {})
    assert caught.value.problems == ["template: unknown template 'flf2v'; known: t2v, i2v, canny, depth"]


def test_template_key_that_disagrees_is_refused() -> None:
    assert only_problem("t2v", {"template": "i2v"}).startswith("template: is 'i2v'")


def test_params_must_be_a_mapping() -> None:
    assert only_problem("t2v", ["prompt", "a cat"]).startswith("parameters: expected a mapping")  # type: ignore[arg-type]


def test_unknown_parameter_is_named_with_what_the_template_takes() -> None:
    problem = only_problem("t2v", {"strength": 1})
    assert problem.startswith(
        "strength: unknown parameter for template 't2v'; it takes: prompt, negative_prompt"
    )


def test_media_parameter_of_another_template_says_where_it_belongs() -> None:
    problem = only_problem("t2v", {"image": "x"})
    assert problem.startswith(
        "image: unknown parameter for template 't2v' (image belongs to i2v, canny, depth)"
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"frames": 120}, "frames: must be 8n+1 (nearest: 113 or 121), got 120"),
        ({"frames": 1}, "frames: must be at least 9, got 1"),
        ({"frames": 265}, "frames: must be at most 257, got 265"),
        ({"frames": 97.5}, "frames: expected an integer, got number 97.5"),
        ({"frames": "97"}, "frames: expected an integer, got string '97'"),
        ({"width": 1000}, "width: must be a multiple of 64"),
        ({"height": 720}, "height: must be a multiple of 64"),
        ({"width": 64}, "width: must be at least 128, got 64"),
        ({"height": 2624}, "height: must be at most 2560, got 2624"),
        ({"width": True}, "width: expected an integer, got boolean true"),
        ({"fps": 24.5}, "fps: expected an integer, got number 24.5"),
        ({"fps": 0}, "fps: must be at least 1, got 0"),
        ({"fps": 61}, "fps: must be at most 60, got 61"),
        ({"seed": -1}, "seed: must be at least 0, got -1"),
        ({"seed": 2**64}, "seed: must be at most 18446744073709551615"),
        ({"seed": "42"}, "seed: expected an integer, got string '42'"),
        ({"steps": 0}, "steps: must be at least 1, got 0"),
        ({"steps": 101}, "steps: must be at most 100, got 101"),
        ({"cfg": -0.5}, "cfg: must be at least 0, got -0.5"),
        ({"cfg": 20.5}, "cfg: must be at most 20, got 20.5"),
        ({"cfg": "4"}, "cfg: expected a number, got string '4'"),
        ({"cfg": float("nan")}, "cfg: must be a finite number, got nan"),
        ({"prompt": ""}, "prompt: must not be empty"),
        ({"prompt": "  \n"}, "prompt: must not be empty or only whitespace"),
        ({"prompt": 5}, "prompt: expected a string, got number 5"),
        ({"prompt": "x" * 20001}, "prompt: must be at most 20000 characters, got 20001"),
        ({"negative_prompt": None}, "negative_prompt: expected a string, got null"),
        ({"duration": 0}, "duration: must be more than 0, got 0"),
        ({"duration": "5s"}, "duration: expected a number, got string '5s'"),
    ],
)
def test_each_rule_names_the_parameter(params: dict, expected: str) -> None:
    assert only_problem("t2v", params).startswith(expected)


def test_multiple_of_64_suggests_the_nearest_sizes() -> None:
    problem = only_problem("t2v", {"width": 1000})
    assert "nearest: 960 or 1024" in problem and problem.endswith("got 1000")


def test_frames_and_duration_together_are_refused() -> None:
    assert only_problem("t2v", {"frames": 97, "duration": 4}) == (
        "duration: give either frames or duration, not both (got frames=97, duration=4)"
    )


def test_duration_too_long_says_how_frames_were_computed() -> None:
    assert only_problem("t2v", {"duration": 20}) == (
        "duration: too long: 20 s at 24 fps is 480 frames, 481 as 8n+1; the maximum is 257 frames (10.708 s at 24 fps)"
    )


def test_duration_limit_holds_with_a_whole_float_fps() -> None:
    assert only_problem("t2v", {"duration": 20, "fps": 24.0}).startswith("duration: too long: 20 s at 24 fps")


def test_duration_too_short_names_duration() -> None:
    assert only_problem("t2v", {"duration": 0.1, "fps": 30}).startswith(
        "duration: too short: 0.1 s at 30 fps is 3 frames, 1 as 8n+1; the minimum is 9 frames"
    )


def test_empty_negative_prompt_is_allowed(rng: random.Random) -> None:
    assert validate_template_params("t2v", {"negative_prompt": ""}, rng=rng)["negative_prompt"] == ""


@pytest.mark.parametrize(("name", "param"), [("i2v", "image"), ("canny", "video"), ("depth", "video")])
def test_required_media_must_be_present(name: str, param: str) -> None:
    problem = only_problem(name, {})
    assert problem.startswith(f"{param}: required by template {name!r}")


@pytest.mark.parametrize("value", ["", None, 17, {"url": "x"}])
def test_media_values_must_be_non_empty_strings(value: object) -> None:
    problem = only_problem("i2v", {"image": value})
    assert problem.startswith("image: ")


def test_long_media_values_are_never_echoed_whole() -> None:
    blob = "A" * 1_000_000
    problems = problems_of("i2v", {"image": 5, "prompt": blob * 1})
    assert all(len(p) < 300 for p in problems), [len(p) for p in problems]


def test_all_problems_are_reported_at_once_in_parameter_order() -> None:
    found = problems_of("i2v", {"cfg": 30, "frames": 120, "width": 1000, "bogus": 1})
    assert [p.split(":")[0] for p in found] == ["width", "frames", "cfg", "image", "bogus"]


def test_media_slots() -> None:
    assert [(s.param, s.kind, s.required) for s in template_media_slots("t2v")] == []
    assert [(s.param, s.kind, s.required) for s in template_media_slots("i2v")] == [("image", "image", True)]
    for name in ("canny", "depth"):
        slots = [(s.param, s.kind, s.required) for s in template_media_slots(name)]
        assert slots == [("video", "video", True), ("image", "image", False)]


def test_media_slots_of_unknown_template_raise() -> None:
    with pytest.raises(TemplateParamsError):
        template_media_slots("nope")
