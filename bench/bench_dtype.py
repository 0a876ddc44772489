"""One attribution call and one synthesis call in float32 vs float64 (and on CUDA when present), as ratios.

    python bench/bench_dtype.py [--threads 1] [--size 128] [--repeat 3]

Same model (EfficientNet-Lite0, bundled weights), same photo (chelsea). The attribution call is
integrated gradients (32 steps); the synthesis call is a class visualisation (20 steps). Times are the
median wall seconds of ``--repeat`` runs after a warm-up. float64 is the CPU proxy the tests use for
"follows the model's dtype"; its cost says what a student who calls ``model.double()`` pays. Results go
to ``bench/results/dtype.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")

import torch  # noqa: E402

from introspect_lab import attribution as A  # noqa: E402
from introspect_lab import load_image, load_model, sample_image  # noqa: E402
from introspect_lab.synthesis import visualize_class  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "dtype.json"


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calls(model, size: int) -> dict:
    x = load_image(sample_image("chelsea"), model, size=size)
    return {
        "integrated_gradients": lambda: A.integrated_gradients(model, x, None, n_steps=32, rtol=1.0),
        "visualize_class": lambda: visualize_class(
            model, "tabby", size=size, steps=20, seed=0, progress=False
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model(verbose=False)
    variants = {"cpu float32": base, "cpu float64": copy.deepcopy(base).double()}
    if torch.cuda.is_available():
        variants["cuda float32"] = copy.deepcopy(base).cuda()
    rows = {
        v: {k: timed(f, args.repeat) for k, f in calls(m, args.size).items()} for v, m in variants.items()
    }
    ref = rows["cpu float32"]
    print(f"{'call':22s}" + "".join(f"{v:>16s}" for v in rows) + "   (seconds; ratio to cpu float32)")
    for k in ref:
        cells = "".join(f"{rows[v][k]:8.2f} ({rows[v][k] / ref[k]:4.2f}×)" for v in rows)
        print(f"{k:22s}{cells}")
    if "cuda float32" not in rows:
        print("No CUDA device here: the GPU column is measured where one is present.")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"size": args.size, "threads": args.threads, "seconds": rows}, indent=1))


if __name__ == "__main__":
    main()
