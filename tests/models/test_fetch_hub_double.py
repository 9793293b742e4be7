"""The Hub double answers huggingface_hub's own calls the way the Hub does.

These tests use the real client (model_info, get_paths_info, get_hf_file_metadata,
hf_hub_download): if the double drifted from what the client expects, they fail here first.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.doubles.hf import Fault, generated_bytes, git_blob_oid, start_subprocess
from tests.models.conftest import HUB_SPEC, KIB


def test_model_info_and_paths_info_have_the_hubs_shape(hub):
    api = HfApi(endpoint=hub.endpoint, token=False)
    info = api.model_info("acme/ltx", files_metadata=True)
    weights = hub.file("acme/ltx", "ltx-fp8.safetensors")

    assert info.sha == hub.commit("acme/ltx") and info.gated is False
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["ltx-fp8.safetensors"].lfs.sha256 == weights.sha256
    assert siblings["ltx-fp8.safetensors"].size == weights.size
    assert (
        siblings["LICENSE"].lfs is None
        and siblings["LICENSE"].blob_id == hub.file("acme/ltx", "LICENSE").git_oid
    )
    assert api.model_info("acme/gated").gated == "manual"  # metadata of gated repos is public

    files = api.get_paths_info("acme/ltx", ["ltx-fp8.safetensors", "LICENSE", "absent"], revision=info.sha)
    assert [(f.path, f.size, f.lfs.sha256 if f.lfs else None) for f in files] == [
        ("ltx-fp8.safetensors", weights.size, weights.sha256),
        ("LICENSE", hub.file("acme/ltx", "LICENSE").size, None),
    ]


def test_file_metadata_carries_commit_sha256_and_size(hub):
    url = hf_hub_url("acme/ltx", "ltx-fp8.safetensors", endpoint=hub.endpoint)
    meta = get_hf_file_metadata(url, token=False)
    weights = hub.file("acme/ltx", "ltx-fp8.safetensors")
    assert (meta.commit_hash, meta.etag, meta.size) == (hub.commit("acme/ltx"), weights.sha256, weights.size)
    assert meta.location.startswith(hub.cdn_url + "/lfs/")  # LFS goes to another host, like the Hub's CDN

    plain = get_hf_file_metadata(hf_hub_url("acme/ltx", "LICENSE", endpoint=hub.endpoint), token=False)
    text = b"LTX test licence\nUse it kindly.\n"
    assert plain.etag == git_blob_oid(text) == hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    assert plain.size == len(text)


def test_hf_hub_download_works_against_it(hub, tmp_path):
    path = hf_hub_download(
        "acme/ltx", "ltx-lora.safetensors", cache_dir=tmp_path, endpoint=hub.endpoint, token=False
    )
    assert Path(path).read_bytes() == generated_bytes("ltx-lora", 600 * KIB + 3)
    assert hub.body_requests()[0].authorized is False


def test_errors_map_to_huggingface_hub_error_classes(hub, tmp_path):
    def download(repo: str, path: str, token: str | bool = False, revision: str | None = None) -> None:
        hf_hub_download(repo, path, cache_dir=tmp_path, endpoint=hub.endpoint, token=token, revision=revision)

    with pytest.raises(GatedRepoError) as unauthenticated:
        download("acme/gated", "gated.safetensors")
    assert unauthenticated.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as forbidden:
        download("acme/gated", "gated.safetensors", token="hf_other_token")
    assert forbidden.value.response.status_code == 403
    download("acme/gated", "gated.safetensors", token="hf_granted_token")
    with pytest.raises(RemoteEntryNotFoundError):
        download("acme/ltx", "absent.bin")
    with pytest.raises(RevisionNotFoundError):
        download("acme/ltx", "LICENSE", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        download("acme/none", "x")


def test_ranges_and_faults_on_the_cdn(hub):
    meta = get_hf_file_metadata(
        hf_hub_url("acme/ltx", "ltx-lora.safetensors", endpoint=hub.endpoint), token=False
    )
    data = hub.file("acme/ltx", "ltx-lora.safetensors").read()

    partial = httpx2.get(meta.location, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert httpx2.get(meta.location, headers={"Range": f"bytes={len(data)}-"}).status_code == 416

    hub.add_fault("acme/ltx", "ltx-lora.safetensors", Fault("status", status=503))
    assert httpx2.get(meta.location).status_code == 503
    hub.add_fault("acme/ltx", "ltx-lora.safetensors", Fault("corrupt", at=3))
    corrupted = httpx2.get(meta.location).content
    assert corrupted[3] == data[3] ^ 0xFF and corrupted[4:] == data[4:]
    hub.add_fault("acme/ltx", "ltx-lora.safetensors", Fault("cut", at=1000))
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(meta.location)
    assert httpx2.get(meta.location).content == data  # faults are used up


def test_a_reupload_moves_main_and_keeps_old_commits(hub):
    old_commit = hub.commit("acme/ltx")
    old = hub.file("acme/ltx", "ltx-lora.safetensors")
    new_commit = hub.push("acme/ltx", {"ltx-lora.safetensors": {"text": "new"}})
    assert hub.commit("acme/ltx") == new_commit != old_commit
    assert hub.file("acme/ltx", "ltx-lora.safetensors", old_commit) == old
    api = HfApi(endpoint=hub.endpoint, token=False)
    assert api.model_info("acme/ltx", revision=old_commit).sha == old_commit


def test_runs_as_a_subprocess_with_control_routes(tmp_path, hf_env):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(HUB_SPEC))  # JSON is YAML too
    with start_subprocess(spec_path, tmp_path / "root") as remote:
        files = remote.files()
        assert files["acme/ltx"]["files"]["LICENSE"]["lfs"] is False
        url = hf_hub_url("acme/ltx", "ltx-lora.safetensors", endpoint=remote.endpoint)
        meta = get_hf_file_metadata(url, token=False)
        assert meta.etag == files["acme/ltx"]["files"]["ltx-lora.safetensors"]["sha256"]
        remote.add_fault("acme/ltx", "ltx-lora.safetensors", kind="status", status=500)
        assert httpx2.get(meta.location).status_code == 500
        assert httpx2.get(meta.location).status_code == 200
        assert [r.status for r in remote.body_requests()] == [200]
        assert [r.route for r in remote.requests()] == ["resolve", "lfs", "lfs"]


def test_command_line_help_runs():
    done = subprocess.run([sys.executable, "-m", "tests.doubles.hf", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0 and "--spec" in done.stdout
