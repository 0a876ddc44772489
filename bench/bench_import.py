"""Benchmark: what ``import introspect_lab`` and a notebook's first cell cost, in a fresh process.

    python bench/bench_import.py            # median of 3 fresh processes per statement
    python bench/bench_import.py --repeat 5

Each statement runs in a new interpreter (``python -X importtime -c ...``). Reported:
wall time of the statement (``time.perf_counter`` around it), the import time that
``-X importtime`` attributes to it (sum of top-level cumulative times), the process's
peak resident memory (``VmHWM`` in ``/proc/self/status``, Linux) and which of the heavy
optional dependencies the statement loaded. ``import torch`` is the floor every
statement pays. Results are printed and written to ``bench/results/import.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "import.json"
HEAVY = (
    "torchvision",
    "torchvision.models",
    "sklearn",
    "scipy",
    "cma",
    "nbgrader",
    "ipywidgets",
    "matplotlib",
)

STATEMENTS = {
    "import torch": "import torch",
    "import introspect_lab": "import introspect_lab",
    "import every lesson module": (
        "from introspect_lab import adversarial, attribution, features, pathways, synthesis, texture, "
        "transfer, widgets"
    ),
    "first cell (00)": (
        "from introspect_lab import load_image, load_model, predict, sample_image\n"
        "m = load_model('efficientnet_lite0', verbose=False)\n"
        "predict(m, load_image(sample_image('chelsea'), m))"
    ),
}

PROBE = """
import sys, time
t = time.perf_counter()
exec(compile({code!r}, "<bench>", "exec"))
wall = time.perf_counter() - t
hwm = next((int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")), 0)
print("RESULT", wall, hwm, ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def measure(code: str) -> dict:
    """One fresh interpreter: wall s, ``-X importtime`` s, VmHWM MB, heavy modules loaded."""
    env = dict(os.environ, INTROSPECT_LAB_OFFLINE="1", INTROSPECT_LAB_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    _, wall, hwm, heavy = (line.split(" ") + [""])[:4]
    # -X importtime: "import time: self | cumulative | name"; top-level packages have no leading spaces
    top = [ln.split("|") for ln in proc.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
    cumulative = sum(int(c) for _, c, name in (t[:3] for t in top[1:]) if not name.startswith("  ")) / 1e6
    return {
        "wall_s": float(wall),
        "importtime_s": cumulative,
        "rss_mb": int(hwm) / 1024,
        "heavy": [m for m in heavy.split(",") if m],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    results = {}
    print(f"{'statement':<24} {'wall s':>7} {'importtime s':>13} {'peak RSS MB':>12}  heavy modules loaded")
    for label, code in STATEMENTS.items():
        runs = [measure(code) for _ in range(args.repeat)]
        r = {k: round(statistics.median(x[k] for x in runs), 2) for k in ("wall_s", "importtime_s", "rss_mb")}
        r["heavy"] = runs[-1]["heavy"]
        results[label] = r
        print(
            f"{label:<24} {r['wall_s']:>7.2f} {r['importtime_s']:>13.2f} {r['rss_mb']:>12.0f}  "
            f"{', '.join(r['heavy']) or '-'}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
