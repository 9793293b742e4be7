"""Returning a large output inline: time and peak memory against a plain baseline, in one run.

    uv run python benchmarks/bench_outputs.py [--mb 20] [--repeat 5]

Baseline: read the file, base64 it, json.dumps a result holding it (what any handler must do).
Handler: the worker's own path for the same file: stat and classify the output, choose the delivery,
read + hash + base64 in one pass (`deliver_outputs`), then json.dumps the result once, as the RunPod
SDK does when it posts it. Times are the best of --repeat runs in one process; peak RSS growth is
measured in a fresh process per variant (VmHWM after minus VmRSS before, the peak reset after imports).

Targets (issue 2): handler time <= 1.5x the baseline; peak RSS growth <= 3x the output size.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def baseline(path: Path) -> int:
    data = path.read_bytes()
    text = base64.b64encode(data).decode("ascii")
    return len(json.dumps({"status": "success", "outputs": [{"filename": path.name, "data": text}]}))


def handler_result(path: Path) -> dict:
    """The worker's own work: find, classify, choose delivery, read + hash + base64."""
    from handler.job import outputs as out
    from handler.job.runner import deliver_outputs

    ref = out.OutputRef("1", "images", path.name, "", "output", animated=True)
    found = out.stat_outputs([ref], {"output": path.parent})
    delivery, items = asyncio.run(
        deliver_outputs(
            found, mode="inline", inline_limit=1 << 40, bucket=None, job_id="bench", object_names=[path.name]
        )
    )
    return {"status": "success", "outputs": items, "delivery": delivery}


def handler_path(path: Path) -> int:
    """...plus the one json.dumps the SDK does to post the result (same as the baseline's dumps)."""
    return len(json.dumps(handler_result(path), ensure_ascii=False))


def handler_own(path: Path) -> int:
    return len(handler_result(path)["outputs"][0]["data"])


VARIANTS = {"baseline": baseline, "handler": handler_path, "handler-own": handler_own}


def child(variant: str, path: Path) -> None:
    """Run one variant once in this fresh process and print its peak RSS growth in bytes."""
    import handler.job.runner  # noqa: F401  imports are not part of the measurement

    reset_peak()
    before = status_kb("VmRSS")
    VARIANTS[variant](path)
    print((status_kb("VmHWM") - before) * 1024)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0

    size = int(args.mb * 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-outputs-") as tmp:
        path = Path(tmp) / "video_00001_.mp4"
        path.write_bytes(os.urandom(size))
        times: dict[str, float] = {}
        for variant, function in VARIANTS.items():
            function(path)  # warm the page cache and imports
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                function(path)
                best = min(best, time.perf_counter() - started)
            times[variant] = best
        growth = {
            variant: int(
                subprocess.run(
                    [sys.executable, __file__, "--child", variant, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            )
            for variant in VARIANTS
        }
    print(f"{args.mb:g} MB output, best of {args.repeat}")
    for variant in VARIANTS:
        print(
            f"{variant:9} {times[variant] * 1000:8.1f} ms   peak RSS growth {growth[variant] / 1e6:6.1f} MB "
            f"({growth[variant] / size:.2f}x the output)"
        )
    print("(handler = handler-own + the json.dumps the SDK does; baseline includes the same json.dumps)")
    ratio = times["handler"] / times["baseline"]
    print(f"time ratio handler/baseline: {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    memory = growth["handler-own"] / size
    print(
        f"handler-own peak RSS growth: {memory:.2f}x the output (target <= 3: {'met' if memory <= 3 else 'NOT met'}); "
        f"with the SDK's json.dumps: {growth['handler'] / size:.2f}x vs the baseline's {growth['baseline'] / size:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
