#!/usr/bin/env python3
"""Versions, image tags and publishing for the worker images: what CircleCI runs, in one place.

Standard library only, so CI can run it before anything is installed::

    python3 scripts/release.py check-tag v0.1.0
    python3 scripts/release.py tags --variant fp8 --tag v0.1.0 --registry docker.io/you
    python3 scripts/release.py build --variant slim            # docker buildx bake slim, loaded
    python3 scripts/release.py smoke --variant slim            # run it on CPU, one job
    python3 scripts/release.py push --variant slim --tag v0.1.0   # push the tested image's tags
    python3 scripts/release.py verify --variant slim --tag v0.1.0 # read them back from the registry

Policy (docs/release.md says why):

- A release is a git tag ``vMAJOR.MINOR.PATCH`` equal to ``[project] version`` in pyproject.toml.
  Pre-release tags (``v1.2.3-rc.1``) and anything else are refused: they are never published.
- A release publishes, per variant, ``REGISTRY/IMAGE:X.Y.Z-<variant>`` (the scheme of
  docker-bake.hcl) and moves ``REGISTRY/IMAGE:<variant>`` when it is the newest release: a patch
  for an older line does not move the moving tags backwards.
- There is no ``latest``: the variants are not interchangeable (0, 49 or 65 GB of models, different
  GPUs), so a bare ``docker pull IMAGE`` fails instead of guessing.
- Builds that are not releases get the version ``X.Y.Z-dev.<commit>`` and are never pushed.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("baked", "slim", "fp8")
DEFAULT_IMAGE = "ltx2-runpod-worker"  # docker-bake.hcl's IMAGE default
# Variants CI loads into the Docker engine and runs; the others are too big to hold twice on a CI
# machine, so they are exported straight to the registry (docs/release.md, "Smoke tests").
LOADED_VARIANTS = frozenset({"slim"})
OUTPUTS = ("load", "push", "cacheonly")
PLATFORM = ("linux", "amd64")

# OCI labels the bake file sets and a published image must carry with the release's values.
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_VARIANT = "ltx2.worker.variant"

_NUMBER = r"(0|[1-9][0-9]*)"
RELEASE_TAG = re.compile(rf"v{_NUMBER}\.{_NUMBER}\.{_NUMBER}")
_LOOSE_TAG = re.compile(r"^v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(.*)$")
# Docker's rule for the tag part of a reference. Patterns are used with fullmatch.
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
HEX_REVISION = re.compile(r"[0-9a-f]{7,64}")


class ReleaseError(Exception):
    """A refusal the user can act on: what was wrong, and what was expected."""


class Version(NamedTuple):
    """A release version, MAJOR.MINOR.PATCH, ordered numerically."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def tag(self) -> str:
        """The git tag that releases this version."""
        return f"v{self}"


# --------------------------------------------------------------------------------------------
# Versions and tags (pure)
# --------------------------------------------------------------------------------------------


def parse_release_tag(tag: str) -> Version:
    """The version a release tag names; raises ReleaseError saying what is wrong with any other tag.

    >>> parse_release_tag("v1.2.3")
    Version(major=1, minor=2, patch=3)
    """
    match = RELEASE_TAG.fullmatch(tag)  # fullmatch: `$` alone would accept a trailing newline
    if match:
        return Version(*(int(part) for part in match.groups()))
    loose = _LOOSE_TAG.match(tag)
    expected = "expected vMAJOR.MINOR.PATCH, like v1.2.3"
    if not tag:
        raise ReleaseError(f"the release tag is empty: {expected}")
    if tag != tag.strip():
        raise ReleaseError(f"release tag {tag!r} has surrounding whitespace: {expected}")
    if loose is None:
        raise ReleaseError(f"{tag!r} is not a release tag: {expected}")
    major, minor, patch, rest = loose.groups()
    if rest.startswith(("-", "+")) and patch is not None:
        raise ReleaseError(
            f"{tag!r} is a pre-release or build tag; they are not published. Release as "
            f"v{int(major)}.{int(minor)}.{int(patch)}; test a candidate by building its branch."
        )
    if rest:
        raise ReleaseError(f"{tag!r} is not a release tag: {expected}")
    if patch is None:
        raise ReleaseError(
            f"{tag!r} has two numbers, a release tag has three ({expected}); did you mean "
            f"v{int(major)}.{int(minor)}.0?"
        )
    if not tag.startswith("v"):
        raise ReleaseError(f"{tag!r} lacks the leading 'v' of a release tag: did you mean v{tag}?")
    raise ReleaseError(f"{tag!r} has a number with a leading zero, which semver forbids: {expected}")


def parse_project_version(text: str) -> Version:
    """pyproject's version as a release version; raises ReleaseError unless it is MAJOR.MINOR.PATCH."""
    try:
        return parse_release_tag(f"v{text}")
    except ReleaseError:
        raise ReleaseError(
            f"pyproject.toml's [project] version {text!r} is not MAJOR.MINOR.PATCH; a release needs one"
        ) from None


def check_release_tag(tag: str, project_version: str) -> Version:
    """The released version, after checking ``tag`` is a release tag naming pyproject's version."""
    version = parse_release_tag(tag)
    if str(version) != project_version:
        raise ReleaseError(
            f"tag {tag} does not match pyproject.toml's version {project_version}: tag "
            f"v{project_version} instead, or set [project] version to {version} (and VERSION in "
            "docker-bake.hcl) in the commit you tag"
        )
    return version


def release_versions(git_tags: Iterable[str]) -> list[Version]:
    """The versions of the release tags among ``git_tags`` (other tags are not releases), sorted."""
    versions = []
    for tag in git_tags:
        try:
            versions.append(parse_release_tag(tag))
        except ReleaseError:
            continue
    return sorted(versions)


def is_newest_release(version: Version, git_tags: Iterable[str]) -> bool:
    """True when no release tag among ``git_tags`` is newer than ``version``: only then do the
    moving tags move, so a patch release for an older line never takes them backwards."""
    return all(other <= version for other in release_versions(git_tags))


def dev_version(project_version: str, revision: str) -> str:
    """The version of a build that is not a release: never published, recognisable in labels."""
    if not HEX_REVISION.fullmatch(revision):
        raise ReleaseError(f"revision {revision!r} is not a git commit id (7 to 64 hex digits)")
    return f"{project_version}-dev.{revision[:12]}"


def image_repository(registry: str, image: str) -> str:
    """``REGISTRY/IMAGE`` as docker-bake.hcl's ``tag()`` builds it (no registry: a local name)."""
    if not image or any(c.isspace() for c in image) or image != image.lower():
        raise ReleaseError(f"image name {image!r} must be non-empty lowercase with no spaces")
    if any(c.isspace() for c in registry):
        raise ReleaseError(f"registry {registry!r} is not a registry path like docker.io/you")
    registry = registry.rstrip("/")
    return f"{registry}/{image}" if registry else image


def image_tags(repository: str, version: str, variant: str, *, moving: bool) -> list[str]:
    """The references one variant gets: ``REPO:VERSION-variant`` and, when ``moving``, ``REPO:variant``.

    Never ``latest`` (module docstring)."""
    if variant not in VARIANTS:
        raise ReleaseError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    names = [f"{version}-{variant}"] + ([variant] if moving else [])
    for name in names:
        if not DOCKER_TAG.fullmatch(name):
            raise ReleaseError(f"{name!r} is not a valid Docker tag (letters, digits, _ . -; at most 128)")
    return [f"{repository}:{name}" for name in names]


def registry_host(registry: str) -> str:
    """The host ``docker login`` needs for a registry path: ``ghcr.io/org`` -> ``ghcr.io``;
    a first component without a dot or port (``you``) is Docker Hub, as in Docker's own rule."""
    if not registry.strip("/"):
        raise ReleaseError("REGISTRY is empty: set it to where images go, e.g. docker.io/you")
    first = registry.strip("/").split("/", 1)[0]
    if "." in first or ":" in first or first == "localhost":
        return first
    return "docker.io"


def source_url(repository_url: str) -> str:
    """A browsable https URL for ``org.opencontainers.image.source`` from a git remote URL
    (``git@host:org/repo.git``, ``ssh://git@host/org/repo``, ``https://user:token@host/...``).
    Credentials in the URL never reach the label."""
    url = repository_url.strip()
    if not url:
        return ""
    scp = re.match(r"^[\w.-]+@([\w.-]+):(.+)$", url)
    if scp:
        host, path = scp.groups()
    else:
        parsed = re.match(r"^(?:https?|ssh|git)://(?:[^@/]+@)?([^/:]+)(?::\d+)?/(.+)$", url)
        if not parsed:
            raise ReleaseError(f"cannot make a source URL from the git remote {repository_url!r}")
        host, path = parsed.groups()
    path = path.strip("/")
    path = path.removesuffix(".git")
    return f"https://{host}/{path}"


def rfc3339_utc(epoch_seconds: int) -> str:
    """An RFC 3339 UTC time stamp, as the bake file's CREATED expects."""
    return dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# The plan for one variant (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything one variant's build and publication uses, decided before anything runs."""

    variant: str
    version: str
    release: bool
    moving: bool
    repository: str
    tags: list[str]
    revision: str
    source: str
    created: str
    cache_repository: str  # "" = no registry cache

    @property
    def primary(self) -> str:
        """The immutable reference ``REPO:VERSION-variant``."""
        return self.tags[0]

    @property
    def cache_from(self) -> list[str]:
        """Cache refs to read: this variant's, then slim's (every variant shares slim's stages)."""
        if not self.cache_repository:
            return []
        refs = [f"{self.cache_repository}:{self.variant}"]
        if self.variant != "slim":
            refs.append(f"{self.cache_repository}:slim")
        return refs

    @property
    def cache_to(self) -> str:
        """The cache export for this variant (mode=max: the shared stages too)."""
        if not self.cache_repository:
            return ""
        return (
            f"type=registry,ref={self.cache_repository}:{self.variant},mode=max,"
            "image-manifest=true,oci-mediatypes=true,ignore-error=true"
        )

    @property
    def expected_labels(self) -> dict[str, str]:
        labels = {LABEL_VERSION: self.version, LABEL_REVISION: self.revision, LABEL_VARIANT: self.variant}
        if self.source:
            labels[LABEL_SOURCE] = self.source
        return labels


def make_plan(
    *,
    variant: str,
    project_version: str,
    tag: str,
    revision: str,
    git_tags: Sequence[str],
    registry: str,
    image: str,
    source: str,
    created: str,
    cache_repository: str | None,
    moving: bool | None = None,
) -> Plan:
    """Decide the version, tags and cache of one variant's build.

    ``tag`` is the git tag being built ("" for branches); ``moving`` None means: move the moving
    tag when this release is the newest release tag in ``git_tags``. ``cache_repository`` None
    means ``REGISTRY/IMAGE-buildcache`` when a registry is set, "" means no registry cache."""
    if variant not in VARIANTS:
        raise ReleaseError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    repository = image_repository(registry, image)
    if tag:
        version = str(check_release_tag(tag, project_version))
        if moving is None:
            moving = is_newest_release(parse_release_tag(tag), [*git_tags, tag])
    else:
        if moving:
            raise ReleaseError("moving tags belong to releases: this build has no release tag")
        version = dev_version(project_version, revision)
        moving = False
    if cache_repository is None:
        cache_repository = f"{repository}-buildcache" if registry.strip("/") else ""
    return Plan(
        variant=variant,
        version=version,
        release=bool(tag),
        moving=moving,
        repository=repository,
        tags=image_tags(repository, version, variant, moving=moving),
        revision=revision,
        source=source,
        created=created,
        cache_repository=cache_repository,
    )


def output_for(variant: str, *, publish: bool) -> str:
    """How a variant's build leaves the builder on CI: ``load`` (into the engine, to be smoke-tested
    and pushed by ``push``), ``push`` (straight to the registry) or ``cacheonly`` (built, verified
    and cached, nowhere else)."""
    if variant in LOADED_VARIANTS:
        return "load"
    return "push" if publish else "cacheonly"


def bake_command(
    plan: Plan, *, bake_files: Sequence[str], output: str, cache_write: bool, builder: str = ""
) -> list[str]:
    """The ``docker buildx bake`` argv for one variant. No secret is ever an argument: the HF token
    reaches the bake file's ``hf_token`` secret through the environment variable HF_TOKEN."""
    if output not in OUTPUTS:
        raise ReleaseError(f"unknown output {output!r}: expected one of {', '.join(OUTPUTS)}")
    target = plan.variant
    command = ["docker", "buildx", "bake"]
    if builder:
        command += ["--builder", builder]
    for path in bake_files:
        command += ["-f", path]
    command += ["--progress", "plain"]
    # The script's tags replace the bake file's (same scheme; a test keeps them equal).
    for ref in plan.tags:
        command += ["--set", f"{target}.tags={ref}"]
    if plan.source:
        command += ["--set", f"{target}.labels.{LABEL_SOURCE}={plan.source}"]
    for ref in plan.cache_from:
        command += ["--set", f"{target}.cache-from=type=registry,ref={ref}"]
    if cache_write and plan.cache_to:
        command += ["--set", f"{target}.cache-to={plan.cache_to}"]
    if output == "load":
        command.append("--load")
    elif output == "push":
        command.append("--push")
    else:
        command += ["--set", f"{target}.output=type=cacheonly"]
    command.append(target)
    return command


def bake_environment(environ: Mapping[str, str], plan: Plan, registry: str, image: str) -> dict[str, str]:
    """The bake's environment: the caller's (HF_TOKEN stays there, for the secret) plus the bake
    variables of this plan, so a stray VERSION or IMAGE in CI's environment cannot leak in."""
    env = dict(environ)
    env.update(
        REGISTRY=registry.rstrip("/"),
        IMAGE=image,
        VERSION=plan.version,
        GIT_REVISION=plan.revision,
        CREATED=plan.created,
        MOVING_TAGS="true" if plan.moving else "false",
    )
    return env


def label_problems(labels: Mapping[str, str] | None, expected: Mapping[str, str]) -> list[str]:
    """Each expected OCI label that is missing or different, as a sentence."""
    labels = labels or {}
    problems = []
    for key, want in expected.items():
        have = labels.get(key)
        if have is None:
            problems.append(f"label {key} is missing (expected {want!r})")
        elif have != want:
            problems.append(f"label {key} is {have!r}, expected {want!r}")
    return problems


def platform_manifest(index: Mapping[str, Any], platform: tuple[str, str] = PLATFORM) -> str:
    """The digest of the image manifest for ``platform`` in an image index (attestation manifests,
    platform unknown/unknown, are skipped)."""
    for descriptor in index.get("manifests", []):
        p = descriptor.get("platform") or {}
        if (p.get("os"), p.get("architecture")) == platform:
            return str(descriptor["digest"])
    found = [
        f"{(d.get('platform') or {}).get('os')}/{(d.get('platform') or {}).get('architecture')}"
        for d in index.get("manifests", [])
    ]
    raise ReleaseError(f"the index has no {'/'.join(platform)} image (it has: {', '.join(found) or 'none'})")


def split_reference(ref: str) -> tuple[str, str]:
    """(repository, tag) of ``REPO:TAG``; a registry port is not a tag."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon <= slash:
        raise ReleaseError(f"{ref!r} has no tag")
    return ref[:colon], ref[colon + 1 :]


# --------------------------------------------------------------------------------------------
# Smoke test of a worker image (the check is pure; running it is at the edge)
# --------------------------------------------------------------------------------------------

SMOKE_SIZE = 64


def smoke_workflow() -> dict[str, Any]:
    """A graph that needs no model: ComfyUI makes a 64x64 image and saves it."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": SMOKE_SIZE, "height": SMOKE_SIZE, "batch_size": 1, "color": 0x2266AA},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "release-smoke"}},
    }


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its IHDR chunk; raises ReleaseError for anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        raise ReleaseError("the output is not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def smoke_problems(result: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``/runsync`` answer to the smoke workflow ([] when it is right)."""
    if result.get("status") != "COMPLETED":
        return [f"the job ended {result.get('status')!r}: {json.dumps(result)[:2000]}"]
    output = result.get("output") or {}
    if output.get("status") != "success":
        return [f"the job's output is not a success: {json.dumps(output)[:2000]}"]
    problems = []
    if "models" not in output:
        problems.append("the output has no model report ('models')")
    pngs = [item for item in output.get("outputs", []) if str(item.get("filename", "")).endswith(".png")]
    if len(pngs) != 1:
        return [*problems, f"expected one PNG output, got {len(pngs)}: {json.dumps(output)[:2000]}"]
    item = pngs[0]
    if "data" not in item:
        return [*problems, f"the PNG was not returned inline: {sorted(item)}"]
    data = base64.b64decode(item["data"])
    try:
        size = png_size(data)
    except ReleaseError as exc:
        return [*problems, str(exc)]
    if size != (SMOKE_SIZE, SMOKE_SIZE):
        problems.append(f"the PNG is {size[0]}x{size[1]}, expected {SMOKE_SIZE}x{SMOKE_SIZE}")
    if item.get("size") != len(data):
        problems.append(f"the output says size {item.get('size')}, the data has {len(data)} bytes")
    if "sha256" in item and item["sha256"] != hashlib.sha256(data).hexdigest():
        problems.append("the output's sha256 does not match its data")
    return problems


# --------------------------------------------------------------------------------------------
# The edges: git, docker, the registry
# --------------------------------------------------------------------------------------------


def _run(
    command: Sequence[str], *, input_text: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), input=input_text, env=dict(env) if env is not None else None,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ReleaseError(f"`{command[0]}` is not installed (or not on PATH)") from None


def _docker(*args: str, input_text: str | None = None) -> str:
    result = _run(["docker", *args], input_text=input_text)
    if result.returncode != 0:
        raise ReleaseError(f"`docker {' '.join(args[:3])} ...` failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _git(root: Path, *args: str) -> str | None:
    try:
        result = _run(["git", "-C", str(root), *args])
    except ReleaseError:  # no git: the caller falls back or says what to pass instead
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def read_project_version(pyproject: Path) -> str:
    """``[project] version`` from pyproject.toml."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"cannot read the project version from {pyproject}: {exc}") from None
    version = data.get("project", {}).get("version")
    if not isinstance(version, str):
        raise ReleaseError(f"{pyproject} has no [project] version")
    return version


def local_image(ref: str) -> dict[str, Any] | None:
    """`docker image inspect` of a local image, or None when there is none by that name."""
    result = _run(["docker", "image", "inspect", ref])
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


@dataclass(frozen=True)
class RemoteImage:
    """What the registry holds under one reference (for one platform)."""

    reference: str
    digest: str  # what the tag points at (an index or a manifest)
    config_digest: str  # the image id
    labels: dict[str, str] = field(default_factory=dict)


def remote_image(ref: str) -> RemoteImage:
    """Read ``ref`` from its registry with ``docker buildx imagetools`` (Docker's credentials)."""
    repository, _ = split_reference(ref)
    top = json.loads(_docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"))
    raw = json.loads(_docker("buildx", "imagetools", "inspect", ref, "--raw"))
    manifest_digest = top["digest"]
    if "manifests" in raw:
        manifest_digest = platform_manifest(raw)
        raw = json.loads(
            _docker("buildx", "imagetools", "inspect", f"{repository}@{manifest_digest}", "--raw")
        )
    image = json.loads(
        _docker(
            "buildx",
            "imagetools",
            "inspect",
            f"{repository}@{manifest_digest}",
            "--format",
            "{{json .Image}}",
        )
    )
    labels = (image.get("config") or {}).get("Labels") or {}
    return RemoteImage(ref, str(top["digest"]), str(raw["config"]["digest"]), dict(labels))


def verify_published(plan: Plan, expect_image_id: str | None = None) -> list[RemoteImage]:
    """Check every tag of ``plan`` in the registry: the release's labels, one image behind all of
    them, and (when given) the very image that was tested. Raises ReleaseError listing problems."""
    images = [remote_image(ref) for ref in plan.tags]
    problems = []
    for image in images:
        problems += [f"{image.reference}: {p}" for p in label_problems(image.labels, plan.expected_labels)]
    if len({image.config_digest for image in images}) > 1:
        problems.append(
            "the tags point at different images: "
            + ", ".join(f"{i.reference} -> {i.config_digest}" for i in images)
        )
    if expect_image_id and images[0].config_digest != expect_image_id:
        problems.append(
            f"the registry holds image {images[0].config_digest}, the tested image is {expect_image_id}"
        )
    if problems:
        raise ReleaseError("the published images are not the release:\n  " + "\n  ".join(problems))
    return images


def push_loaded(plan: Plan) -> str:
    """Push the tags of a loaded (and tested) image; returns its image id.

    Refuses, before pushing anything, when a tag is missing locally, the tags name different
    images, or the image's labels are not this release's."""
    inspected = {ref: local_image(ref) for ref in plan.tags}
    missing = [ref for ref, info in inspected.items() if info is None]
    if missing:
        raise ReleaseError(
            f"no local image {', '.join(missing)}: build it first (`release.py build --variant {plan.variant}`)"
        )
    ids = {ref: info["Id"] for ref, info in inspected.items() if info is not None}
    if len(set(ids.values())) > 1:
        raise ReleaseError(
            "the local tags name different images: " + ", ".join(f"{r} -> {i}" for r, i in ids.items())
        )
    image_id = ids[plan.primary]
    labels = (inspected[plan.primary] or {}).get("Config", {}).get("Labels")
    problems = label_problems(labels, plan.expected_labels)
    if problems:
        raise ReleaseError(f"{plan.primary} is not this release's image:\n  " + "\n  ".join(problems))
    for ref in plan.tags:
        print(f"pushing {ref}", flush=True)
        _docker("push", "--quiet", ref)
    return image_id


def docker_login(registry: str, username: str, password: str) -> None:
    """`docker login` with the password on stdin: never an argument, never printed."""
    if not username or not password:
        raise ReleaseError(
            "REGISTRY_USERNAME and REGISTRY_PASSWORD must both be set (CircleCI context "
            "'ltx2-registry', docs/release.md) to log in to the registry"
        )
    host = registry_host(registry)
    result = _run(["docker", "login", "--username", username, "--password-stdin", host], input_text=password)
    if result.returncode != 0:
        # Docker's message names the registry, never the password; scrub it anyway.
        message = result.stderr.replace(password, "***").strip()
        raise ReleaseError(f"docker login to {host} failed: {message[-2000:]}")
    print(f"logged in to {host} as {username}")


def run_smoke(
    image: str, variant: str, *, timeout: float, env: Mapping[str, str], keep_logs: Path | None = None
) -> dict[str, Any]:
    """Start ``image`` as a local-API worker on CPU (port on 127.0.0.1 only), wait until it
    answers, send the smoke job, and check the answer. Returns the job result; raises ReleaseError
    with the container's log tail when anything is wrong."""
    info = local_image(image)
    if info is None:
        raise ReleaseError(f"no local image {image}: build it with --load first")
    problems = label_problems(info.get("Config", {}).get("Labels"), {LABEL_VARIANT: variant})
    if problems:
        raise ReleaseError(f"{image} is not the {variant} image: {'; '.join(problems)}")
    environment = {"SERVE_API": "true", "COMFYUI_CPU": "true", **env}
    command = ["run", "-d", "-p", "127.0.0.1::8000"]
    for key, value in environment.items():
        command += ["-e", f"{key}={value}"]
    container = _docker(*command, image).strip()
    try:
        base_url = _published_url(container)
        deadline = time.monotonic() + timeout
        _wait_ready(container, base_url, deadline)
        request = urllib.request.Request(
            f"{base_url}/runsync",
            data=json.dumps({"input": {"workflow": smoke_workflow()}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as response:
                result = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ReleaseError(f"the smoke job got no answer: {exc}") from None
        problems = smoke_problems(result)
        if problems:
            raise ReleaseError("the smoke job went wrong:\n  " + "\n  ".join(problems))
        return result
    except ReleaseError as exc:
        logs = _run(["docker", "logs", "--tail", "200", container])
        raise ReleaseError(
            f"{exc}\n--- last lines of the worker's log ---\n{logs.stdout}{logs.stderr}"
        ) from None
    finally:
        if keep_logs is not None:
            logs = _run(["docker", "logs", container])
            keep_logs.write_text(logs.stdout + logs.stderr)
        _run(["docker", "rm", "-f", container])


def _published_url(container: str) -> str:
    for line in _docker("port", container, "8000/tcp").splitlines():
        if line.startswith("127.0.0.1:"):
            return f"http://{line.strip()}"
    raise ReleaseError(f"container {container[:12]} has no port 8000 published on 127.0.0.1")


def _wait_ready(container: str, base_url: str, deadline: float) -> None:
    """The SDK's local API answers once the worker has started (models located, ComfyUI up)."""
    while time.monotonic() < deadline:
        state = _docker("inspect", "-f", "{{.State.Status}}", container).strip()
        if state in ("exited", "dead"):
            raise ReleaseError(f"the worker exited during startup (state {state})")
        try:
            with urllib.request.urlopen(f"{base_url}/", timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise ReleaseError("the worker's local API did not answer before the timeout")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _flag(text: str) -> bool:
    """``--flag``, ``--flag true`` or ``--flag false`` (how CircleCI renders a boolean parameter)."""
    if text in ("true", "false"):
        return text == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _common_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument(
        "--tag", default=environ.get("CIRCLE_TAG", ""),
        help="the git tag being released (default $CIRCLE_TAG); empty: not a release",
    )  # fmt: skip
    parser.add_argument("--registry", default=environ.get("REGISTRY", ""), help="default $REGISTRY")
    parser.add_argument("--image", default=environ.get("IMAGE") or DEFAULT_IMAGE, help="default $IMAGE")
    parser.add_argument(
        "--revision", default=environ.get("CIRCLE_SHA1", ""), help="default $CIRCLE_SHA1, else HEAD"
    )
    parser.add_argument(
        "--source", default=None,
        help="org.opencontainers.image.source (default from $CIRCLE_REPOSITORY_URL, else git remote origin)",
    )  # fmt: skip
    parser.add_argument("--created", default="", help="RFC 3339 build time (default: the commit's time)")
    parser.add_argument(
        "--moving", choices=("auto", "yes", "no"), default="auto",
        help="move the <variant> tag: auto = when this is the newest release tag in git",
    )  # fmt: skip
    parser.add_argument(
        "--cache-repository", default=environ.get("CACHE_REPOSITORY"),
        help="registry cache repository (default $CACHE_REPOSITORY, else REGISTRY/IMAGE-buildcache; 'none': no cache)",
    )  # fmt: skip
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout (default: this script's)")


def plan_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Plan:
    root: Path = args.root
    project_version = read_project_version(root / "pyproject.toml")
    revision = args.revision or _git(root, "rev-parse", "HEAD") or ""
    if not revision:
        raise ReleaseError("no revision: pass --revision or run inside a git checkout")
    if args.source is not None:
        source = source_url(args.source)
    else:
        remote = environ.get("CIRCLE_REPOSITORY_URL") or _git(root, "remote", "get-url", "origin") or ""
        try:
            source = source_url(remote)
        except ReleaseError as exc:
            # A clone of a local path (as in a CI sandbox) has no browsable source: no label then.
            print(f"release.py: {exc}; the image gets no source label (pass --source)", file=sys.stderr)
            source = ""
    created = args.created
    if not created:
        epoch = _git(root, "show", "-s", "--format=%ct", revision)
        created = rfc3339_utc(int(epoch) if epoch else int(time.time()))
    git_tags = (_git(root, "tag", "--list", "v*") or "").split()
    moving = {"auto": None, "yes": True, "no": False}[args.moving]
    cache = args.cache_repository
    cache_repository = "" if cache == "none" else (cache or None)
    return make_plan(
        variant=args.variant, project_version=project_version, tag=args.tag, revision=revision,
        git_tags=git_tags, registry=args.registry, image=args.image, source=source, created=created,
        cache_repository=cache_repository, moving=moving,
    )  # fmt: skip


def cmd_check_tag(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    project_version = read_project_version(args.root / "pyproject.toml")
    if not args.tag:
        print(f"not a release build (no tag); project version {project_version}")
        return 0
    print(check_release_tag(args.tag, project_version))
    return 0


def cmd_tags(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    print("\n".join(plan_from_args(args, environ).tags))
    return 0


def cmd_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plan = plan_from_args(args, environ)
    if args.json:
        print(
            json.dumps({**asdict(plan), "cache_from": plan.cache_from, "cache_to": plan.cache_to}, indent=2)
        )
        return 0
    print(f"variant      {plan.variant}")
    print(f"version      {plan.version} ({'release' if plan.release else 'not a release: never pushed'})")
    print(f"tags         {' '.join(plan.tags)}")
    print(f"moving tag   {'moves' if plan.moving else 'stays'}")
    print(f"revision     {plan.revision}")
    print(f"source       {plan.source or '(none)'}")
    print(f"created      {plan.created}")
    print(f"cache        {plan.cache_repository or '(none)'}")
    return 0


def cmd_build(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plan = plan_from_args(args, environ)
    if args.publish and not plan.release:
        raise ReleaseError("--publish needs a release tag (vX.Y.Z): pull requests and branches never push")
    if args.publish and not args.registry.strip("/"):
        raise ReleaseError("--publish needs REGISTRY: nowhere to publish to")
    output = args.output or output_for(plan.variant, publish=args.publish)
    if output == "push" and not args.publish:
        raise ReleaseError("--output push needs --publish (and a release tag)")
    bake_files = [str(args.root / "docker-bake.hcl"), *args.bake_file]
    command = bake_command(
        plan, bake_files=bake_files, output=output, cache_write=args.cache_write, builder=args.builder
    )
    print("+ " + " ".join(command), flush=True)
    if args.dry_run:
        return 0
    env = bake_environment(environ, plan, args.registry, args.image)
    return subprocess.run(command, cwd=args.root, env=env, check=False).returncode


def cmd_smoke(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    image = args.ref or plan_from_args(args, environ).primary
    malformed = [item for item in args.env if "=" not in item]
    if malformed:
        raise ReleaseError(f"--env takes KEY=VALUE, got {', '.join(malformed)}")
    env = dict(item.split("=", 1) for item in args.env)
    started = time.monotonic()
    run_smoke(image, args.variant, timeout=args.timeout, env=env, keep_logs=args.logs)
    print(f"smoke test passed: {image} served a job ({time.monotonic() - started:.1f} s)")
    return 0


def cmd_push(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plan = plan_from_args(args, environ)
    if not plan.release:
        raise ReleaseError("push publishes releases only: this build has no release tag (vX.Y.Z)")
    if not args.registry.strip("/"):
        raise ReleaseError("push needs REGISTRY: nowhere to publish to")
    image_id = push_loaded(plan)
    for image in verify_published(plan, expect_image_id=image_id):
        print(f"published {image.reference} ({image.digest})")
    return 0


def cmd_verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plan = plan_from_args(args, environ)
    for image in verify_published(plan, expect_image_id=args.expect_image_id):
        print(f"verified {image.reference} ({image.digest}, image {image.config_digest})")
    return 0


def cmd_login(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    docker_login(args.registry, environ.get("REGISTRY_USERNAME", ""), environ.get("REGISTRY_PASSWORD", ""))
    return 0


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-tag", help="check a release tag against pyproject's version; print the version")
    p.add_argument("tag", nargs="?", default=environ.get("CIRCLE_TAG", ""), help="default $CIRCLE_TAG")
    p.add_argument("--root", type=Path, default=REPO_ROOT)
    p.set_defaults(func=cmd_check_tag)

    p = sub.add_parser("tags", help="print the image references one variant gets")
    _common_options(p, environ)
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("plan", help="print what a variant's build will be: version, tags, cache")
    _common_options(p, environ)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("build", help="docker buildx bake one variant with the plan's tags, labels and cache")
    _common_options(p, environ)
    p.add_argument(
        "--publish", type=_flag, nargs="?", const=True, default=False, metavar="true|false",
        help="a release: variants that are not loaded are pushed by the build",
    )  # fmt: skip
    p.add_argument(
        "--cache-write", type=_flag, nargs="?", const=True, default=False, metavar="true|false",
        help="export the registry cache (mode=max)",
    )  # fmt: skip
    p.add_argument(
        "--output",
        choices=OUTPUTS,
        default="",
        help="override the policy (slim: load, others: push|cacheonly)",
    )
    p.add_argument(
        "--bake-file", action="append", default=[], help="another bake file, after docker-bake.hcl"
    )
    p.add_argument(
        "--builder",
        default=environ.get("BUILDX_BUILDER", ""),
        help="buildx builder (default $BUILDX_BUILDER)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the bake command only")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("smoke", help="run a loaded image on CPU and send it one job that needs no model")
    _common_options(p, environ)
    p.add_argument("--ref", default="", help="the image to run (default: the plan's REPO:VERSION-variant)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for startup and the job")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra worker environment")
    p.add_argument("--logs", type=Path, default=None, help="write the worker's whole log here")
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("push", help="push the loaded image's release tags, then verify them in the registry")
    _common_options(p, environ)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("verify", help="read the release tags back from the registry and check their labels")
    _common_options(p, environ)
    p.add_argument("--expect-image-id", default=None, help="the image id (config digest) every tag must be")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("login", help="docker login with $REGISTRY_USERNAME / $REGISTRY_PASSWORD (on stdin)")
    p.add_argument("--registry", default=environ.get("REGISTRY", ""), help="default $REGISTRY")
    p.set_defaults(func=cmd_login)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = build_parser(environ).parse_args(argv)
    try:
        return int(args.func(args, environ))
    except ReleaseError as exc:
        print(f"release.py {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
