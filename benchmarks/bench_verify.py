"""verify (sha256 of model files) against ``openssl dgst -sha256``, in one run.

Run: ``uv run python benchmarks/bench_verify.py [--mib 1024] [--files 4] [--rounds 5]``.

Writes incompressible files to a temporary directory and reads them once so that both sides
hash from the page cache (the question is hashing throughput, not the disk), then times:

- one file: ``verify_files([one])`` vs ``openssl dgst -sha256 FILE``: speed ratio
  openssl time / verify time, target >= 0.9;
- several files: ``verify_files(all)`` (threads, one per CPU) vs one ``openssl dgst -sha256
  F1 F2 ...`` (sequential): speed-up openssl time / verify time, target >= 1.6 on 2 cores.

Prints the best of ``--rounds`` for each.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handler.models.lock import LockEntry
from handler.models.verify import verify_files

ONE_FILE_TARGET = 0.9
SEVERAL_FILES_TARGET = 1.6


def _write(path: Path, size: int, seed: int) -> str:
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = rng.randbytes(min(8 << 20, left))
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _entry(path: Path, sha: str) -> LockEntry:
    return LockEntry(
        id=path.stem,
        role="checkpoint",
        repo="bench/x",
        path=path.name,
        revision=None,
        sha256=sha,
        size=path.stat().st_size,
        folder=path.parent.name,
        filename=path.name,
        license="mit",
    )


def _time_openssl(paths: list[Path]) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _time_verify(entries: list[LockEntry], root: Path) -> float:
    started = time.perf_counter()
    results = verify_files(entries, root)
    elapsed = time.perf_counter() - started
    if not all(r.ok for r in results):
        raise SystemExit(f"verify failed: {[r.status for r in results]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the single file in MiB")
    parser.add_argument("--files", type=int, default=4, help="number of files in the several-files case")
    parser.add_argument("--each-mib", type=int, default=512, help="size of each of the several files")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is needed for the baseline")

    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        root = work / "models"
        folder = root / "checkpoints"
        folder.mkdir(parents=True)
        print("writing test files ...", flush=True)
        single = folder / "single.safetensors"
        single_entry = _entry(single, _write(single, args.mib << 20, 1))
        several = [folder / f"part-{i}.safetensors" for i in range(args.files)]
        several_entries = [_entry(p, _write(p, args.each_mib << 20, 100 + i)) for i, p in enumerate(several)]
        for path in [single, *several]:  # into the page cache
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)

        one_openssl, one_verify, many_openssl, many_verify = [], [], [], []
        for _ in range(args.rounds):
            one_openssl.append(_time_openssl([single]))
            one_verify.append(_time_verify([single_entry], root))
            many_openssl.append(_time_openssl(several))
            many_verify.append(_time_verify(several_entries, root))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    one_ratio = min(one_openssl) / min(one_verify)
    many_ratio = min(many_openssl) / min(many_verify)
    one_gb, many_gb = (args.mib << 20) / 1e9, (args.files * args.each_mib << 20) / 1e9
    print(f"{os.cpu_count()} CPUs, best of {args.rounds}")
    print(
        f"  one file ({one_gb:.2f} GB):    openssl {min(one_openssl):6.3f} s   verify {min(one_verify):6.3f} s"
    )
    print(
        f"  {args.files} files ({many_gb:.2f} GB):  openssl {min(many_openssl):6.3f} s   verify {min(many_verify):6.3f} s"
    )
    print(f"one file:   verify speed / openssl = {one_ratio:.2f}x (target >= {ONE_FILE_TARGET}x)")
    print(
        f"{args.files} files:    verify speed-up over openssl = {many_ratio:.2f}x (target >= {SEVERAL_FILES_TARGET}x)"
    )
    return 0 if one_ratio >= ONE_FILE_TARGET and many_ratio >= SEVERAL_FILES_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
