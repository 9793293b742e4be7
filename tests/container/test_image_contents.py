"""What the baked images are made of: no secret anywhere, `baked` minus `slim` is the model bytes,
shared layers are shared, the model layer is reproducible, and each image knows what it is."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.container import rig
from tests.container.conftest import BakedImages

pytestmark = [pytest.mark.container, pytest.mark.slow]

MODELS_DIR = "opt/worker/models"


@pytest.fixture(scope="module")
def saved(baked_images: BakedImages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`docker save` of the three variants: every layer, config and manifest, in one archive."""
    return rig.save_images(list(baked_images.refs.values()), tmp_path_factory.mktemp("saved") / "images.tar")


def _contains(path: Path, needle: bytes) -> bool:
    """Whether the file holds ``needle``, read in overlapping chunks (archives are large)."""
    overlap = len(needle) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


# --- the token ---------------------------------------------------------------------------------


def test_the_token_was_used_by_the_build(baked_images: BakedImages) -> None:
    # The rig's LoRA lives in a gated repo that only the token may read: the baked images have it.
    gated = [f for f in rig.MODEL_FILES if f.repo == rig.GATED_REPO]
    assert gated and all(f.entry_id in rig.SETS["bf16"].values() for f in gated)
    # The Hub answers a gated file only with the token; the CDN it redirects to never sees it.
    hub_requests = [r for r in baked_images.hub.requests() if r.server == "hub" and r.repo == rig.GATED_REPO]
    assert hub_requests and all(r.authorized and r.status < 400 for r in hub_requests)
    assert baked_images.hub.body_requests(rig.GATED_REPO)


def test_the_token_is_in_no_layer_history_or_config(baked_images: BakedImages, saved: Path) -> None:
    # docker save: every layer tar (uncompressed), every image config and the manifests.
    assert not _contains(saved, baked_images.token.encode()), "the token is inside `docker save` output"
    for ref in baked_images.refs.values():
        history = subprocess.run(
            ["docker", "history", "--no-trunc", "--format", "{{json .}}", ref],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert history.strip() and baked_images.token not in history, ref
        inspect = json.dumps(rig.inspect_image(ref))
        assert baked_images.token not in inspect, ref
        assert "HF_TOKEN" not in inspect, ref


def test_the_token_is_not_in_the_build_log(baked_images: BakedImages) -> None:
    assert "Downloading" in baked_images.log or "downloaded" in baked_images.log
    assert baked_images.token not in baked_images.log


# --- layers and sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["baked", "fp8"])
def test_baked_minus_slim_is_the_model_bytes(baked_images: BakedImages, saved: Path, variant: str) -> None:
    slim_layers = rig.layer_diff_ids(baked_images.refs["slim"])
    layers = rig.layer_diff_ids(baked_images.refs[variant])
    # Everything below the variant stage is shared with slim, layer for layer.
    assert layers[: len(slim_layers) - 1] == slim_layers[:-1]
    own = layers[len(slim_layers) - 1 :]
    assert len(own) == 2, "a baked variant adds its build info and one model layer, nothing else"
    build_info_layer, model_layer = own

    members = rig.layer_members(saved, {build_info_layer, model_layer})
    build_info_files = {m.name for m in members[build_info_layer] if m.isfile()}
    assert build_info_files == {"opt/worker/build-info.json"}

    model_set = rig.VARIANT_SETS[variant]
    assert model_set is not None
    files = {m.name: m for m in members[model_layer] if not m.isdir()}
    expected = {f"{MODELS_DIR}/{rel}": size for rel, size in rig.expected_model_tree(model_set).items()}
    assert {name: m.size for name, m in files.items()} == expected
    assert all(m.isfile() for m in files.values())
    assert {m.name for m in members[model_layer] if m.isdir()} <= {
        "opt", "opt/worker", MODELS_DIR, *(f"{MODELS_DIR}/{d}" for d in ("checkpoints", "text_encoders", "loras", "licenses"))
    }  # fmt: skip

    model_bytes = sum(expected.values())
    size_difference = (
        rig.inspect_image(baked_images.refs[variant])["Size"]
        - rig.inspect_image(baked_images.refs["slim"])["Size"]
    )
    build_info_growth = 256  # the baked build info names its set and directory; slim's says null
    assert model_bytes <= size_difference <= model_bytes + build_info_growth, (size_difference, model_bytes)


# --- what an image knows about itself ----------------------------------------------------------


def _build_info(ref: str) -> dict:
    result = rig.run_in_image(ref, "/opt/worker/build-info.json", entrypoint="cat")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("variant", rig.VARIANTS)
def test_build_info_and_labels(baked_images: BakedImages, variant: str) -> None:
    ref = baked_images.refs[variant]
    info = _build_info(ref)
    model_set = rig.VARIANT_SETS[variant]
    assert info["variant"] == variant
    assert info["model_set"] == model_set
    assert info["models_dir"] == ("/opt/worker/models" if model_set else None)
    assert info["models_verified"] is bool(model_set)
    assert info["lock_digest"] == hashlib.sha256(baked_images.setup.lock_path.read_bytes()).hexdigest()
    assert info["comfyui_commit"] == "rig-comfyui-double"
    assert info["version"] == rig.TEST_VERSION
    assert info["created"] == "2026-01-01T00:00:00Z"
    assert [n["name"] for n in info["custom_nodes"]] == ["rig-node"]

    config = rig.inspect_image(ref)["Config"]
    labels = config["Labels"]
    assert labels["ltx2.worker.variant"] == variant
    assert labels["ltx2.worker.model-set"] == (model_set or "none")
    assert labels["org.opencontainers.image.version"] == rig.TEST_VERSION
    assert labels["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"
    assert ("LTX-2-Community-License" in labels["org.opencontainers.image.licenses"]) is bool(model_set)
    assert config["Entrypoint"][-3:] == ["/opt/worker/venv/bin/python", "-m", "handler"]
    assert config["Cmd"] == ["serve"]


@pytest.mark.parametrize("variant", rig.VARIANTS)
def test_images_with_weights_carry_the_licence(baked_images: BakedImages, variant: str) -> None:
    result = rig.run_in_image(
        baked_images.refs[variant], f"/{MODELS_DIR}/{rig.LICENCE_RELPATH}", entrypoint="cat"
    )
    if rig.VARIANT_SETS[variant] is None:
        assert result.returncode != 0
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout == rig.LICENCE_TEXT


def test_custom_node_requirements_are_in_comfyuis_venv_only(baked_images: BakedImages) -> None:
    ref = baked_images.refs["slim"]
    probe = f"import {rig.NODE_REQUIREMENT}"
    assert rig.run_in_image(ref, "-c", probe, entrypoint="/opt/venv/bin/python").returncode == 0
    assert rig.run_in_image(ref, "-c", probe, entrypoint="/opt/worker/venv/bin/python").returncode != 0
    # The node is at its pinned commit, without git metadata.
    listing = rig.run_in_image(ref, "-A", "/opt/ComfyUI/custom_nodes/rig-node", entrypoint="ls")
    assert listing.returncode == 0, listing.stderr
    assert set(listing.stdout.split()) >= {"__init__.py", "requirements.txt"}
    assert ".git" not in listing.stdout.split()


def test_the_image_runs_the_handler_cli(baked_images: BakedImages) -> None:
    result = rig.run_in_image(baked_images.refs["slim"], "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "fetch" in result.stdout


# --- rebuilds (these re-tag the images, so they come after the tests that read `saved`) -----------


def test_the_model_layer_is_reproducible(baked_images: BakedImages, tmp_path: Path) -> None:
    """Re-running the model download (cache bypassed) yields the same layer digest."""
    before = {v: rig.layer_diff_ids(baked_images.refs[v])[-1] for v in ("baked", "fp8")}
    no_cache = tmp_path / "no-cache-models.hcl"
    no_cache.write_text('target "_common" {\n  no-cache-filter = ["models-bf16", "models-fp8"]\n}\n')
    downloads_before = len(baked_images.hub.body_requests())
    rig.bake(baked_images.setup, ["baked", "fp8"], "-f", str(no_cache), token=baked_images.token)
    assert len(baked_images.hub.body_requests()) > downloads_before, "the models were not fetched again"
    after = {v: rig.layer_diff_ids(baked_images.refs[v])[-1] for v in ("baked", "fp8")}
    assert after == before


def test_an_hf_cache_context_is_reused_and_makes_the_same_layer(
    baked_images: BakedImages, tmp_path: Path
) -> None:
    """HF_CACHE: files already on the build machine are verified and reused, not downloaded,
    and the model layer is byte-identical to the downloaded one."""
    downloaded = rig.layer_diff_ids(baked_images.refs["fp8"])[-1]
    cache = tmp_path / "hub"
    rig.write_hf_cache(cache, rig.set_files("fp8"), "89abcdef" * 5, licence=True)
    variables = tmp_path / "hf-cache.hcl"
    rig.write_bake_override(variables, {"HF_CACHE": str(cache)})
    baked_images.hub.clear_requests()

    rig.bake(
        baked_images.setup,
        ["fp8"],
        "-f",
        str(variables),
        "--allow",
        f"fs.read={cache}",
        token=baked_images.token,
    )

    assert baked_images.hub.body_requests() == []
    assert rig.layer_diff_ids(baked_images.refs["fp8"])[-1] == downloaded


def executions(log: str, stage: str) -> dict[str, int]:
    """Per build step of ``stage`` ("os 2/2", ...): how many vertices ran it (not CACHED) in the bake."""
    names: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        match = re.match(rf"^#(\d+) \[\S+ {re.escape(stage)} (\d+/\d+)\]", line)
        if match:
            names.setdefault(match.group(1), match.group(2))
        elif re.match(r"^#\d+ CACHED$", line):
            cached.add(line.split()[0][1:])
    counts: dict[str, int] = {}
    for vertex, step in names.items():
        counts[step] = counts.get(step, 0) + (vertex not in cached)
    return counts


def test_shared_stages_are_built_once_per_bake(baked_images: BakedImages, tmp_path: Path) -> None:
    """Bypassing the cache for the shared stages, one bake of three targets runs each step once."""
    no_cache = tmp_path / "no-cache-shared.hcl"
    no_cache.write_text('target "_common" {\n  no-cache-filter = ["base", "comfy"]\n}\n')

    result = rig.bake(baked_images.setup, rig.VARIANTS, "-f", str(no_cache), token=baked_images.token)

    for stage in ("base", "comfy", "runtime"):
        counts = executions(result.log, stage)
        assert counts and all(n == 1 for n in counts.values()), (stage, counts)
