"""`python -m handler lock` against the Hub double: resolve, rewrite, check."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from handler.cli import main
from handler.models.lock import load_lock
from handler.models.lockcmd import Resolved, resolve_items, updates_for
from tests.models.conftest import STANDARD_ENTRIES, Spec, licence, pinned, write_lock

FP8, LORA, ENCODER = STANDARD_ENTRIES
GATED = Spec("gated", "acme/gated", "gated.safetensors")
UNKNOWN = {"revision": None, "sha256": None, "size": None}


@pytest.fixture
def endpoint(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    return hub.endpoint


def _unknown_lock(tmp_path, hub):
    return write_lock(
        tmp_path / "models.lock.yaml",
        [(FP8, UNKNOWN), (LORA, UNKNOWN), (ENCODER, UNKNOWN), (GATED, UNKNOWN)],
        licenses=[licence(hub, **UNKNOWN)],
    )


def test_lock_fills_what_the_hub_knows_and_keeps_comments(tmp_path, hub, endpoint, capsys):
    lock_path = _unknown_lock(tmp_path, hub)
    before = lock_path.read_text()

    assert main(["lock", "--lock", str(lock_path)]) == 0

    lock = load_lock(lock_path)
    for spec in (FP8, LORA, ENCODER, GATED):
        entry, served = lock.entries[spec.id], hub.file(spec.repo, spec.path)
        assert (entry.revision, entry.sha256, entry.size) == (
            hub.commit(spec.repo),
            served.sha256,
            served.size,
        )
    assert lock.entries["gated"].gated is True and lock.entries["ltx-fp8"].gated is False
    text = hub.file("acme/ltx", "LICENSE")
    lic = lock.licenses["test-licence"]
    assert (lic.sha256, lic.size, lic.revision) == (text.sha256, text.size, hub.commit("acme/ltx"))
    after = lock_path.read_text()
    assert after.startswith("# A lock written by the tests; this comment must survive edits.")
    assert len(after.splitlines()) == len(before.splitlines())
    assert "ltx-fp8 sha note" not in after  # the comment of a changed value now names its source
    assert "[hub] resolved by `python -m handler lock`" in after
    assert "updated 5 of 5 entries" in capsys.readouterr().out
    # One model-info and one paths-info request per repo; plain git files are read to hash them.
    routes = [(r.route, r.repo) for r in hub.requests]
    assert routes.count(("model_info", "acme/ltx")) == 1 and routes.count(("paths_info", "acme/ltx")) == 1
    assert [r.path for r in hub.requests if r.route == "resolve"] == ["LICENSE"]

    hub.clear_requests()
    assert main(["lock", "--lock", str(lock_path)]) == 0
    assert lock_path.read_text() == after
    assert "5 entries match the Hub" in capsys.readouterr().out


def test_check_prints_a_diff_and_fails_when_the_hub_disagrees(tmp_path, hub, endpoint, capsys):
    lock_path = write_lock(
        tmp_path / "models.lock.yaml", [pinned(hub, FP8, revision=hub.commit(FP8.repo), gated=False)]
    )
    assert main(["lock", "--check", "--lock", str(lock_path)]) == 0
    capsys.readouterr()

    hub.push(FP8.repo, {FP8.path: {"size": 2000, "seed": "new upload"}})
    upgraded = hub.file(FP8.repo, FP8.path)
    before = lock_path.read_text()
    assert main(["lock", "--check", "--lock", str(lock_path)]) == 0  # pinned: the old commit still matches
    capsys.readouterr()

    assert main(["lock", "--check", "--upgrade", "--lock", str(lock_path)]) == 1
    captured = capsys.readouterr()
    assert f'+    sha256: "{upgraded.sha256}"  # [hub]' in captured.out  # the file's quoting style is kept
    assert "+    size: 2000" in captured.out
    assert captured.out.count("\n-    ") == 3  # revision, sha256, size
    assert "1 of 1 entries differ from the Hub" in captured.err
    assert lock_path.read_text() == before  # --check writes nothing


def test_check_fails_for_unknown_values(tmp_path, hub, endpoint, capsys):
    lock_path = _unknown_lock(tmp_path, hub)
    assert main(["lock", "--check", "--lock", str(lock_path)]) == 1
    assert "-    sha256: null" in capsys.readouterr().out


def test_entry_selects_what_is_resolved(tmp_path, hub, endpoint):
    lock_path = _unknown_lock(tmp_path, hub)
    assert main(["lock", "--lock", str(lock_path), "--entry", "ltx-lora"]) == 0
    lock = load_lock(lock_path)
    assert lock.entries["ltx-lora"].sha256 == hub.file(LORA.repo, LORA.path).sha256
    assert lock.entries["ltx-fp8"].sha256 is None and lock.licenses["test-licence"].sha256 is None
    assert {r.repo for r in hub.requests} == {"acme/ltx"}

    assert main(["lock", "--lock", str(lock_path), "--entry", "encoder", "test-licence"]) == 0
    lock = load_lock(lock_path)
    assert lock.entries["encoder"].sha256 is not None and lock.licenses["test-licence"].sha256 is not None
    assert lock.entries["ltx-fp8"].sha256 is None


def test_unknown_entry_ids_are_an_error(tmp_path, hub, endpoint, capsys):
    lock_path = _unknown_lock(tmp_path, hub)
    assert main(["lock", "--lock", str(lock_path), "--entry", "nope"]) == 2
    assert "no entry or licence 'nope'" in capsys.readouterr().err


def test_a_path_missing_on_the_hub_is_reported_and_nothing_written(tmp_path, hub, endpoint, capsys):
    missing = Spec("missing", "acme/ltx", "renamed.safetensors")
    lock_path = write_lock(tmp_path / "models.lock.yaml", [(FP8, UNKNOWN), (missing, UNKNOWN)])
    before = lock_path.read_text()

    assert main(["lock", "--lock", str(lock_path)]) == 2

    err = capsys.readouterr().err
    assert "missing: 'renamed.safetensors' does not exist in acme/ltx at" in err
    assert lock_path.read_text() == before


def test_a_missing_repo_or_revision_is_reported(tmp_path, hub, endpoint, capsys):
    lock_path = write_lock(
        tmp_path / "models.lock.yaml",
        [
            (Spec("ghost", "acme/ghost", "x.safetensors"), UNKNOWN),
            (FP8, {"revision": "f" * 40, "sha256": None, "size": None}),
        ],
    )
    assert main(["lock", "--lock", str(lock_path)]) == 2
    err = capsys.readouterr().err
    assert "ghost: repository acme/ghost not found" in err
    assert f"ltx-fp8: revision '{'f' * 40}' does not exist in acme/ltx" in err


def test_resolve_and_update_functions(hub):
    lock_path_items = [
        pinned(hub, LORA)[0],
    ]
    del lock_path_items  # the functions take lock items: build one through the loader below
    api = HfApi(endpoint=hub.endpoint, token=False)
    from handler.models.lock import LockEntry

    entry = LockEntry(
        id="l", role="lora", repo=LORA.repo, path=LORA.path, revision=None, sha256=None, size=None,
        folder="loras", filename="l.safetensors", license="x",
    )  # fmt: skip
    resolved, errors = resolve_items([entry], api)
    served = hub.file(LORA.repo, LORA.path)
    assert errors == []
    assert resolved == {"l": Resolved(hub.commit(LORA.repo), served.sha256, served.size, False)}
    assert updates_for([entry], resolved) == {
        "l": {"revision": hub.commit(LORA.repo), "sha256": served.sha256, "size": served.size, "gated": False}
    }


def test_lock_and_fetch_explain_a_hub_error_in_the_same_words(tmp_path, hub, endpoint, capsys):
    ghost = Spec("ghost", "acme/ghost", "x.safetensors")
    lock_path = write_lock(
        tmp_path / "models.lock.yaml", [(ghost, {"revision": None, "sha256": "0" * 64, "size": 10})]
    )
    explained = "repository acme/ghost not found (HTTP 401); if it is private, pass a token (HF_TOKEN or --token-file)"

    assert main(["lock", "--lock", str(lock_path), "--check"]) == 2
    assert f"ghost: {explained}" in capsys.readouterr().err
    dest = tmp_path / "models"
    assert (
        main(["fetch", "--set", "test", "--dest", str(dest), "--lock", str(lock_path), "--no-progress"]) == 1
    )
    assert f"acme/ghost/x.safetensors@main: {explained}" in capsys.readouterr().err
