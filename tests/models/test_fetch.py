"""fetch_entries against the local Hub double: downloads, verification, faults, cache reuse."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from handler.models import fetch as fetch_module
from handler.models.fetch import FetchError, fetch_entries
from handler.models.lock import load_lock
from tests.doubles.hf import Fault, HfDouble
from tests.models.conftest import (
    KIB,
    STANDARD_ENTRIES,
    Spec,
    files_under,
    licence,
    pinned,
    tmpfs,
    write_lock,
)

pytestmark = pytest.mark.usefixtures("fast_retries")

FP8, LORA, ENCODER = STANDARD_ENTRIES
GATED = Spec("gated", "acme/gated", "gated.safetensors")


def _lock(tmp_path: Path, hub: HfDouble, *entries, licenses=()) -> Path:
    return write_lock(tmp_path / "models.lock.yaml", list(entries), licenses=list(licenses))


def _items(lock_path: Path):
    lock = load_lock(lock_path)
    return [*lock.set_entries("test"), *lock.set_licenses("test")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_downloads_a_set_with_its_licence_verified_and_leaves_nothing_else(tmp_path, hub):
    lock_path = _lock(
        tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA), pinned(hub, ENCODER), licenses=[licence(hub)]
    )
    dest = tmp_path / "models"

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, token="hf_other_token")

    assert [o.action for o in outcomes] == ["downloaded"] * 4
    assert files_under(dest) == [
        "checkpoints/ltx-fp8.safetensors",
        "licenses/LTX-Test-License.txt",
        "loras/ltx-lora.safetensors",
        "text_encoders/encoder.safetensors",
    ]
    for outcome, (repo, path) in zip(
        outcomes,
        [(FP8.repo, FP8.path), (LORA.repo, LORA.path), (ENCODER.repo, ENCODER.path), ("acme/ltx", "LICENSE")],
        strict=True,
    ):
        served = hub.file(repo, path)
        assert outcome.path.read_bytes() == served.read()
        assert (outcome.sha256, outcome.size) == (served.sha256, served.size)
    # One metadata request and one transfer per file; the token never went to the CDN.
    requests = hub.requests
    assert sorted(r.path for r in requests if r.method == "HEAD") == sorted(
        [FP8.path, LORA.path, ENCODER.path, "LICENSE"]
    )
    assert len(hub.body_requests()) == 4
    cdn = [r for r in requests if r.server == "cdn"]
    assert len(cdn) == 3 and not any(r.authorized for r in cdn)
    assert all(r.authorized for r in requests if r.server == "hub")


def test_second_run_finds_everything_present_without_any_request(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), licenses=[licence(hub)])
    dest = tmp_path / "models"
    fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    hub.clear_requests()

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    assert [(o.action, o.sha256) for o in outcomes] == [("present", None), ("present", None)]
    assert hub.requests == []


def test_verify_present_rehashes_and_replaces_a_damaged_file(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA))
    dest = tmp_path / "models"
    fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    damaged = dest / "checkpoints/ltx-fp8.safetensors"
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0x01
    damaged.write_bytes(bytes(data))  # same size: only a hash finds it
    (dest / "loras/ltx-lora.safetensors").write_bytes(b"short")  # wrong size: found without hashing
    hub.clear_requests()

    quick = fetch_entries(_items(lock_path)[:1], dest, endpoint=hub.endpoint)
    assert quick[0].action == "present"  # size-only check at startup does not hash 27 GB

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, verify_present=True)

    assert [o.action for o in outcomes] == ["downloaded", "downloaded"]
    assert _sha(damaged) == hub.file(FP8.repo, FP8.path).sha256
    assert files_under(dest) == ["checkpoints/ltx-fp8.safetensors", "loras/ltx-lora.safetensors"]


def test_verify_present_for_named_entries_hashes_only_those(tmp_path, hub, monkeypatch):
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA))
    dest = tmp_path / "models"
    fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    for name in ("checkpoints/ltx-fp8.safetensors", "loras/ltx-lora.safetensors"):
        path = dest / name
        path.write_bytes(b"\0" * path.stat().st_size)  # both damaged, same size
    hub.clear_requests()
    hashed = []

    def counting_sha256(path, **kwargs):
        hashed.append(Path(path).name)
        return real_sha256(path, **kwargs)

    real_sha256 = fetch_module.sha256_file
    monkeypatch.setattr(fetch_module, "sha256_file", counting_sha256)
    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, verify_present=[LORA.id])

    assert [(o.id, o.action) for o in outcomes] == [(FP8.id, "present"), (LORA.id, "downloaded")]
    assert hashed == ["ltx-lora.safetensors"]  # once, though it is looked at before and under the lease
    assert outcomes[0].sha256 is None  # not named: kept for its size, not hashed
    assert _sha(dest / "loras/ltx-lora.safetensors") == hub.file(LORA.repo, LORA.path).sha256
    assert [(r.repo, r.path) for r in hub.body_requests()] == [(LORA.repo, LORA.path)]


def test_resumes_with_a_range_request_after_the_connection_drops(tmp_path, hub):
    served = hub.file(FP8.repo, FP8.path)
    cut_at = 700 * KIB + 11
    hub.add_fault(FP8.repo, FP8.path, Fault("cut", at=cut_at))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert outcomes[0].action == "downloaded" and outcomes[0].sha256 == served.sha256
    transfers = hub.body_requests(FP8.repo, FP8.path)
    assert [t.range for t in transfers] == [None, f"bytes={cut_at}-"]
    assert sum(t.bytes_sent for t in transfers) == served.size  # nothing fetched twice


def test_a_later_run_resumes_the_partial_file_an_interrupted_run_left(tmp_path, hub, monkeypatch):
    served = hub.file(FP8.repo, FP8.path)
    cut_at = 1000 * KIB
    hub.add_fault(FP8.repo, FP8.path, Fault("cut", at=cut_at))
    monkeypatch.setattr(fetch_module, "RETRY_ATTEMPTS", 0)
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))
    dest = tmp_path / "models"

    with pytest.raises(FetchError, match=r"kept and the next run resumes") as failed:
        fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    assert "acme/ltx/ltx-fp8.safetensors@main" in str(failed.value)
    leftovers = files_under(dest)
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial")  # kept for resuming; no lease left
    assert (dest / leftovers[0]).stat().st_size == cut_at

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    assert outcomes[0].action == "downloaded" and outcomes[0].sha256 == served.sha256
    assert hub.body_requests(FP8.repo, FP8.path)[-1].range == f"bytes={cut_at}-"
    assert files_under(dest) == ["checkpoints/ltx-fp8.safetensors"]


def test_a_corrupted_byte_fails_with_both_digests_and_leaves_nothing(tmp_path, hub):
    served = hub.file(FP8.repo, FP8.path)
    hub.add_fault(FP8.repo, FP8.path, Fault("corrupt", at=12345, times=-1))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))
    dest = tmp_path / "models"

    with pytest.raises(FetchError) as failed:
        fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    data = bytearray(served.read())
    data[12345] ^= 0xFF
    message = str(failed.value)
    assert f"expected {served.sha256}" in message
    assert f"got {hashlib.sha256(bytes(data)).hexdigest()}" in message
    assert "checkpoints/ltx-fp8.safetensors" in message and "acme/ltx/ltx-fp8.safetensors@main" in message
    assert files_under(dest) == []


def test_an_upstream_reupload_fails_on_the_metadata_request_before_any_download(tmp_path, hub):
    old = hub.file(FP8.repo, FP8.path)
    old_commit = hub.commit(FP8.repo)
    hub.push(FP8.repo, {FP8.path: {"size": 1536 * KIB + 9, "seed": "re-uploaded"}})
    new = hub.file(FP8.repo, FP8.path)
    lock_path = _lock(tmp_path, hub, (FP8, {"revision": None, "sha256": old.sha256, "size": old.size}))
    dest = tmp_path / "models"

    with pytest.raises(FetchError, match="re-uploaded upstream") as failed:
        fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    assert new.sha256 in str(failed.value) and old.sha256 in str(failed.value)
    assert [r.method for r in hub.requests] == ["HEAD"]  # one request, no bytes spent
    assert files_under(dest) == []

    # Pinned to the commit the lock was made from, the old file is still served.
    pinned_lock = _lock(
        tmp_path, hub, (FP8, {"revision": old_commit, "sha256": old.sha256, "size": old.size})
    )
    outcomes = fetch_entries(_items(pinned_lock), dest, endpoint=hub.endpoint)
    assert outcomes[0].sha256 == old.sha256


def test_server_errors_are_retried_with_backoff(tmp_path, hub):
    hub.add_fault(FP8.repo, FP8.path, Fault("status", status=503, times=2))
    hub.add_fault(LORA.repo, LORA.path, Fault("status", status=502, on="head", times=1))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA))

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert [o.action for o in outcomes] == ["downloaded", "downloaded"]
    statuses = [r.status for r in hub.requests if r.path == FP8.path and r.server == "cdn"]
    assert statuses == [503, 503, 200]
    heads = [r.status for r in hub.requests if r.path == LORA.path and r.method == "HEAD"]
    assert heads == [502, 302]


def test_persistent_server_errors_give_up_with_a_clear_message(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(fetch_module, "RETRY_ATTEMPTS", 2)
    hub.add_fault(FP8.repo, FP8.path, Fault("status", status=500, times=-1))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))

    with pytest.raises(FetchError, match=r"gave up after 2 retries: HTTP 500"):
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)
    assert len([r for r in hub.requests if r.server == "cdn"]) == 3


def test_a_stalled_transfer_times_out_and_resumes(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(fetch_module, "READ_TIMEOUT_SECONDS", 0.3)
    hub.add_fault(FP8.repo, FP8.path, Fault("stall", at=512 * KIB, seconds=1.5))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert outcomes[0].sha256 == hub.file(FP8.repo, FP8.path).sha256
    ranges = [r.range for r in hub.body_requests(FP8.repo, FP8.path)]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")


def test_a_missing_file_is_a_404_naming_the_entry(tmp_path, hub):
    missing = Spec("missing", "acme/ltx", "no-such.safetensors")
    lock_path = _lock(tmp_path, hub, (missing, {"revision": None, "sha256": "0" * 64, "size": 10}))

    with pytest.raises(FetchError) as failed:
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    message = str(failed.value)
    assert "'no-such.safetensors' does not exist in acme/ltx at main (HTTP 404)" in message
    assert "lock entry 'missing'" in message


def test_a_missing_repo_says_so(tmp_path, hub):
    missing = Spec("nope", "acme/nope", "x.safetensors")
    lock_path = _lock(tmp_path, hub, (missing, {"revision": None, "sha256": "0" * 64, "size": 10}))

    with pytest.raises(FetchError, match=r"repository acme/nope not found \(HTTP 401\).*pass a token"):
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)


def test_gated_repo_without_a_token_or_access_explains_what_to_do(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, GATED))
    dest = tmp_path / "models"

    with pytest.raises(FetchError) as no_token:
        fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    assert "gated and no token was given (HTTP 401)" in str(no_token.value)
    assert f"{hub.endpoint}/acme/gated" in str(no_token.value)

    with pytest.raises(FetchError) as no_access:
        fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, token="hf_other_token")
    assert "token has no access to it (HTTP 403)" in str(no_access.value)
    assert "hf_other_token" not in str(no_access.value)
    assert files_under(dest) == []

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, token="hf_granted_token")
    assert outcomes[0].action == "downloaded"


def test_hf_token_from_the_environment_is_used(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_granted_token")
    lock_path = _lock(tmp_path, hub, pinned(hub, GATED))

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert outcomes[0].action == "downloaded"


def test_hf_endpoint_from_the_environment_is_used(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models")

    assert outcomes[0].action == "downloaded"


def test_unknown_sha256_is_refused_without_trust_on_first_use(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA, sha256=None, size=None))

    with pytest.raises(
        FetchError, match=r"(?s)no sha256 for these files.*ltx-lora.*--trust-on-first-use"
    ) as failed:
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert failed.value.failures == [("ltx-lora", "no sha256 in the lock")]
    assert hub.requests == []  # refused before anything was requested


def test_trust_on_first_use_checks_against_the_hub_and_records_in_the_lock(tmp_path, hub):
    lock_path = _lock(
        tmp_path,
        hub,
        pinned(hub, FP8),
        pinned(hub, LORA, sha256=None, size=None),
        licenses=[licence(hub, sha256=None, size=None)],
    )
    before = lock_path.read_text()

    outcomes = fetch_entries(
        _items(lock_path),
        tmp_path / "models",
        endpoint=hub.endpoint,
        trust_on_first_use=True,
        lock_path=lock_path,
    )

    lora, text = hub.file(LORA.repo, LORA.path), hub.file("acme/ltx", "LICENSE")
    assert [o.sha256 for o in outcomes[1:]] == [lora.sha256, text.sha256]
    lock = load_lock(lock_path)
    commit = hub.commit("acme/ltx")
    assert (lock.entries["ltx-lora"].sha256, lock.entries["ltx-lora"].size) == (lora.sha256, lora.size)
    assert lock.entries["ltx-lora"].revision == commit
    assert (lock.licenses["test-licence"].sha256, lock.licenses["test-licence"].revision) == (
        text.sha256,
        commit,
    )
    # The entry that was already pinned is untouched, and so is every comment but the new ones.
    assert lock.entries["ltx-fp8"].revision is None
    after = lock_path.read_text()
    assert "# A lock written by the tests; this comment must survive edits." in after
    assert "ltx-fp8 sha note" in after and "ltx-lora sha note" not in after
    assert after.count("[tofu] recorded by fetch --trust-on-first-use") == 6  # revision, sha256, size x 2
    assert len(after.splitlines()) == len(before.splitlines())


def test_trust_on_first_use_still_rejects_bytes_that_differ_from_what_the_hub_advertises(tmp_path, hub):
    hub.add_fault(LORA.repo, LORA.path, Fault("corrupt", at=5, times=-1))
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA, sha256=None, size=None))
    before = lock_path.read_text()

    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch_entries(
            _items(lock_path),
            tmp_path / "models",
            endpoint=hub.endpoint,
            trust_on_first_use=True,
            lock_path=lock_path,
        )
    assert lock_path.read_text() == before


def test_reuses_a_prefilled_huggingface_cache_without_downloading(tmp_path, hub):
    from huggingface_hub import hf_hub_download

    cache = tmp_path / "hf-cache"
    for spec in (FP8, LORA):
        hf_hub_download(spec.repo, spec.path, cache_dir=cache, endpoint=hub.endpoint, token=False)
    hf_hub_download("acme/ltx", "LICENSE", cache_dir=cache, endpoint=hub.endpoint, token=False)
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8), pinned(hub, LORA), licenses=[licence(hub)])
    hub.clear_requests()
    dest = tmp_path / "models"

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, hf_cache=cache)

    assert [o.action for o in outcomes] == ["reused-cache"] * 3
    assert hub.requests == []  # not even a metadata request: the lock's sha256 identifies the blob
    assert files_under(dest) == [
        "checkpoints/ltx-fp8.safetensors",
        "licenses/LTX-Test-License.txt",
        "loras/ltx-lora.safetensors",
    ]
    fp8 = hub.file(FP8.repo, FP8.path)
    blob = cache / "models--acme--ltx" / "blobs" / fp8.sha256
    assert (
        dest / "checkpoints/ltx-fp8.safetensors"
    ).stat().st_ino == blob.stat().st_ino  # linked, not copied
    assert outcomes[0].sha256 == fp8.sha256


def test_the_default_cache_comes_from_hf_home(tmp_path, hub, hf_env):
    from huggingface_hub import hf_hub_download

    hf_hub_download(LORA.repo, LORA.path, cache_dir=hf_env / "hub", endpoint=hub.endpoint, token=False)
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    hub.clear_requests()

    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert outcomes[0].action == "reused-cache" and hub.requests == []


def test_a_corrupt_cached_copy_is_ignored_and_the_file_downloaded(tmp_path, hub, caplog):
    from huggingface_hub import hf_hub_download

    cache = tmp_path / "hf-cache"
    cached = Path(hf_hub_download(LORA.repo, LORA.path, cache_dir=cache, endpoint=hub.endpoint, token=False))
    blob = cached.resolve()
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    dest = tmp_path / "models"

    with caplog.at_level(logging.WARNING, logger="handler.models.fetch"):
        outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint, hf_cache=cache)

    assert outcomes[0].action == "downloaded"
    assert "is not the expected file" in caplog.text
    assert _sha(dest / "loras/ltx-lora.safetensors") == hub.file(LORA.repo, LORA.path).sha256
    assert files_under(dest) == ["loras/ltx-lora.safetensors"]


def test_not_enough_space_is_refused_before_downloading(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))  # 1.5 MiB into a 1 MiB filesystem
    with tmpfs(tmp_path / "small", "1m") as dest:
        with pytest.raises(
            FetchError, match=r"not enough disk space for .*ltx-fp8.safetensors.*choose another --dest"
        ):
            fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
        assert files_under(dest) == []
        assert hub.body_requests() == []


def test_disk_full_mid_transfer_deletes_the_partial_file(tmp_path, hub):
    hub.add_fault(FP8.repo, FP8.path, Fault("hold", at=256 * KIB))
    lock_path = _lock(tmp_path, hub, pinned(hub, FP8))
    with tmpfs(tmp_path / "small", "2m") as dest:
        import threading

        errors: list[BaseException] = []

        def run() -> None:
            try:
                fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        assert hub.wait_held(FP8.repo, FP8.path)
        # Someone else fills the disk while the download is under way.
        filler = dest / "filler.bin"
        try:
            with open(filler, "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 64 * KIB)
        except OSError:
            pass
        hub.release(FP8.repo, FP8.path)
        worker.join(timeout=30)

        assert len(errors) == 1 and isinstance(errors[0], FetchError)
        message = str(errors[0])
        assert "no space left on the device" in message and "partial file was deleted" in message
        assert "checkpoints/ltx-fp8.safetensors" in message
        assert files_under(dest) == ["filler.bin"]


def test_failures_are_collected_and_other_files_still_arrive(tmp_path, hub):
    missing = Spec("missing", "acme/ltx", "no-such.safetensors", folder="loras", role="lora")
    lock_path = _lock(
        tmp_path, hub, pinned(hub, FP8), (missing, {"revision": None, "sha256": "1" * 64, "size": 5})
    )

    with pytest.raises(FetchError) as failed:
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert [i for i, _ in failed.value.failures] == ["missing"]
    assert [o.id for o in failed.value.outcomes] == ["ltx-fp8"]
    assert (tmp_path / "models/checkpoints/ltx-fp8.safetensors").is_file()


def test_progress_is_logged_as_lines_when_not_on_a_terminal(tmp_path, hub, caplog):
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    with caplog.at_level(logging.INFO, logger="handler.models.fetch"):
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint, show_progress=False)
    assert "loras/ltx-lora.safetensors: 600.00 KiB" in caplog.text
    assert "sha256 verified" in caplog.text


def test_progress_bars_on_request(tmp_path, hub, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint, show_progress=True)
    err = capsys.readouterr().err
    assert "loras/ltx-lora.safetensors" in err and ("B/s" in err or "iB" in err)


def test_two_entries_for_one_destination_are_rejected(tmp_path, hub):
    twin = Spec("twin", "acme/ltx", "ltx-lora.safetensors", filename="ltx-fp8.safetensors")
    lock_items = _items(_lock(tmp_path, hub, pinned(hub, FP8)))
    other = _items(_lock(tmp_path, hub, pinned(hub, twin)))
    with pytest.raises(FetchError, match=r"both want the file checkpoints/ltx-fp8\.safetensors"):
        fetch_entries([*lock_items, *other], tmp_path / "models", endpoint=hub.endpoint)


def test_a_directory_in_the_way_is_reported(tmp_path, hub):
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    (tmp_path / "models/loras/ltx-lora.safetensors").mkdir(parents=True)
    with pytest.raises(FetchError, match="exists but is not a regular file"):
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)


def test_offline_mode_is_explained(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE is set"):
        fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)


def test_nothing_is_written_for_an_empty_list(tmp_path):
    assert fetch_entries([], tmp_path / "models") == []
    assert not (tmp_path / "models").exists()


def test_temp_files_are_hidden_and_name_their_content_and_owner():
    assert os.path.basename(fetch_module._temp_path(Path("/m/x.bin"), "a" * 16, "b" * 12)) == (
        ".x.bin." + "a" * 16 + "." + "b" * 12 + ".partial"
    )


def test_a_destination_that_cannot_be_written_is_reported_per_file(tmp_path, hub):
    import subprocess

    lock_path = _lock(tmp_path, hub, pinned(hub, LORA))
    with tmpfs(tmp_path / "readonly", "1m") as dest:
        (dest / "loras").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(dest)], check=True)
        with pytest.raises(
            FetchError, match=r"loras/ltx-lora.safetensors \(acme/ltx/ltx-lora.safetensors@main\).*Read-only"
        ):
            fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
