"""`python -m handler fetch`: the command line over fetch_entries (tokens, JSON, exit codes)."""

from __future__ import annotations

import json
import logging

import pytest

from handler.cli import main
from handler.models.lock import load_lock
from tests.models.conftest import STANDARD_ENTRIES, Spec, files_under, licence, pinned, write_lock

pytestmark = pytest.mark.usefixtures("fast_retries")

FP8, LORA, ENCODER = STANDARD_ENTRIES
GATED = Spec("gated", "acme/gated", "gated.safetensors")


@pytest.fixture
def endpoint(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    return hub.endpoint


def test_fetches_a_set_and_its_licences_and_prints_json(tmp_path, hub, endpoint, capsys):
    lock_path = write_lock(
        tmp_path / "lock.yaml", [pinned(hub, FP8), pinned(hub, LORA)], licenses=[licence(hub)]
    )
    dest = tmp_path / "models"

    code = main(
        ["fetch", "--set", "test", "--dest", str(dest), "--lock", str(lock_path), "--json", "--no-progress"]
    )

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [(o["id"], o["action"]) for o in result["outcomes"]] == [
        ("ltx-fp8", "downloaded"),
        ("ltx-lora", "downloaded"),
        ("test-licence", "downloaded"),
    ]
    assert result["failures"] == []
    assert files_under(dest) == [
        "checkpoints/ltx-fp8.safetensors",
        "licenses/LTX-Test-License.txt",
        "loras/ltx-lora.safetensors",
    ]


def test_token_file_is_used_and_never_shown(tmp_path, hub, endpoint, capsys, caplog):
    lock_path = write_lock(tmp_path / "lock.yaml", [pinned(hub, GATED)])
    token_file = tmp_path / "hf_token"
    token_file.write_text("hf_granted_token\n")

    with caplog.at_level(logging.DEBUG):
        code = main(["fetch", "--set", "test", "--dest", str(tmp_path / "m"), "--lock", str(lock_path),
                     "--token-file", str(token_file)])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "downloaded" in captured.out
    assert "hf_granted_token" not in captured.out + captured.err + caplog.text


def test_an_unreadable_or_malformed_token_file_is_a_clear_error(tmp_path, hub, endpoint, capsys):
    lock_path = write_lock(tmp_path / "lock.yaml", [pinned(hub, GATED)])
    args = ["fetch", "--set", "test", "--dest", str(tmp_path / "m"), "--lock", str(lock_path), "--token-file"]

    assert main([*args, str(tmp_path / "absent")]) == 1
    assert "cannot read the token file" in capsys.readouterr().err

    two_words = tmp_path / "two"
    two_words.write_text("hf_secret_one hf_secret_two\n")
    assert main([*args, str(two_words)]) == 1
    err = capsys.readouterr().err
    assert "must hold one token on one line" in err and "hf_secret" not in err


def test_a_gated_repo_without_a_token_exits_1_with_the_reason(tmp_path, hub, endpoint, capsys):
    lock_path = write_lock(tmp_path / "lock.yaml", [pinned(hub, GATED)])
    assert main(["fetch", "--set", "test", "--dest", str(tmp_path / "m"), "--lock", str(lock_path)]) == 1
    assert "gated and no token was given" in capsys.readouterr().err


def test_trust_on_first_use_from_the_command_line_records_into_the_given_lock(tmp_path, hub, endpoint):
    lock_path = write_lock(tmp_path / "lock.yaml", [pinned(hub, LORA, sha256=None, size=None)])

    code = main(["fetch", "--set", "test", "--dest", str(tmp_path / "m"), "--lock", str(lock_path),
                 "--trust-on-first-use"])  # fmt: skip

    assert code == 0
    assert load_lock(lock_path).entries["ltx-lora"].sha256 == hub.file(LORA.repo, LORA.path).sha256


def test_the_shipped_lock_refuses_unknown_hashes_before_any_request(tmp_path, monkeypatch, capsys, hf_env):
    monkeypatch.setenv(
        "HF_ENDPOINT", "http://127.0.0.1:9"
    )  # nothing listens: a request would fail differently
    assert main(["fetch", "--set", "fp8", "--dest", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "ltx-2-19b-ic-lora-canny-control" in err and "lotus-depth-d-v1-1" in err
    assert "ltx-2-community-license" in err and "--trust-on-first-use" in err
    assert not (tmp_path / "m").exists()


def test_an_invalid_lock_exits_2(tmp_path, capsys):
    bad = tmp_path / "lock.yaml"
    bad.write_text("schema: 1\nentries: {}\nsets: {}\n")
    assert main(["fetch", "--set", "x", "--dest", str(tmp_path / "m"), "--lock", str(bad)]) == 2
    assert "is not a valid model lock" in capsys.readouterr().err


def test_an_unknown_set_exits_2(tmp_path, hub, capsys):
    lock_path = write_lock(tmp_path / "lock.yaml", [pinned(hub, LORA)])
    assert main(["fetch", "--set", "nope", "--dest", str(tmp_path / "m"), "--lock", str(lock_path)]) == 2
    assert "unknown model set 'nope'" in capsys.readouterr().err
