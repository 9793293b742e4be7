"""Build-time and size measurements of the bake matrix, on the container test rig.

    uv run python benchmarks/bench_build.py            # needs a Docker engine with buildx and
                                                       # local/base:bookworm (.ci/build-base-image.sh)

Measures, in one run, on a copy of the checkout (the working tree is never touched):

1. cold build of all three variants: ``docker buildx bake --no-cache`` (the baseline);
2. warm rebuild of all three after a handler-only change (one line appended to
   handler/worker.py in the copy): time, ratio to the cold build, which steps ran again, and
   whether each variant's model layer kept its digest (it must);
3. image sizes: each variant, and ``baked``/``fp8`` minus ``slim`` against the model bytes.

The rig images are small stand-ins (no torch, a ComfyUI double, a few MB of models); the ratios
and the model-layer digests are what carry over to the real images.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.container import rig  # noqa: E402
from tests.doubles.hf import start_subprocess  # noqa: E402

TOKEN = "hf_BENCHtoken000000000000000000"
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".ruff_cache", ".pytest_cache")


def executed_steps(log: str) -> list[str]:
    """Build steps that ran (not CACHED), by their progress names, e.g. ``[slim runtime 5/7] COPY ...``."""
    names: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        match = re.match(r"^#(\d+) (\[.+)$", line)
        if match:
            names.setdefault(match.group(1), match.group(2)[:110])
        match = re.match(r"^#(\d+) CACHED$", line)
        if match:
            cached.add(match.group(1))
    steps = [name for step, name in names.items() if step not in cached]
    return [
        s for s in steps if not re.search(r"\] (load |transferring|exporting|naming)|internal\]|context ", s)
    ]


def model_layers(setup: rig.BakeSetup) -> dict[str, str]:
    return {v: rig.layer_diff_ids(setup.image_ref(v))[-1] for v in ("baked", "fp8")}


def sizes(setup: rig.BakeSetup) -> dict[str, int]:
    return {v: int(rig.inspect_image(setup.image_ref(v))["Size"]) for v in rig.VARIANTS}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        checkout = Path(shutil.copytree(ROOT, work / "checkout", ignore=COPY_IGNORE))
        with start_subprocess(rig.hub_spec(TOKEN), work / "hub") as hub:
            setup = rig.prepare(work / "rig", hub.endpoint, root=checkout)
            try:
                cold = rig.bake(setup, rig.VARIANTS, "--no-cache", token=TOKEN, log_path=work / "cold.log")
                layers_before = model_layers(setup)
                cold_sizes = sizes(setup)

                worker = checkout / "handler" / "worker.py"
                worker.write_text(worker.read_text() + "\n# benchmark: a handler-only change\n")
                warm = rig.bake(setup, rig.VARIANTS, token=TOKEN, log_path=work / "warm.log")
                layers_after = model_layers(setup)
            finally:
                setup.remove_images()

    print("bake of baked + slim + fp8 on the test rig")
    print(f"  cold (--no-cache):             {cold.seconds:7.1f} s   (baseline)")
    print(f"  warm, handler-only change:     {warm.seconds:7.1f} s   ratio {warm.seconds / cold.seconds:.3f}")
    print("  steps the warm rebuild ran:")
    for step in executed_steps(warm.log):
        print(f"    {step}")
    for variant in ("baked", "fp8"):
        same = layers_before[variant] == layers_after[variant]
        print(
            f"  {variant} model layer: {layers_before[variant]} -> {'unchanged' if same else layers_after[variant]}"
        )
    print("image sizes (docker image inspect .Size)")
    for variant, size in cold_sizes.items():
        print(f"  {variant:5s} {size:>14,d} B")
    for variant in ("baked", "fp8"):
        model_set = rig.VARIANT_SETS[variant]
        assert model_set is not None
        model_bytes = sum(rig.expected_model_tree(model_set).values())
        difference = cold_sizes[variant] - cold_sizes["slim"]
        print(
            f"  {variant} - slim = {difference:,d} B; model bytes {model_bytes:,d} B; "
            f"ratio {difference / model_bytes:.4f}"
        )
    return 0 if layers_before == layers_after else 1


if __name__ == "__main__":
    sys.exit(main())
