"""How long a template job's preparation takes: validate + render, per template.

Run: ``uv run python benchmarks/bench_templates.py``. Prints microseconds per call and the ratio
against a baseline measured in the same run: parsing the template's graph from JSON (the least
any renderer must do to hand out a fresh graph). No targets are asserted; this is for watching.
"""

from __future__ import annotations

import json
import random
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handler.models.lock import load_lock
from handler.templates import TEMPLATE_NAMES, render_template, template_spec, validate_template_params

MEDIA = {"t2v": {}, "i2v": {"image": "x"}, "canny": {"video": "v", "image": "i"}, "depth": {"video": "v"}}
FILES = {"image": "first.png", "video": "control.mp4"}
NUMBER = 2000


def per_call(function: Callable[[], object]) -> float:
    """Best of five runs, in seconds per call."""
    return min(timeit.repeat(function, number=NUMBER, repeat=5)) / NUMBER


def measure(name: str, model_files: dict[str, str], rng: random.Random) -> tuple[float, float, float]:
    text = template_spec(name).graph_text
    params = {**MEDIA[name], "prompt": "a cat on a skateboard", "duration": 4}
    used = validate_template_params(name, params, rng=rng)
    media = {key: FILES[key] for key in FILES if key in used}
    baseline = per_call(lambda: json.loads(text))
    validate = per_call(lambda: validate_template_params(name, params, rng=rng))
    render = per_call(lambda: render_template(name, used, model_files=model_files, media_files=media))
    return baseline, validate, render


def main() -> None:
    model_files = load_lock().role_filenames("fp8")
    rng = random.Random(0)
    print(f"{'template':8} {'baseline us':>12} {'validate us':>12} {'render us':>10} {'total/baseline':>15}")
    for name in TEMPLATE_NAMES:
        baseline, validate, render = measure(name, model_files, rng)
        ratio = (validate + render) / baseline
        print(f"{name:8} {baseline * 1e6:12.1f} {validate * 1e6:12.1f} {render * 1e6:10.1f} {ratio:15.2f}")


if __name__ == "__main__":
    main()
