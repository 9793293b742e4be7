"""Several fetchers, one destination: each file is downloaded once, and nothing is left behind.

The protocol only uses exclusive create and rename (see handler/models/lease.py), so what is
tested here on a local disk holds on a network volume too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handler.models import lease as lease_module
from handler.models.fetch import fetch_entries
from handler.models.lease import Lease, Owner, lease_path
from handler.models.lock import load_lock
from tests.doubles.hf import Fault, HfDouble
from tests.models.conftest import KIB, STANDARD_ENTRIES, files_under, licence, pinned, write_lock

pytestmark = pytest.mark.usefixtures("fast_retries")

FP8, LORA, ENCODER = STANDARD_ENTRIES
REPO_ROOT = Path(__file__).resolve().parents[2]


def _lock(tmp_path: Path, hub: HfDouble) -> Path:
    return write_lock(
        tmp_path / "models.lock.yaml",
        [pinned(hub, FP8), pinned(hub, LORA), pinned(hub, ENCODER)],
        licenses=[licence(hub)],
    )


def _items(lock_path: Path):
    lock = load_lock(lock_path)
    return [*lock.set_entries("test"), *lock.set_licenses("test")]


def _cli(lock_path: Path, dest: Path, hub: HfDouble, home: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),
        "LOG_LEVEL": "INFO",
    }
    env.pop("HF_TOKEN", None)
    command = [sys.executable, "-m", "handler", "fetch", "--set", "test", "--dest", str(dest),
               "--lock", str(lock_path), "--json", "--no-progress"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_two_processes_fetching_into_one_directory_download_each_file_once(tmp_path, hub, hf_env):
    for spec in (FP8, LORA, ENCODER):  # slow enough that the two runs overlap
        hub.add_fault(spec.repo, spec.path, Fault("throttle", rate=512 * KIB, times=-1))
    lock_path = _lock(tmp_path, hub)
    dest = tmp_path / "volume" / "models"

    first, second = _cli(lock_path, dest, hub, hf_env), _cli(lock_path, dest, hub, hf_env)
    results = [p.communicate(timeout=120) for p in (first, second)]

    for process, (_, err) in zip((first, second), results, strict=True):
        assert process.returncode == 0, err
    actions: dict[str, list[str]] = {}
    for out, _ in results:
        for outcome in json.loads(out)["outcomes"]:
            actions.setdefault(outcome["id"], []).append(outcome["action"])
    assert sorted(actions) == ["encoder", "ltx-fp8", "ltx-lora", "test-licence"]
    for item, pair in actions.items():
        # One run downloads; the other waits for it (or finds it done, if it started late).
        assert sorted(pair)[0] == "downloaded" and sorted(pair)[1] in ("present", "waited"), (item, pair)
    assert sum(pair.count("waited") for pair in actions.values()) >= 3  # the runs did overlap
    for repo, path in [(s.repo, s.path) for s in (FP8, LORA, ENCODER)] + [("acme/ltx", "LICENSE")]:
        assert len(hub.body_requests(repo, path)) == 1, path
        assert (dest / _relpath(repo, path)).read_bytes() == hub.file(repo, path).read()
    assert files_under(dest) == [
        "checkpoints/ltx-fp8.safetensors",
        "licenses/LTX-Test-License.txt",
        "loras/ltx-lora.safetensors",
        "text_encoders/encoder.safetensors",
    ]


def _relpath(repo: str, path: str) -> str:
    return {
        FP8.path: "checkpoints/ltx-fp8.safetensors",
        LORA.path: "loras/ltx-lora.safetensors",
        ENCODER.path: "text_encoders/encoder.safetensors",
        "LICENSE": "licenses/LTX-Test-License.txt",
    }[path]


def test_threads_of_one_process_share_the_work_too(tmp_path, hub):
    for spec in (FP8, LORA):
        hub.add_fault(spec.repo, spec.path, Fault("throttle", rate=4096 * KIB, times=-1))
    lock_path = _lock(tmp_path, hub)
    dest = tmp_path / "models"
    results: list[list[str]] = []

    def run() -> None:
        results.append([o.action for o in fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 2
    assert len(hub.body_requests()) == 4  # three models and the licence, once each
    assert all(set(r) <= {"downloaded", "waited", "present"} for r in results)
    assert len(files_under(dest)) == 4


def test_a_killed_owner_is_taken_over_at_once_and_its_partial_file_resumed(tmp_path, hub, hf_env):
    served = hub.file(FP8.repo, FP8.path)
    hub.add_fault(FP8.repo, FP8.path, Fault("hold", at=700 * KIB))
    lock_path = write_lock(tmp_path / "models.lock.yaml", [pinned(hub, FP8)])
    dest = tmp_path / "models"
    owner = _cli(lock_path, dest, hub, hf_env)
    try:
        assert hub.wait_held(FP8.repo, FP8.path, timeout=30)
        time.sleep(0.2)  # let the owner write what it received
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        hub.release(FP8.repo, FP8.path)
    lease_file = lease_path(dest / "checkpoints/ltx-fp8.safetensors")
    assert lease_file.exists()  # the dead process could not clean up
    hub.clear_requests()

    started = time.monotonic()
    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    assert time.monotonic() - started < lease_module.STALE_AFTER_SECONDS / 4  # no waiting for staleness
    assert outcomes[0].action == "downloaded" and outcomes[0].sha256 == served.sha256
    transfer = hub.body_requests(FP8.repo, FP8.path)
    assert len(transfer) == 1 and transfer[0].range is not None and transfer[0].range != "bytes=0-"
    assert transfer[0].bytes_sent < served.size
    assert files_under(dest) == ["checkpoints/ltx-fp8.safetensors"]


def test_a_lease_nobody_renews_is_broken_after_the_stale_time(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(lease_module, "STALE_AFTER_SECONDS", 0.4)
    lock_path = write_lock(tmp_path / "models.lock.yaml", [pinned(hub, LORA)])
    final = tmp_path / "models/loras/ltx-lora.safetensors"
    final.parent.mkdir(parents=True)
    elsewhere = Owner(token="0123456789ab", host="another-worker", boot_id="x", pid_namespace="y", pid=1)
    assert Lease.try_acquire(final, elsewhere) is not None  # a worker on another machine that died

    started = time.monotonic()
    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)

    assert time.monotonic() - started >= 0.4
    assert outcomes[0].action == "downloaded"
    assert files_under(tmp_path / "models") == ["loras/ltx-lora.safetensors"]


def test_a_live_owner_is_waited_for_and_its_file_used(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(lease_module, "STALE_AFTER_SECONDS", 0.3)
    lock_path = write_lock(tmp_path / "models.lock.yaml", [pinned(hub, LORA)])
    final = tmp_path / "models/loras/ltx-lora.safetensors"
    final.parent.mkdir(parents=True)
    remote = Owner(token="ba9876543210", host="another-worker", boot_id="x", pid_namespace="y", pid=1)
    lease = Lease.try_acquire(final, remote)
    assert lease is not None

    def other_worker() -> None:
        # Heartbeats for longer than the stale time, then delivers the file the way fetch does.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            lease.heartbeat(force=True)
            time.sleep(0.05)
        temp = final.with_name(".delivery.tmp")
        temp.write_bytes(hub.file(LORA.repo, LORA.path).read())
        os.replace(temp, final)
        lease.release()

    worker = threading.Thread(target=other_worker)
    worker.start()
    outcomes = fetch_entries(_items(lock_path), tmp_path / "models", endpoint=hub.endpoint)
    worker.join()

    assert outcomes[0].action == "waited"
    assert outcomes[0].sha256 == hub.file(LORA.repo, LORA.path).sha256
    assert hub.requests == []


def test_leftovers_of_a_dead_run_next_to_a_finished_file_are_swept(tmp_path, hub, hf_env):
    lock_path = write_lock(tmp_path / "models.lock.yaml", [pinned(hub, LORA)])
    dest = tmp_path / "models"
    fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    final = dest / "loras/ltx-lora.safetensors"
    # A run that died mid-way (same machine, a pid that no longer exists) left its lease and temp file.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    ghost = Owner.me("c0ffee000000")
    ghost = Owner(ghost.token, ghost.host, ghost.boot_id, ghost.pid_namespace, int(dead.stdout))
    assert Lease.try_acquire(final, ghost) is not None
    final.with_name(f".{final.name}.{'a' * 16}.c0ffee000000.partial").write_bytes(b"half")

    outcomes = fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)

    assert outcomes[0].action == "present"
    assert files_under(dest) == ["loras/ltx-lora.safetensors"]


def test_a_lease_a_dead_run_left_next_to_a_finished_file_is_removed(tmp_path, hub):
    lock_path = write_lock(tmp_path / "models.lock.yaml", [pinned(hub, LORA)])
    dest = tmp_path / "models"
    fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)
    # Killed between its rename and its release: the file is complete, the lease is still there.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    me = Owner.me("deadbeef0000")
    ghost = Owner(me.token, me.host, me.boot_id, me.pid_namespace, int(dead.stdout))
    assert Lease.try_acquire(dest / "loras/ltx-lora.safetensors", ghost) is not None

    assert fetch_entries(_items(lock_path), dest, endpoint=hub.endpoint)[0].action == "present"
    assert files_under(dest) == ["loras/ltx-lora.safetensors"]


def test_a_broken_lease_makes_its_holder_stop(tmp_path):
    final = tmp_path / "file.bin"
    mine = Lease.try_acquire(final)
    assert mine is not None
    view = lease_module.look(final)
    assert view is not None and view.owner == mine.owner
    assert lease_module.break_stale(final, view)
    thief = Lease.try_acquire(final)
    assert thief is not None
    with pytest.raises(lease_module.LeaseLost):
        mine.heartbeat(force=True)
    mine.release()  # must not remove the new holder's lease
    assert lease_module.look(final).owner == thief.owner
    thief.release()
    assert lease_module.look(final) is None


def test_breaking_a_lease_that_was_replaced_meanwhile_puts_it_back(tmp_path):
    final = tmp_path / "file.bin"
    first = Lease.try_acquire(final)
    stale_view = lease_module.look(final)
    first.release()
    fresh = Lease.try_acquire(final)  # a new owner, a new inode

    assert lease_module.break_stale(final, stale_view) is False
    assert lease_module.look(final).owner == fresh.owner
    assert [p.name for p in tmp_path.iterdir()] == [lease_path(final).name]
