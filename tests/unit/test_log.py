"""Logging: job ids, JSON lines, levels, and secrets that never reach a line."""

from __future__ import annotations

import json
import logging

import pytest

from handler.log import configure_logging, job_context, normalize_level, register_secrets, scrub


@pytest.fixture(autouse=True)
def _restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_secrets_are_scrubbed_from_messages_and_tracebacks(capsys):
    configure_logging("INFO", secrets=["hf_secrettoken123"])
    log = logging.getLogger("test.secrets")
    log.info("token is %s", "hf_secrettoken123")
    try:
        raise RuntimeError("upload failed with key hf_secrettoken123")
    except RuntimeError:
        log.exception("while uploading")
    err = capsys.readouterr().err
    assert "hf_secrettoken123" not in err
    assert err.count("***") >= 3  # the message, the exception line and the traceback's last line


def test_json_lines_carry_the_job_id(capsys):
    configure_logging("DEBUG", as_json=True)
    with job_context("job-42"):
        logging.getLogger("test.json").debug("hello")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["requestId"], line["message"], line["level"]) == ("job-42", "hello", "DEBUG")


@pytest.mark.parametrize(
    ("given", "expected"), [("debug", "DEBUG"), ("Warn", "WARNING"), (" info ", "INFO"), ("ERROR", "ERROR")]
)
def test_levels_are_case_insensitive(given, expected):
    assert normalize_level(given) == expected
    configure_logging(given)  # the fetch and lock commands pass LOG_LEVEL through as given
    assert logging.getLogger().level == logging.getLevelName(expected)


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"):
        normalize_level("LOUD")


def test_short_values_are_not_treated_as_secrets():
    register_secrets(["ab", ""])
    assert scrub("ab cd") == "ab cd"
