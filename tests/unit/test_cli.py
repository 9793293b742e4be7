"""The one command line: every subcommand answers --help; only the one run is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from handler.cli import SUBCOMMANDS


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "handler", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m handler {command}")


def test_fetch_loads_only_the_model_code():
    probe = (
        "import sys\nfrom handler.cli import main\ntry:\n    main(['fetch', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('handler', 'runpod', 'aiohttp')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "handler.models.fetch" in loaded
    assert not [m for m in loaded if m.startswith(("runpod", "aiohttp", "handler.worker", "handler.job"))]


def test_top_level_help_lists_every_subcommand_without_importing_them():
    result = subprocess.run(
        [sys.executable, "-m", "handler", "--help"], capture_output=True, text=True, check=True
    )
    for command in SUBCOMMANDS:
        assert command in result.stdout
