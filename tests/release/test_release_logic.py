"""scripts/release.py without Docker: tag parsing and refusals, the tag list per variant, the plan
for branch and release builds, the bake command, label and smoke-result checks, and the command
line run the way CI runs it (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.release.script import REPO_ROOT, SCRIPT, release

Version = release.Version
ReleaseError = release.ReleaseError
REVISION = "0123456789abcdef0123456789abcdef01234567"


# --- tags and versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("v0.0.0", (0, 0, 0)), ("v1.2.3", (1, 2, 3)), ("v10.20.300", (10, 20, 300))],
)
def test_release_tags_parse(tag: str, expected: tuple[int, int, int]) -> None:
    version = release.parse_release_tag(tag)
    assert tuple(version) == expected
    assert version.tag == tag


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        ("v1.2", "did you mean v1.2.0"),
        ("1.2.3", "lacks the leading 'v'"),
        ("v1.2.3-rc.1", "pre-release or build tag; they are not published"),
        ("v1.2.3+build.7", "pre-release or build tag"),
        ("1.2.3-rc.1", "pre-release or build tag"),
        ("v01.2.3", "leading zero"),
        ("v1.2.03", "leading zero"),
        ("v1.2.3.4", "is not a release tag"),
        ("latest", "is not a release tag"),
        ("V1.2.3", "is not a release tag"),
        ("", "is empty"),
        ("v1.2.3\n", "whitespace"),
    ],
)
def test_bad_tags_are_refused_with_the_reason(tag: str, says: str) -> None:
    with pytest.raises(ReleaseError) as caught:
        release.parse_release_tag(tag)
    assert says in str(caught.value)
    assert "v1.2.3" in str(caught.value) or "v1.2.0" in str(caught.value)  # what was expected


def test_a_tag_must_name_the_project_version() -> None:
    assert release.check_release_tag("v1.2.3", "1.2.3") == Version(1, 2, 3)
    with pytest.raises(ReleaseError) as caught:
        release.check_release_tag("v1.2.4", "1.2.3")
    message = str(caught.value)
    assert "v1.2.4" in message and "1.2.3" in message and "pyproject.toml" in message


def test_a_project_version_that_cannot_be_released_is_refused() -> None:
    assert release.parse_project_version("0.1.0") == Version(0, 1, 0)
    with pytest.raises(ReleaseError, match=re.escape("0.2.0.dev1")):
        release.parse_project_version("0.2.0.dev1")
    with pytest.raises(ReleaseError, match="does not match"):
        release.check_release_tag("v0.2.0", "0.2.0.dev1")


def test_versions_order_numerically() -> None:
    tags = ["v1.10.0", "v1.9.0", "v1.9.12", "nightly", "v2.0.0-rc.1"]
    assert [str(v) for v in release.release_versions(tags)] == ["1.9.0", "1.9.12", "1.10.0"]


def test_only_the_newest_release_moves_the_moving_tags() -> None:
    existing = ["v1.0.0", "v1.1.0", "v2.0.0", "v3.0.0-rc.1", "experiment"]
    assert release.is_newest_release(Version(2, 0, 1), existing)
    assert release.is_newest_release(Version(2, 0, 0), existing)  # re-running the newest release
    assert not release.is_newest_release(Version(1, 1, 1), existing)  # a patch for an older line
    assert release.is_newest_release(Version(0, 1, 0), [])


# --- the tag list per variant ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["baked", "slim", "fp8"])
def test_release_tags_per_variant(variant: str) -> None:
    repo = "docker.io/acme/ltx2-runpod-worker"
    assert release.image_tags(repo, "1.2.3", variant, moving=True) == [
        f"{repo}:1.2.3-{variant}",
        f"{repo}:{variant}",
    ]
    assert release.image_tags(repo, "1.2.3", variant, moving=False) == [f"{repo}:1.2.3-{variant}"]


def test_there_is_no_latest_tag() -> None:
    for variant in release.VARIANTS:
        for moving in (True, False):
            tags = release.image_tags("r/i", "1.2.3", variant, moving=moving)
            assert not any(ref.endswith(":latest") for ref in tags)
    with pytest.raises(ReleaseError, match="unknown variant 'latest'"):
        release.image_tags("r/i", "1.2.3", "latest", moving=True)


def test_tags_that_docker_would_refuse_are_refused_here() -> None:
    with pytest.raises(ReleaseError, match="not a valid Docker tag"):
        release.image_tags("r/i", "1.2.3/x", "slim", moving=False)
    with pytest.raises(ReleaseError, match="lowercase"):
        release.image_repository("docker.io/acme", "LTX2")


def test_repository_names_follow_the_bake_file() -> None:
    assert release.image_repository("", "ltx2-runpod-worker") == "ltx2-runpod-worker"
    assert release.image_repository("ghcr.io/acme/", "w") == "ghcr.io/acme/w"


def test_builds_that_are_not_releases_get_a_dev_version() -> None:
    assert release.dev_version("0.1.0", REVISION) == "0.1.0-dev.0123456789ab"
    with pytest.raises(ReleaseError, match="not a git commit id"):
        release.dev_version("0.1.0", "main")


@pytest.mark.parametrize(
    ("registry", "host"),
    [
        ("docker.io/acme", "docker.io"),
        ("acme", "docker.io"),
        ("ghcr.io/acme/team", "ghcr.io"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000"),
        ("localhost/x", "localhost"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
    ],
)
def test_registry_host_for_login(registry: str, host: str) -> None:
    assert release.registry_host(registry) == host


def test_login_needs_a_registry() -> None:
    with pytest.raises(ReleaseError, match="REGISTRY is empty"):
        release.registry_host("")


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:acme/ltx2-worker.git", "https://github.com/acme/ltx2-worker"),
        ("https://github.com/acme/ltx2-worker.git", "https://github.com/acme/ltx2-worker"),
        ("https://github.com/acme/ltx2-worker", "https://github.com/acme/ltx2-worker"),
        ("ssh://git@github.com/acme/ltx2-worker.git", "https://github.com/acme/ltx2-worker"),
        ("https://x-access-token:ghs_abc@github.com/acme/w.git", "https://github.com/acme/w"),
        ("", ""),
    ],
)
def test_source_label_comes_from_the_git_remote_without_credentials(remote: str, url: str) -> None:
    assert release.source_url(remote) == url


def test_created_is_rfc3339_utc() -> None:
    assert release.rfc3339_utc(0) == "1970-01-01T00:00:00Z"
    assert release.rfc3339_utc(1798761600) == "2027-01-01T00:00:00Z"


# --- plans ------------------------------------------------------------------------------------------


def plan(**overrides: object) -> object:
    values: dict[str, object] = {
        "variant": "fp8",
        "project_version": "1.2.3",
        "tag": "v1.2.3",
        "revision": REVISION,
        "git_tags": ["v1.0.0", "v1.2.2"],
        "registry": "docker.io/acme",
        "image": "ltx2-runpod-worker",
        "source": "https://github.com/acme/ltx2-worker",
        "created": "2027-01-01T00:00:00Z",
        "cache_repository": None,
    }
    values.update(overrides)
    return release.make_plan(**values)


def test_a_newest_release_moves_its_variant_tag() -> None:
    p = plan()
    assert p.release and p.moving
    assert p.version == "1.2.3"
    assert p.tags == [
        "docker.io/acme/ltx2-runpod-worker:1.2.3-fp8",
        "docker.io/acme/ltx2-runpod-worker:fp8",
    ]
    assert p.expected_labels == {
        "org.opencontainers.image.version": "1.2.3",
        "org.opencontainers.image.revision": REVISION,
        "org.opencontainers.image.source": "https://github.com/acme/ltx2-worker",
        "ltx2.worker.variant": "fp8",
    }


def test_a_patch_for_an_older_line_keeps_the_moving_tag() -> None:
    p = plan(project_version="1.1.5", tag="v1.1.5", git_tags=["v1.1.4", "v1.2.3"])
    assert p.release and not p.moving
    assert p.tags == ["docker.io/acme/ltx2-runpod-worker:1.1.5-fp8"]
    assert plan(project_version="1.1.5", tag="v1.1.5", moving=True).moving  # an explicit override


def test_a_branch_build_is_never_a_release() -> None:
    p = plan(tag="")
    assert not p.release and not p.moving
    assert p.tags == ["docker.io/acme/ltx2-runpod-worker:1.2.3-dev.0123456789ab-fp8"]
    with pytest.raises(ReleaseError, match="moving tags belong to releases"):
        plan(tag="", moving=True)


def test_a_release_tag_that_disagrees_with_pyproject_stops_the_plan() -> None:
    with pytest.raises(ReleaseError, match=re.escape("does not match pyproject.toml's version 1.2.3")):
        plan(tag="v1.2.4")


def test_registry_cache_refs() -> None:
    fp8 = plan()
    assert fp8.cache_repository == "docker.io/acme/ltx2-runpod-worker-buildcache"
    assert fp8.cache_from == [
        "docker.io/acme/ltx2-runpod-worker-buildcache:fp8",
        "docker.io/acme/ltx2-runpod-worker-buildcache:slim",
    ]
    assert fp8.cache_to.startswith(
        "type=registry,ref=docker.io/acme/ltx2-runpod-worker-buildcache:fp8,mode=max"
    )
    assert plan(variant="slim").cache_from == ["docker.io/acme/ltx2-runpod-worker-buildcache:slim"]
    assert plan(cache_repository="ghcr.io/acme/cache").cache_from[0] == "ghcr.io/acme/cache:fp8"
    local = plan(registry="", tag="")
    assert local.cache_repository == "" and local.cache_from == [] and local.cache_to == ""


def test_output_policy() -> None:
    assert release.output_for("slim", publish=False) == "load"
    assert release.output_for("slim", publish=True) == "load"  # pushed by `push` after its smoke test
    assert release.output_for("fp8", publish=True) == "push"
    assert release.output_for("baked", publish=False) == "cacheonly"


def test_the_bake_command_of_a_release() -> None:
    p = plan(variant="baked")
    command = release.bake_command(p, bake_files=["docker-bake.hcl"], output="push", cache_write=True)
    assert command[:5] == ["docker", "buildx", "bake", "-f", "docker-bake.hcl"]
    assert command[-1] == "baked"
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert "baked.tags=docker.io/acme/ltx2-runpod-worker:1.2.3-baked" in sets
    assert "baked.tags=docker.io/acme/ltx2-runpod-worker:baked" in sets
    assert "baked.labels.org.opencontainers.image.source=https://github.com/acme/ltx2-worker" in sets
    assert "baked.cache-from=type=registry,ref=docker.io/acme/ltx2-runpod-worker-buildcache:slim" in sets
    assert any(s.startswith("baked.cache-to=type=registry,") and "mode=max" in s for s in sets)
    assert "--push" in command and "--load" not in command


def test_the_bake_command_of_a_pull_request_pushes_nothing() -> None:
    p = plan(tag="", variant="baked")
    command = release.bake_command(p, bake_files=["docker-bake.hcl"], output="cacheonly", cache_write=False)
    assert "--push" not in command and "--load" not in command
    assert "baked.output=type=cacheonly" in command
    assert not any("cache-to" in arg for arg in command)
    assert any("cache-from" in arg for arg in command)  # reading the cache needs no credentials
    with pytest.raises(ReleaseError, match="unknown output"):
        release.bake_command(p, bake_files=[], output="registry", cache_write=False)


def test_the_token_stays_in_the_environment() -> None:
    token = "hf_NeverAnArgument0123456789"
    p = plan()
    environ = {"HF_TOKEN": token, "VERSION": "stray", "IMAGE": "stray", "PATH": "/usr/bin"}
    command = release.bake_command(p, bake_files=["docker-bake.hcl"], output="push", cache_write=True)
    env = release.bake_environment(environ, p, "docker.io/acme", "ltx2-runpod-worker")
    assert not any(token in arg for arg in command)
    assert env["HF_TOKEN"] == token  # the bake file's hf_token secret reads it from here
    assert env["VERSION"] == "1.2.3" and env["IMAGE"] == "ltx2-runpod-worker"
    assert env["GIT_REVISION"] == REVISION and env["CREATED"] == "2027-01-01T00:00:00Z"
    assert env["MOVING_TAGS"] == "true" and env["REGISTRY"] == "docker.io/acme"


# --- registry answers and labels ---------------------------------------------------------------------


def test_label_problems_name_each_label() -> None:
    expected = {"a": "1", "b": "2", "c": "3"}
    assert release.label_problems({"a": "1", "b": "2", "c": "3", "d": "x"}, expected) == []
    problems = release.label_problems({"a": "1", "b": "9"}, expected)
    assert problems == ["label b is '9', expected '2'", "label c is missing (expected '3')"]
    assert len(release.label_problems(None, expected)) == 3


def test_the_platform_image_is_picked_from_an_index_with_attestations() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
            {
                "digest": "sha256:" + "b" * 64,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }
    assert release.platform_manifest(index) == "sha256:" + "a" * 64
    index["manifests"] = index["manifests"][1:]
    with pytest.raises(ReleaseError, match=r"no linux/amd64 image .*unknown/unknown"):
        release.platform_manifest(index)


def test_references_split_at_the_tag_not_the_port() -> None:
    assert release.split_reference("127.0.0.1:5000/a/b:1.2.3-slim") == ("127.0.0.1:5000/a/b", "1.2.3-slim")
    with pytest.raises(ReleaseError, match="has no tag"):
        release.split_reference("127.0.0.1:5000/a/b")


# --- the smoke job's answer ---------------------------------------------------------------------------


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (34, 102, 170)).save(buffer, format="PNG")
    return buffer.getvalue()


def answer(data: bytes, **item_overrides: object) -> dict[str, object]:
    item = {
        "type": "image",
        "filename": "release-smoke_00001_.png",
        "mime": "image/png",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": base64.b64encode(data).decode(),
        **item_overrides,
    }
    return {
        "status": "COMPLETED",
        "output": {"status": "success", "outputs": [item], "models": {"files": []}},
    }


def test_a_right_smoke_answer_passes() -> None:
    data = png_bytes(64, 64)
    assert release.png_size(data) == (64, 64)
    assert release.smoke_problems(answer(data)) == []


def test_wrong_smoke_answers_say_what_is_wrong() -> None:
    data = png_bytes(64, 64)
    assert "expected 64x64" in release.smoke_problems(answer(png_bytes(32, 64)))[0]
    assert "sha256 does not match" in release.smoke_problems(answer(data, sha256="0" * 64))[0]
    assert "not a PNG" in release.smoke_problems(answer(b"GIF89a" + bytes(40)))[0]
    failed = {"status": "FAILED", "error": "node 2 has no input 'images'"}
    assert (
        "FAILED" in release.smoke_problems(failed)[0]
        and "no input 'images'" in release.smoke_problems(failed)[0]
    )
    no_report = answer(data)
    del no_report["output"]["models"]  # type: ignore[index]
    assert release.smoke_problems(no_report) == ["the output has no model report ('models')"]


# --- the command line, as CI runs it: python3 with the standard library only ---------------------------


def run_script(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    # -I -S: no site-packages, no user site, no PYTHON* variables: only the standard library.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_check_tag_prints_the_version(project_version: str) -> None:
    result = run_script("check-tag", f"v{project_version}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == project_version


def test_check_tag_refuses_a_tag_for_another_version(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2.0.0"\n')
    result = run_script("check-tag", "v2.0.1", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "tag v2.0.1 does not match pyproject.toml's version 2.0.0" in result.stderr
    assert run_script("check-tag", "v2.0", "--root", str(tmp_path)).returncode == 1
    assert run_script("check-tag", "v2.0.0", "--root", str(tmp_path)).stdout.strip() == "2.0.0"


def test_tags_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2.0.0"\n')
    common = ["--root", str(tmp_path), "--revision", REVISION, "--source", "", "--registry", "ghcr.io/acme"]
    moving = run_script("tags", "--variant", "fp8", "--tag", "v2.0.0", "--moving", "yes", *common)
    assert moving.stdout.split() == [
        "ghcr.io/acme/ltx2-runpod-worker:2.0.0-fp8",
        "ghcr.io/acme/ltx2-runpod-worker:fp8",
    ]
    fixed = run_script("tags", "--variant", "fp8", "--tag", "v2.0.0", "--moving", "no", *common)
    assert fixed.stdout.split() == ["ghcr.io/acme/ltx2-runpod-worker:2.0.0-fp8"]
    branch = run_script("tags", "--variant", "slim", "--tag", "", *common)
    assert branch.stdout.split() == ["ghcr.io/acme/ltx2-runpod-worker:2.0.0-dev.0123456789ab-slim"]


def test_a_branch_build_refuses_to_publish() -> None:
    result = run_script(
        "build", "--variant", "fp8", "--tag", "", "--registry", "ghcr.io/acme", "--publish", "--dry-run"
    )
    assert result.returncode == 1
    assert "pull requests and branches never push" in result.stderr


def test_a_pull_request_build_command(project_version: str) -> None:
    result = run_script(
        "build", "--variant", "fp8", "--tag", "", "--registry", "ghcr.io/acme",
        "--revision", REVISION, "--publish", "false", "--cache-write", "false", "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip().removeprefix("+ ").split()
    assert "--push" not in command and "fp8.output=type=cacheonly" in command
    assert f"fp8.tags=ghcr.io/acme/ltx2-runpod-worker:{project_version}-dev.0123456789ab-fp8" in command


def test_login_without_credentials_says_which_variables(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "login"],
        env={"PATH": "/usr/bin:/bin", "REGISTRY": "ghcr.io/acme", "DOCKER_CONFIG": str(tmp_path)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "REGISTRY_USERNAME and REGISTRY_PASSWORD" in result.stderr
