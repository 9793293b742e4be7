"""The script's tags are the bake file's: `docker buildx bake --print` resolves docker-bake.hcl's own
tags for the same REGISTRY, IMAGE, VERSION and MOVING_TAGS, and they must be the list the script
computes (the script passes its list to bake, so a drift would otherwise go unnoticed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.release.script import REPO_ROOT, release

pytestmark = pytest.mark.container


def bake_tags(variant: str, variables: dict[str, str]) -> list[str]:
    env = {**os.environ, **variables}
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        ["docker", "buildx", "bake", "-f", str(REPO_ROOT / "docker-bake.hcl"), "--print", variant],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["target"][variant]["tags"]


@pytest.mark.parametrize("registry", ["docker.io/acme", "127.0.0.1:5000/team", ""])
@pytest.mark.parametrize("moving", [True, False])
def test_script_and_bake_file_tag_alike(registry: str, moving: bool) -> None:
    for variant in release.VARIANTS:
        variables = {
            "REGISTRY": registry,
            "IMAGE": "ltx2-runpod-worker",
            "VERSION": "1.2.3",
            "MOVING_TAGS": "true" if moving else "false",
        }
        expected = release.image_tags(
            release.image_repository(registry, "ltx2-runpod-worker"), "1.2.3", variant, moving=moving
        )
        assert bake_tags(variant, variables) == expected
