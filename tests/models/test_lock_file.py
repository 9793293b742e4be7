"""The shipped models.lock.yaml and the loader's round trip and validation."""

from __future__ import annotations

import pytest

from handler.models.lock import DEFAULT_LOCK_PATH, LockError, dump_yaml, load_document, load_lock, parse_lock
from handler.models.lockedit import apply_updates

SHIPPED = DEFAULT_LOCK_PATH.read_text(encoding="utf-8")


def test_the_round_trip_keeps_the_shipped_lock_byte_for_byte():
    # `lock` and trust-on-first-use rewrite the file through this; `null` must stay `null`.
    assert dump_yaml(load_document(SHIPPED)) == SHIPPED


def test_values_not_known_from_a_source_stay_unknown():
    # From the project's facts: no source gives the canny IC-LoRA's size or hash, or Lotus's hash,
    # or any repo-head commit; only the upscaler's upload commit is known in full.
    lock = load_lock()
    canny = lock.entries["ltx-2-19b-ic-lora-canny-control"]
    assert (canny.sha256, canny.size, canny.revision) == (None, None, None)
    assert lock.entries["lotus-depth-d-v1-1"].sha256 is None
    assert [e.id for e in lock if e.revision is not None] == ["ltx-2-spatial-upscaler-x2-1.0"]
    licence = lock.licenses["ltx-2-community-license"]
    assert (licence.revision, licence.sha256, licence.size) == (None, None, None)


def test_known_values_are_the_ones_the_sources_give():
    lock = load_lock()
    expected = {
        "ltx-2-19b-dev-fp8": ("8a67e709b6d1adc061cb19921887a5c15754178199e45801a04310e9b522760d", 27078716018),
        "ltx-2-19b-dev": ("4a51e70aad660e55648d6f0b8af15c8acaaffc06e2a4ae7c7cb01ede701981a8", 43285058242),
        "gemma-3-12b-it-fp4-mixed": ("aaca463d11e6d8d2a4bdb0d6299214c15ef78a3f73e0ef8113d5a9d0219b3f6d", 9447702218),
        "ltx-2-19b-distilled-lora-384": ("2718f89582003cbb5b616635f18c091641917a3f3e5a2f2ad0fb3d5fdd153534", 7674558424),
        "ltx-2-spatial-upscaler-x2-1.0": ("3160fabf8edf0bc4dd8de40353a180813b111ce586b655ad54af9a7b8c6736de", 995765578),
        "ltx-2-19b-ic-lora-depth-control": ("16abe99187f46990e60fbd68cc2c23fe77af024b2701963fddba2d37324ed088", 654465256),
        "lotus-depth-d-v1-1": (None, 1735197352),
        "sd-vae-ft-mse-840000-ema-pruned": ("735e4c3a447a3255760d7f86845f09f937809baa529c17370d83e4c3758f3c75", 334641190),
    }  # fmt: skip
    assert {e.id: (e.sha256, e.size) for e in lock if e.id in expected} == expected
    assert (
        lock.entries["ltx-2-spatial-upscaler-x2-1.0"].revision == "9ea259460bc345ec09a5e648117f8f62587576a0"
    )


def test_both_sets_ship_the_ltx2_licence():
    lock = load_lock()
    for name in ("bf16", "fp8"):
        assert [f.id for f in lock.set_licenses(name)] == ["ltx-2-community-license"]


def test_a_licence_path_outside_the_repo_is_rejected():
    bad = SHIPPED.replace("    path: LICENSE  #", "    path: ../LICENSE  #")
    with pytest.raises(
        LockError, match=r"licenses\.ltx-2-community-license\.path: expected a file path inside the repo"
    ):
        parse_lock(bad)


@pytest.mark.parametrize("bad_name", ["sub/x.safetensors", "..", "a\\b"])
def test_entry_and_licence_file_names_must_be_bare(bad_name: str):
    bad = SHIPPED.replace("    filename: LTX-2-Community-License.txt", f"    filename: '{bad_name}'").replace(
        "    filename: ltx-2-19b-dev-fp8.safetensors", f"    filename: '{bad_name}'"
    )
    with pytest.raises(LockError) as caught:
        parse_lock(bad)
    message = str(caught.value)
    assert (
        f"licenses.ltx-2-community-license.filename: expected a bare file name, got {bad_name!r}" in message
    )
    assert f"entries.ltx-2-19b-dev-fp8.filename: expected a bare file name, got {bad_name!r}" in message


def test_two_licences_with_one_file_name_are_rejected():
    document = load_document(SHIPPED)
    document["licenses"]["other"] = dict(document["licenses"]["ltx-2-community-license"])
    with pytest.raises(
        LockError, match=r"licenses\.other\.filename: 'LTX-2-Community-License.txt' is already used"
    ):
        parse_lock(dump_yaml(document))


def test_an_all_digit_hash_written_unquoted_is_caught_not_misread():
    text = SHIPPED.replace(
        "sha256: 735e4c3a447a3255760d7f86845f09f937809baa529c17370d83e4c3758f3c75", "sha256: " + "1" * 64
    )
    with pytest.raises(
        LockError, match=r"sd-vae-ft-mse-840000-ema-pruned\.sha256: expected 64 lowercase hex"
    ):
        parse_lock(text)


def test_edits_keep_comments_and_quote_values_that_need_it():
    new = apply_updates(
        SHIPPED,
        {"ltx-2-19b-ic-lora-canny-control": {"sha256": "1" * 64, "size": 654465256, "revision": "2" * 40}},
        "[hub] test",
    )
    lock = parse_lock(new)
    canny = lock.entries["ltx-2-19b-ic-lora-canny-control"]
    assert (canny.sha256, canny.size, canny.revision) == ("1" * 64, 654465256, "2" * 40)
    changed = [line for line in new.splitlines() if line not in SHIPPED.splitlines()]
    assert len(changed) == 3 and all(line.endswith("  # [hub] test") for line in changed)
    assert len(new.splitlines()) == len(SHIPPED.splitlines())


def test_an_edit_that_would_break_the_lock_is_refused():
    with pytest.raises(LockError, match="expected a positive byte count"):
        apply_updates(SHIPPED, {"lotus-depth-d-v1-1": {"size": -1}}, "x")
