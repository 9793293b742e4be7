"""Publishing against a real registry (Debian's docker-registry on 127.0.0.1): the release script
builds a small image with the real docker-bake.hcl, pushes it with the tags it computes, and the
test pulls every tag back (after removing the local copies) and checks the OCI labels.

Both publishing paths CI uses are exercised: `push` of a loaded, tested image (slim) and the
bake's own `--push` (baked, fp8), each followed by `verify`, which reads the tags back through
`docker buildx imagetools` and refuses images that are not the release.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.release.conftest import LocalRegistry
from tests.release.script import SCRIPT, release

pytestmark = pytest.mark.container

REVISION = "5f0c3a9e1b7d2c4e6f8a0b1c3d5e7f9a1b2c3d4e"
REMOTE = "git@github.com:acme/ltx2-worker.git"
SOURCE = "https://github.com/acme/ltx2-worker"


def options(variant: str, registry: str, version: str, *, revision: str = REVISION) -> list[str]:
    return [
        "--variant", variant, "--registry", registry, "--tag", f"v{version}", "--revision", revision,
        "--source", REMOTE, "--created", "2027-01-02T03:04:05Z", "--moving", "yes",
        "--cache-repository", "none",
    ]  # fmt: skip


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The script as CI runs it: python3, standard library only."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args], capture_output=True, text=True, check=False, env=env
    )


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def labels_of(ref: str) -> dict[str, str]:
    return json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", ref))


def pull_back(refs: list[str]) -> dict[str, dict[str, str]]:
    """Remove the local copies, pull each reference from the registry, return its labels."""
    docker("image", "rm", *refs)
    for ref in refs:
        assert release.local_image(ref) is None, f"{ref} is still local"
    pulled = {}
    for ref in refs:
        docker("pull", "--quiet", ref)
        pulled[ref] = labels_of(ref)
    return pulled


def assert_release_labels(labels: dict[str, str], version: str, variant: str) -> None:
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == REVISION
    assert labels["org.opencontainers.image.source"] == SOURCE
    assert labels["ltx2.worker.variant"] == variant
    assert labels["org.opencontainers.image.created"] == "2027-01-02T03:04:05Z"


def test_a_tested_image_is_pushed_with_its_release_tags_and_pulled_back(
    namespace: str, probe_bake_file: Path, project_version: str
) -> None:
    common = options("slim", namespace, project_version)
    built = script("build", *common, "--publish", "--bake-file", str(probe_bake_file))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    tags = script("tags", *common).stdout.split()
    assert tags == [
        f"{namespace}/ltx2-runpod-worker:{project_version}-slim",
        f"{namespace}/ltx2-runpod-worker:slim",
    ]
    tested_id = docker("image", "inspect", "-f", "{{.Id}}", tags[0]).strip()

    pushed = script("push", *common)

    assert pushed.returncode == 0, pushed.stderr
    assert f"published {tags[0]}" in pushed.stdout and f"published {tags[1]}" in pushed.stdout
    for ref, labels in pull_back(tags).items():
        assert_release_labels(labels, project_version, "slim")
        assert docker("image", "inspect", "-f", "{{.Id}}", ref).strip() == tested_id


@pytest.mark.parametrize("variant", ["baked", "fp8"])
def test_a_variant_pushed_by_the_bake_is_verified_and_pulled_back(
    namespace: str, probe_bake_file: Path, project_version: str, variant: str
) -> None:
    common = options(variant, namespace, project_version)
    built = script("build", *common, "--publish", "--bake-file", str(probe_bake_file))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert " --push " in built.stdout.splitlines()[0]

    verified = script("verify", *common)

    assert verified.returncode == 0, verified.stderr
    tags = script("tags", *common).stdout.split()
    assert [line.split()[1] for line in verified.stdout.splitlines()] == tags
    for labels in pull_back(tags).values():
        assert_release_labels(labels, project_version, variant)


@pytest.mark.slow
def test_verify_refuses_images_that_are_not_the_release(
    registry: LocalRegistry, namespace: str, probe_bake_file: Path, project_version: str
) -> None:
    common = options("baked", namespace, project_version)
    assert script("build", *common, "--publish", "--bake-file", str(probe_bake_file)).returncode == 0

    other_revision = script("verify", *options("baked", namespace, project_version, revision="ab" * 20))
    assert other_revision.returncode == 1
    assert (
        f"label org.opencontainers.image.revision is '{REVISION}', expected '{'ab' * 20}'"
        in other_revision.stderr
    )

    # The moving tag now points at another image (the slim probe): caught by name.
    slim = options("slim", namespace, project_version)
    assert script("build", *slim, "--publish", "--bake-file", str(probe_bake_file)).returncode == 0
    moving = f"{namespace}/ltx2-runpod-worker:baked"
    docker("tag", f"{namespace}/ltx2-runpod-worker:{project_version}-slim", moving)
    docker("push", "--quiet", moving)
    mixed = script("verify", *common)
    assert mixed.returncode == 1
    assert f"{moving}: label ltx2.worker.variant is 'slim', expected 'baked'" in mixed.stderr
    assert "the tags point at different images" in mixed.stderr


def test_push_refuses_an_image_that_is_not_the_release_and_pushes_nothing(
    registry: LocalRegistry, namespace: str, probe_bake_file: Path, project_version: str
) -> None:
    built = script(
        "build",
        *options("slim", namespace, project_version),
        "--publish",
        "--bake-file",
        str(probe_bake_file),
    )
    assert built.returncode == 0, built.stderr

    refused = script("push", *options("slim", namespace, project_version, revision="cd" * 20))

    assert refused.returncode == 1
    assert "is not this release's image" in refused.stderr
    assert "label org.opencontainers.image.revision" in refused.stderr
    assert registry.tags(f"{namespace.split('/', 1)[1]}/ltx2-runpod-worker") == []


def test_push_needs_the_image_built_first(namespace: str, project_version: str) -> None:
    refused = script("push", *options("slim", namespace, project_version))
    assert refused.returncode == 1
    assert "no local image" in refused.stderr and "release.py build --variant slim" in refused.stderr


# --- an index with an attestation manifest, as a docker-container builder pushes it -------------------


def _upload_blob(registry: LocalRegistry, name: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(registry.url(f"/v2/{name}/blobs/uploads/"), method="POST", data=b"")
    with urllib.request.urlopen(start, timeout=10) as response:
        location = response.headers["Location"]
    separator = "&" if "?" in location else "?"
    url = location if location.startswith("http") else registry.url(location)
    put = urllib.request.Request(
        f"{url}{separator}digest={digest}", method="PUT", data=data,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    with urllib.request.urlopen(put, timeout=10):
        pass
    return {"digest": digest, "size": len(data)}


def _put_manifest(
    registry: LocalRegistry, name: str, reference: str, media_type: str, body: dict[str, Any]
) -> dict[str, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        registry.url(f"/v2/{name}/manifests/{reference}"),
        method="PUT",
        data=data,
        headers={"Content-Type": media_type},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def test_verify_reads_the_image_behind_an_index_with_attestations(
    registry: LocalRegistry, namespace: str, probe_bake_file: Path, project_version: str
) -> None:
    common = options("fp8", namespace, project_version)
    assert script("build", *common, "--publish", "--bake-file", str(probe_bake_file)).returncode == 0
    name = f"{namespace.split('/', 1)[1]}/ltx2-runpod-worker"
    image_manifest = json.loads(
        docker("buildx", "imagetools", "inspect", "--raw", f"{namespace}/ltx2-runpod-worker:fp8")
    )
    image_descriptor = json.loads(
        docker(
            "buildx",
            "imagetools",
            "inspect",
            f"{namespace}/ltx2-runpod-worker:fp8",
            "--format",
            "{{json .Manifest}}",
        )
    )
    # An in-toto attestation manifest, shaped like BuildKit's.
    statement = _upload_blob(
        registry, name, json.dumps({"_type": "https://in-toto.io/Statement/v0.1"}).encode()
    )
    config = _upload_blob(
        registry, name, b'{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}'
    )
    attestation = _put_manifest(
        registry, name, "attestation", "application/vnd.oci.image.manifest.v1+json",
        {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.in-toto+json", **statement}],
        },
    )  # fmt: skip
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {**image_descriptor, "platform": {"os": "linux", "architecture": "amd64"}},
            {
                **attestation,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": image_descriptor["digest"],
                },
            },
        ],
    }
    for tag in (f"{project_version}-fp8", "fp8"):
        _put_manifest(registry, name, tag, "application/vnd.oci.image.index.v1+json", index)

    verified = script("verify", *common, "--expect-image-id", image_manifest["config"]["digest"])

    assert verified.returncode == 0, verified.stderr
    assert f"image {image_manifest['config']['digest']}" in verified.stdout
    index_digest = "sha256:" + hashlib.sha256(json.dumps(index).encode()).hexdigest()
    assert f"({index_digest}," in verified.stdout  # the tag points at the index


# --- login --------------------------------------------------------------------------------------------


def test_login_hands_the_password_to_docker_on_stdin_only(registry: LocalRegistry, tmp_path: Path) -> None:
    password = "pw-" + os.urandom(8).hex()
    env = {
        "PATH": os.environ["PATH"],
        "DOCKER_CONFIG": str(tmp_path),  # this test's own credential store
        "REGISTRY": f"{registry.host}/acme",
        "REGISTRY_USERNAME": "ci-bot",
        "REGISTRY_PASSWORD": password,
    }

    result = script("login", env=env)

    assert result.returncode == 0, result.stderr
    assert f"logged in to {registry.host} as ci-bot" in result.stdout
    assert password not in result.stdout + result.stderr
    stored = json.loads((tmp_path / "config.json").read_text())["auths"][registry.host]["auth"]
    assert base64.b64decode(stored).decode() == f"ci-bot:{password}"
