"""Settings from the environment, the SDK's arguments, the ComfyUI command, bucket configuration."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from handler.comfy.errors import JobFailure
from handler.comfy.supervisor import comfyui_command
from handler.job.storage import bucket_config, split_bucket_endpoint
from handler.settings import Settings, SettingsError, env_reference
from handler.worker import add_arguments, sdk_arguments, settings_from, warmup_input

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_and_types():
    settings = Settings.from_env({})
    assert settings.comfyui_url == "http://127.0.0.1:8188"
    assert settings.inline_max_bytes < 10_000_000  # safely below RunPod's /run limit
    assert not settings.log_as_json
    assert Settings.from_env({"RUNPOD_ENDPOINT_ID": "abc"}).log_as_json
    assert (
        Settings.from_env({"COMFYUI_CPU": "true", "SERVE_API": "1", "LOG_LEVEL": "warn"}).log_level
        == "WARNING"
    )
    assert Settings.from_env({"BUCKET_ENDPOINT_URL": "", "HF_TOKEN": ""}).bucket_endpoint_url is None


def test_errors_name_the_variable():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"COMFYUI_PORT": "eighty", "LOG_LEVEL": "LOUD"})
    assert "COMFYUI_PORT='eighty'" in str(caught.value)
    assert "LOG_LEVEL='LOUD'" in str(caught.value)


def test_secrets_are_not_in_repr_and_are_listed_for_scrubbing():
    settings = Settings.from_env({"HF_TOKEN": "hf_supersecret", "BUCKET_SECRET_ACCESS_KEY": "s3cr3tkey"})
    assert "hf_supersecret" not in repr(settings)
    assert set(settings.secret_values()) == {"hf_supersecret", "s3cr3tkey"}


def test_flags_override_environment_and_become_sdk_arguments():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--rp_serve_api", "--rp_api_host", "0.0.0.0", "--api-port", "9000", "--cpu"])
    settings = settings_from(args, {"SERVE_API_PORT": "1", "LOG_LEVEL": "WARNING"})
    assert settings.serve_api and settings.comfyui_cpu
    assert sdk_arguments(settings) == [
        "--rp_log_level",
        "WARN",
        "--rp_serve_api",
        "--rp_api_host",
        "0.0.0.0",
        "--rp_api_port",
        "9000",
    ]
    assert sdk_arguments(Settings.from_env({})) == ["--rp_log_level", "INFO"]


def test_comfyui_command_passes_folders_and_extra_args():
    settings = Settings.from_env(
        {
            "COMFYUI_PATH": "/c",
            "COMFYUI_PORT": "9",
            "COMFYUI_CPU": "1",
            "COMFYUI_ARGS": "--lowvram --preview-method 'none'",
        }
    )
    command = comfyui_command(settings, ["--extra-model-paths-config", "/x.yaml"], "/py")
    assert command[:6] == ["/py", "/c/main.py", "--listen", "127.0.0.1", "--port", "9"]
    assert command[command.index("--output-directory") + 1] == "/c/output"
    assert command[command.index("--temp-directory") + 1] == "/c"  # ComfyUI appends /temp
    assert command[-6:] == [
        "--cpu",
        "--extra-model-paths-config",
        "/x.yaml",
        "--lowvram",
        "--preview-method",
        "none",
    ]


def test_warmup_input_forms(tmp_path):
    assert warmup_input('{"workflow": {}}') == {"workflow": {}}
    (tmp_path / "w.json").write_text('{"input": {"template": "t2v"}}')
    assert warmup_input(f"@{tmp_path / 'w.json'}") == {"template": "t2v"}
    with pytest.raises(ValueError):
        warmup_input("[1, 2]")


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text()
    missing = [name for name, _default, _description in env_reference() if f"`{name}`" not in text]
    assert not missing, f"README lacks these environment variables: {missing}"


def test_bucket_from_environment_and_request():
    assert bucket_config(Settings.from_env({}), None) is None
    settings = Settings.from_env(
        {
            "BUCKET_ENDPOINT_URL": "https://my-bucket.s3.eu-west-1.amazonaws.com",
            "BUCKET_ACCESS_KEY_ID": "AKIA1",
            "BUCKET_SECRET_ACCESS_KEY": "secret1",
        }
    )
    config = bucket_config(settings, None)
    assert (config.endpoint_url, config.bucket, config.region, config.addressing_style) == (
        "https://s3.eu-west-1.amazonaws.com",
        "my-bucket",
        "eu-west-1",
        "virtual",
    )
    assert "secret1" not in repr(config)
    request = bucket_config(
        settings,
        {"endpointUrl": "http://127.0.0.1:9000", "accessId": "a", "accessSecret": "b", "bucketName": "out"},
    )
    assert (request.endpoint_url, request.bucket, request.addressing_style) == (
        "http://127.0.0.1:9000",
        "out",
        "path",
    )
    with pytest.raises(JobFailure, match="s3Config is missing accessSecret"):
        bucket_config(settings, {"endpointUrl": "http://x", "accessId": "a"})
    with pytest.raises(JobFailure, match="BUCKET_NAME is not set"):
        bucket_config(
            Settings.from_env(
                {
                    "BUCKET_ENDPOINT_URL": "https://r2.example.com",
                    "BUCKET_ACCESS_KEY_ID": "a",
                    "BUCKET_SECRET_ACCESS_KEY": "b",
                }
            ),
            None,
        )
    with pytest.raises(JobFailure, match="BUCKET_ACCESS_KEY_ID or BUCKET_SECRET_ACCESS_KEY is not"):
        bucket_config(Settings.from_env({"BUCKET_ENDPOINT_URL": "https://bkt.s3.amazonaws.com"}), None)


def test_split_bucket_endpoint():
    assert split_bucket_endpoint("https://bkt.s3.amazonaws.com") == ("https://s3.amazonaws.com", "bkt", None)
    assert split_bucket_endpoint("https://s3.us-east-2.amazonaws.com/") == (
        "https://s3.us-east-2.amazonaws.com",
        None,
        None,
    )
    assert split_bucket_endpoint("http://127.0.0.1:9000") == ("http://127.0.0.1:9000", None, None)
    assert re.match(r"^https://s3\.", split_bucket_endpoint("https://x.y.s3.us-west-2.amazonaws.com")[0])
