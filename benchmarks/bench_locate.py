"""How long startup model location takes for the full lock: stat only, target <= 100 ms.

Run: ``uv run python benchmarks/bench_locate.py``. Builds, in a temporary directory, the places a
worker looks in (image, network volume in both layouts, RunPod's Hugging Face cache with
snapshot symlinks into blobs/) with sparse files of the lock's real sizes (no disk used), plus 200
of a user's own LoRAs on the volume, then times ``locate_models`` for every set of the shipped
models.lock.yaml in four layouts:

- ``baked``: every file in the image (the first place looked: one stat per file);
- ``volume``: every file on the volume in the Pod layout (earlier places stat'ed and missed);
- ``runpod-cache``: every file in RunPod's cache (all folder places missed first);
- ``missing``: nothing anywhere (every place looked at, the report names them all).

The baseline, measured in the same run, is one bare ``os.stat`` of each file where it was found
(the least any locator must do). Prints milliseconds (best of 20) and the ratio to the baseline.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handler.buildinfo import BuildInfo
from handler.models.locate import locate_models
from handler.models.lock import LockEntry, ModelLock, load_lock
from handler.settings import Settings

TARGET_MS = 100.0
RUNS = 20
USER_LORAS = 200
SLIM = BuildInfo(variant="slim")
UNKNOWN_SIZE = 1_000_000  # stand-in size for entries whose size the lock does not know


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def entries(lock: ModelLock) -> list[LockEntry]:
    return list(lock.entries.values())


def lay_out(root: Path, lock: ModelLock, layout: str) -> None:
    volume = root / "volume"
    volume.mkdir(parents=True, exist_ok=True)
    for entry in entries(lock):
        size = entry.size or UNKNOWN_SIZE
        if layout == "baked":
            sparse(root / "baked" / entry.relpath, size)
        elif layout == "volume":
            sparse(volume / "ComfyUI" / "models" / entry.relpath, size)
        elif layout == "runpod-cache":
            repo = volume / "huggingface-cache" / "hub" / ("models--" + entry.repo.replace("/", "--"))
            revision = "c" * 40
            blob = repo / "blobs" / f"{entry.id}-blob"
            sparse(blob, size)
            link = repo / "snapshots" / revision / entry.path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / "main").write_text(revision)
    for n in range(USER_LORAS):
        sparse(volume / "models" / "loras" / f"user-lora-{n:03d}.safetensors", 1000)


def best_ms(function, runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> int:
    lock = load_lock()
    print(f"lock: {lock.source} ({len(lock.entries)} entries; sets {', '.join(lock.sets)})")
    print(f"{'layout':13} {'set':5} {'found':>5} {'baseline ms':>12} {'locate ms':>10} {'ratio':>7}  target")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-locate-") as tmp:
        for layout in ("baked", "volume", "runpod-cache", "missing"):
            root = Path(tmp) / layout
            lay_out(root, lock, layout)
            for set_name in lock.sets:
                settings = Settings.from_env(
                    {
                        "RUNPOD_VOLUME_PATH": str(root / "volume"),
                        "BAKED_MODELS_DIR": str(root / "baked"),
                        "WORKER_HOME": str(root / "worker"),
                        "MODEL_SET": set_name,
                    }
                )
                report = locate_models(settings, lock, SLIM)
                found = [f.path for f in report.files]
                baseline = best_ms(lambda found=found: [os.stat(p) for p in found])
                located = best_ms(lambda s=settings: locate_models(s, lock, SLIM))
                worst = max(worst, located)
                ratio = f"{located / baseline:7.1f}" if found else "      -"  # nothing found: no baseline
                verdict = "ok" if located <= TARGET_MS else "OVER"
                print(
                    f"{layout:13} {set_name:5} {len(found):5d} {baseline:12.3f} {located:10.3f} {ratio}  "
                    f"{verdict} (<= {TARGET_MS:.0f} ms)"
                )
    print(f"worst case: {worst:.2f} ms for the full lock (target <= {TARGET_MS:.0f} ms)")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
