"""`python -m handler render`: the prompt on stdout, problems on stderr with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handler import templates
from handler.templates import TemplateParamsError, parse_cli_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_render(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="render")
    templates.add_arguments(parser)
    code = templates.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MODEL_SET", "MODELS_LOCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKER_HOME", str(tmp_path / "worker"))  # no build-info.json there


def test_prints_the_rendered_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_render(
        ["t2v", "--param", "prompt=a cat", "--param", "frames=97", "-p", "seed=7"], capsys
    )
    assert code == 0, err
    prompt = json.loads(out)
    assert prompt["92:3"]["inputs"]["text"] == "a cat"
    assert prompt["92:62"]["inputs"]["value"] == 97
    assert prompt["92:11"]["inputs"]["noise_seed"] == 7
    assert prompt["92:1"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev-fp8.safetensors"  # default set: fp8
    assert err == ""


def test_set_and_media_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_render(
        ["depth", "--set", "bf16", "--video", "in/ctrl.mp4", "--image", "first.png"], capsys
    )
    assert code == 0, err
    prompt = json.loads(out)
    assert prompt["183"]["inputs"]["file"] == "in/ctrl.mp4"
    assert prompt["160"]["inputs"]["image"] == "first.png"
    assert prompt["143:103"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"


def test_model_set_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_SET", "bf16")
    code, out, _ = run_render(["t2v"], capsys)
    assert code == 0
    assert json.loads(out)["92:48"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"


def test_model_set_from_the_images_build_info(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "baked"
    home.mkdir()
    (home / "build-info.json").write_text(
        json.dumps({"variant": "baked", "model_set": "bf16", "models_dir": "/m"})
    )
    monkeypatch.setenv("WORKER_HOME", str(home))
    code, out, _ = run_render(["i2v", "--image", "a.png"], capsys)
    assert code == 0
    assert json.loads(out)["92:1"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"


def test_the_images_baked_set_wins_over_model_set_and_set_wins_over_both(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The worker's rule (handler.models.locate.active_model_set): a baked image serves its own set.
    home = tmp_path / "baked"
    home.mkdir()
    (home / "build-info.json").write_text(
        json.dumps({"variant": "fp8", "model_set": "fp8", "models_dir": "/m"})
    )
    monkeypatch.setenv("WORKER_HOME", str(home))
    monkeypatch.setenv("MODEL_SET", "bf16")
    code, out, err = run_render(["t2v"], capsys)
    assert code == 0, err
    assert json.loads(out)["92:1"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev-fp8.safetensors"
    assert err == "render: MODEL_SET=bf16 is ignored: this fp8 image bakes set fp8\n"

    code, out, err = run_render(["t2v", "--set", "bf16"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out)["92:1"]["inputs"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"


def test_show_params_reports_the_seed_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_render(["t2v", "--param", "duration=4", "--show-params"], capsys)
    assert code == 0
    used = json.loads(err)
    assert used["template"] == "t2v" and used["frames"] == 97 and isinstance(used["seed"], int)
    assert json.loads(out)["92:11"]["inputs"]["noise_seed"] == used["seed"]


def test_invalid_parameters_go_to_stderr_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_render(["i2v", "--param", "frames=120", "--param", "width=1000"], capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "render: invalid parameters for template 'i2v':"
    assert lines[1].startswith("  width: must be a multiple of 64")
    assert lines[2] == "  frames: must be 8n+1 (nearest: 113 or 121), got 120"
    assert lines[3].startswith("  image: required by template 'i2v'")


def test_unknown_set_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_render(["t2v", "--set", "fp4"], capsys)
    assert (code, out) == (2, "")
    assert "unknown model set 'fp4' (from --set); the lock defines: bf16, fp8" in err


def test_missing_lock_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_render(["t2v", "--lock", str(tmp_path / "none.yaml")], capsys)
    assert code == 2
    assert "model lock not found" in err


def test_cli_values_keep_text_as_text_and_read_numbers_as_json() -> None:
    params = parse_cli_params(
        "canny", ["prompt=42", "video=7.mp4", "frames=97", "cfg=3.5", "seed=null", "fps=x"]
    )
    assert params == {"prompt": "42", "video": "7.mp4", "frames": 97, "cfg": 3.5, "seed": None, "fps": "x"}


def test_cli_pair_without_equals_sign_is_refused() -> None:
    with pytest.raises(TemplateParamsError, match="--param 'frames': expected NAME=VALUE"):
        parse_cli_params("t2v", ["frames"])


def test_python_m_handler_render_in_a_subprocess() -> None:
    env = {**os.environ, "WORKER_HOME": "/nonexistent-worker-home"}
    env.pop("MODEL_SET", None)
    ok = subprocess.run(
        [sys.executable, "-m", "handler", "render", "canny", "--param", "prompt=a cat", "--video", "c.mp4"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["127"]["inputs"]["file"] == "c.mp4"
    bad = subprocess.run(
        [sys.executable, "-m", "handler", "render", "t2v", "--param", "frames=120"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == ""
    assert "frames: must be 8n+1" in bad.stderr
