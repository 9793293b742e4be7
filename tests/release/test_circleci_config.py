""".circleci/config.yml: valid against CircleCI's schema, and shaped the way docs/release.md says:
cheap checks gate the heavy jobs, only release tags publish, pull requests get no secrets, the tag
filter agrees with scripts/release.py, and credentials never appear in a command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.release.script import REPO_ROOT, release

CONFIG = REPO_ROOT / ".circleci" / "config.yml"
DOCS = REPO_ROOT / "docs" / "release.md"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run(
        [binary, "--builtin-schema", "vendor.circle-ci", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workflow_jobs(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(job name, invocation) of every job in the workflow."""
    (workflow,) = config["workflows"].values()
    jobs = []
    for entry in workflow["jobs"]:
        (name, invocation) = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        jobs.append((name, invocation or {}))
    return jobs


def invocations(workflow_jobs: list[tuple[str, dict[str, Any]]], job: str) -> list[dict[str, Any]]:
    return [invocation for name, invocation in workflow_jobs if name == job]


def test_config_validates_against_circleci_schema() -> None:
    result = check_jsonschema(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "config.yml"
    broken.write_text(CONFIG.read_text().replace("resource_class: medium", "resource_class: [medium]", 1))
    result = check_jsonschema(broken)
    assert result.returncode != 0, "check-jsonschema accepted a config with a list as resource_class"


def test_cheap_checks_gate_the_heavy_jobs(workflow_jobs: list[tuple[str, dict[str, Any]]]) -> None:
    (container,) = invocations(workflow_jobs, "container-tests")
    assert set(container["requires"]) == {"lint", "unit-tests"}
    images = invocations(workflow_jobs, "image")
    assert len(images) == 3
    for invocation in images:
        assert invocation["requires"] == ["container-tests"], invocation["name"]
        assert invocation["matrix"]["parameters"]["variant"] == list(release.VARIANTS)


def test_heavy_jobs_run_on_machines_with_docker(config: dict[str, Any]) -> None:
    jobs = config["jobs"]
    assert jobs["image"]["machine"]["image"].startswith("ubuntu-")
    assert "machine" in config["executors"][jobs["container-tests"]["executor"]]


def test_only_release_tags_publish(workflow_jobs: list[tuple[str, dict[str, Any]]]) -> None:
    release_filter = {"only": r"/^v\d+\.\d+\.\d+$/"}
    for invocation in invocations(workflow_jobs, "image"):
        filters = invocation["filters"]
        if invocation.get("publish"):
            assert filters["tags"] == release_filter, invocation["name"]
            assert filters["branches"] == {"ignore": "/.*/"}, f"{invocation['name']} would publish a branch"
        else:
            assert "tags" not in filters, f"{invocation['name']} would run (unpublished) on a release tag"
    # Upstream jobs must run on release tags too, or the release jobs never start.
    for job in ("lint", "unit-tests", "container-tests"):
        (invocation,) = invocations(workflow_jobs, job)
        assert invocation["filters"]["tags"] == release_filter, job


def test_pull_requests_get_no_secrets_and_no_push(workflow_jobs: list[tuple[str, dict[str, Any]]]) -> None:
    by_name = {invocation["name"]: invocation for invocation in invocations(workflow_jobs, "image")}
    pull_requests = by_name["build-<< matrix.variant >>"]
    assert "context" not in pull_requests and not pull_requests.get("publish")
    assert not pull_requests.get("cache_write")
    assert pull_requests["filters"]["branches"] == {"ignore": "main"}
    main = by_name["main-<< matrix.variant >>"]
    assert main["filters"]["branches"] == {"only": "main"} and not main.get("publish")
    for invocation in (main, by_name["release-<< matrix.variant >>"]):
        assert set(invocation["context"]) == {"ltx2-registry", "ltx2-huggingface"}


def test_the_tag_filter_agrees_with_the_script(workflow_jobs: list[tuple[str, dict[str, Any]]]) -> None:
    (lint,) = invocations(workflow_jobs, "lint")
    pattern = re.compile(lint["filters"]["tags"]["only"].strip("/"))
    samples = [
        "v0.1.0",
        "v1.2.3",
        "v10.0.12",
        "v1.2",
        "1.2.3",
        "v1.2.3-rc.1",
        "latest",
        "v01.2.3",
        "v1.2.3.4",
    ]
    for tag in samples:
        try:
            release.parse_release_tag(tag)
            accepted = True
        except release.ReleaseError:
            accepted = False
        if accepted:
            assert pattern.fullmatch(tag), f"the script releases {tag} but CircleCI would not run for it"
        elif pattern.fullmatch(tag):
            # CircleCI starts the pipeline; `lint` refuses the tag before anything heavy runs.
            assert tag == "v01.2.3", f"CircleCI would run release jobs for {tag}, which the script refuses"


def test_the_release_tag_is_checked_in_the_first_job(config: dict[str, Any]) -> None:
    commands = [
        step["run"]["command"]
        for step in config["jobs"]["lint"]["steps"]
        if isinstance(step, dict) and "run" in step
    ]
    assert commands[0] == "python3 scripts/release.py check-tag"


def _run_commands(config: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            run = node.get("run")
            if isinstance(run, str):
                found.append(run)
            elif isinstance(run, dict):
                found.append(run["command"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config["jobs"])
    walk(config["commands"])
    return found


def test_credentials_never_appear_in_a_command(config: dict[str, Any]) -> None:
    commands = _run_commands(config)
    assert commands
    for command in commands:
        for secret in ("REGISTRY_PASSWORD", "HF_TOKEN", "REGISTRY_USERNAME"):
            assert secret not in command, f"{secret} in a command: {command}"
        assert "set -x" not in command and "--build-arg" not in command, command


def test_image_job_builds_through_the_script(config: dict[str, Any]) -> None:
    commands = _run_commands({"jobs": {"image": config["jobs"]["image"]}, "commands": {}})
    builds = [c for c in commands if "release.py build" in c]
    assert len(builds) == 1
    assert "--variant << parameters.variant >>" in builds[0]
    assert "--publish << parameters.publish >>" in builds[0]
    assert any("release.py smoke --variant slim" in c for c in commands)
    assert any("release.py push --variant slim" in c for c in commands)
    assert any("release.py verify --variant << parameters.variant >>" in c for c in commands)


def test_the_docs_name_what_the_config_needs(
    config: dict[str, Any], workflow_jobs: list[tuple[str, dict[str, Any]]]
) -> None:
    text = DOCS.read_text(encoding="utf-8")
    contexts = {c for _, invocation in workflow_jobs for c in invocation.get("context", [])}
    variables = {
        "REGISTRY",
        "REGISTRY_USERNAME",
        "REGISTRY_PASSWORD",
        "HF_TOKEN",
        "IMAGE",
        "CACHE_REPOSITORY",
    }
    for name in sorted(contexts | variables | set(config["parameters"])):
        assert f"`{name}`" in text, f"docs/release.md does not mention `{name}`"
    assert "latest" in text
