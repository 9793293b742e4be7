"""fetch (download + sha256 verification) against `curl` then `openssl dgst -sha256`, in one run.

Run: ``uv run python benchmarks/bench_fetch.py [--files 4] [--mib 512] [--rounds 3] [--root DIR]``.

Serves about 2 GB in several LFS files from the local Hub double, started as its own process
(like a remote server; both sides fetch from it, through its 302 to the CDN port), then times:

- baseline: for each file in turn, ``curl -sSL -o FILE URL`` and then ``openssl dgst -sha256 FILE``
  (download, then hash: what a careful shell script does);
- fetch: ``fetch_entries`` of the same files into an empty directory (HEAD per file, transfers in
  parallel, hashing while streaming, fsync, rename) and, for information, the same through
  ``python -m handler fetch`` (includes interpreter start-up).

Each round deletes the downloads first; the served files stay in the page cache, so both sides
measure the transfer and the hashing, not the server's disk. Prints the best of ``--rounds`` and
the ratio fetch / baseline. Target: <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handler.models.fetch import fetch_entries  # noqa: E402
from handler.models.lock import LockEntry  # noqa: E402
from tests.doubles.hf import start_subprocess  # noqa: E402

TARGET_RATIO = 1.0


def _entries(remote, count: int) -> list[LockEntry]:
    files = remote.files()["bench/weights"]["files"]
    entries = []
    for index in range(count):
        name = f"part-{index}.safetensors"
        meta = files[name]
        entries.append(
            LockEntry(
                id=f"part-{index}",
                role="checkpoint",
                repo="bench/weights",
                path=name,
                revision=None,
                sha256=meta["sha256"],
                size=meta["size"],
                folder="checkpoints",
                filename=name,
                license="mit",
            )
        )
    return entries


def _baseline(remote, entries: list[LockEntry], out: Path) -> float:
    started = time.perf_counter()
    for entry in entries:
        target = out / entry.filename
        url = f"{remote.endpoint}/{entry.repo}/resolve/main/{entry.path}"
        subprocess.run(["curl", "-sSL", "--fail", "-o", str(target), url], check=True)
        digest = subprocess.run(
            ["openssl", "dgst", "-sha256", "-r", str(target)], check=True, capture_output=True, text=True
        )
        if digest.stdout.split()[0] != entry.sha256:
            raise SystemExit(f"baseline: sha256 mismatch for {entry.filename}")
    return time.perf_counter() - started


def _fetch(remote, entries: list[LockEntry], out: Path, jobs: int) -> float:
    started = time.perf_counter()
    outcomes = fetch_entries(
        entries,
        out,
        endpoint=remote.endpoint,
        max_workers=jobs,
        show_progress=False,
        hf_cache=out / "no-cache",
    )
    elapsed = time.perf_counter() - started
    if any(o.action != "downloaded" for o in outcomes):
        raise SystemExit(f"fetch: unexpected outcomes {[o.action for o in outcomes]}")
    return elapsed


def _fetch_cli(remote, entries: list[LockEntry], out: Path, jobs: int, lock: Path) -> float:
    env = {
        **os.environ,
        "HF_ENDPOINT": remote.endpoint,
        "HF_HUB_CACHE": str(out / "no-cache"),
        "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "handler", "fetch", "--set", "bench", "--dest", str(out), "--lock", str(lock),
         "--jobs", str(jobs), "--no-progress"],
        check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def _write_lock(path: Path, entries: list[LockEntry]) -> None:
    lines = ["schema: 1", "entries:"]
    for e in entries:
        lines += [f"  {e.id}:", "    role: checkpoint", f"    repo: {e.repo}", f"    path: {e.path}", "    revision: null",
                  f"    sha256: '{e.sha256}'", f"    size: {e.size}", "    folder: checkpoints",
                  f"    filename: {e.filename}", "    license: mit"]  # fmt: skip
    lines += ["sets:", "  bench:", "    models:"] + [f"      r{i}: {e.id}" for i, e in enumerate(entries)]
    path.write_text("\n".join(lines) + "\n")


def _empty(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=512, help="size of each file in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--root", type=Path, help="keep generated files here between runs")
    args = parser.parse_args()
    for tool in ("curl", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the baseline")

    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    root = args.root or work / "hub"
    spec = {
        "repos": {
            "bench/weights": {
                "commits": [
                    {
                        "files": {
                            f"part-{i}.safetensors": {"size": args.mib * 1024 * 1024, "seed": f"bench-{i}"}
                            for i in range(args.files)
                        }
                    }
                ]
            }
        }
    }
    total = args.files * args.mib * 1024 * 1024
    print(f"generating {args.files} x {args.mib} MiB under {root} (once per root) ...", flush=True)
    try:
        with start_subprocess(spec, root) as remote:
            entries = _entries(remote, args.files)
            lock = work / "models.lock.yaml"
            _write_lock(lock, entries)
            for entry in entries:  # the served files into the page cache
                subprocess.run(
                    ["cat", str(root / "blobs" / entry.sha256)], stdout=subprocess.DEVNULL, check=True
                )
            baseline, ours, cli = [], [], []
            for _ in range(args.rounds):
                baseline.append(_baseline(remote, entries, _empty(work / "curl")))
                shutil.rmtree(work / "curl")
                ours.append(_fetch(remote, entries, _empty(work / "fetch"), args.jobs))
                shutil.rmtree(work / "fetch")
                cli.append(_fetch_cli(remote, entries, _empty(work / "cli"), args.jobs, lock))
                shutil.rmtree(work / "cli")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # --root, when given, lives elsewhere and is kept

    gb = total / 1e9
    best_base, best_ours, best_cli = min(baseline), min(ours), min(cli)
    print(f"{args.files} files, {gb:.2f} GB, {os.cpu_count()} CPUs, best of {args.rounds}")
    print(f"  curl + openssl dgst (sequential)   {best_base:7.2f} s  {gb / best_base:6.2f} GB/s")
    print(f"  fetch_entries (--jobs {args.jobs})          {best_ours:7.2f} s  {gb / best_ours:6.2f} GB/s")
    print(f"  python -m handler fetch            {best_cli:7.2f} s  {gb / best_cli:6.2f} GB/s")
    ratio = best_ours / best_base
    print(f"ratio fetch / baseline = {ratio:.2f} (target <= {TARGET_RATIO}); CLI: {best_cli / best_base:.2f}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
