"""Run notebooks at their default settings (not fast mode), on one thread; report wall time and peak RSS.

    python bench/notebooks.py notebooks/01_filters_and_activations.ipynb [...]

Each notebook runs in a fresh kernel through nbclient, one at a time, offline and
with one thread (``OMP_NUM_THREADS=1``, as on Binder's one CPU); the peak RSS is the
kernel process's maximum resident set size. Each notebook is held to the class
budget: at most 60 s of wall time and 1.2 GB peak RSS. A notebook over the budget,
one that raises, one whose cell runs longer than ``CELL_TIMEOUT`` (a hang) and one
whose peak RSS reaches Binder's 2 GB (where the kernel restarts) fail the run (exit
status 1). Results are printed and written to ``bench/results/notebooks.json``
(merged by name).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

RESULTS = Path(__file__).parent / "results" / "notebooks.json"
BINDER_LIMIT_MB = 2048  # mybinder.org restarts the kernel above 2 GB
BUDGET_S, BUDGET_MB = 60, 1229  # every notebook at its defaults: about a minute on one core, ≤ 1.2 GB
CELL_TIMEOUT = 600  # a cell that runs longer is a hang, not a slow notebook
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "INTROSPECT_LAB_OFFLINE": "1"}


def run(path: Path, timeout: int = CELL_TIMEOUT) -> dict:
    """Execute ``path`` in a fresh kernel at its defaults; wall time, peak RSS and whether it ran."""
    nb = nbformat.read(path, as_version=4)
    # the kernel's environment: defaults (no fast mode), inline figures as in class, one thread
    env = {k: v for k, v in os.environ.items() if k not in ("INTROSPECT_LAB_FAST", "MPLBACKEND")} | ONE_CORE
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    peak = 0
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                try:
                    proc = psutil.Process(pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True)
                    )
                    peak = max(peak, rss)
                except psutil.Error:
                    pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        client.execute(env=env)
        ok = True
    except Exception as exc:  # report, keep going with the other notebooks
        print(f"{path.name}: FAILED: {exc}", file=sys.stderr)
        ok = False
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    return {"notebook": path.name, "ok": ok, "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20)}


def verdict(r: dict) -> str:
    """Empty when the notebook ran within the budget, else why it fails."""
    if not r["ok"]:
        return "FAILED: raised or timed out (see above)"
    if r["peak_rss_mb"] >= BINDER_LIMIT_MB:
        return f"FAILED: over Binder's {BINDER_LIMIT_MB} MB, the kernel would restart"
    over = [f"{r['wall_s']:.0f} s > {BUDGET_S} s"] if r["wall_s"] > BUDGET_S else []
    over += [f"{r['peak_rss_mb']} MB > {BUDGET_MB} MB"] if r["peak_rss_mb"] > BUDGET_MB else []
    return f"OVER BUDGET: {', '.join(over)}" if over else ""


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(Path("notebooks").glob("*.ipynb"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = 0
    print(f"{'notebook':<45} {'wall':>9}  {'peak RSS':>14}   budget {BUDGET_S} s / {BUDGET_MB} MB, one core")
    for p in paths:
        r = run(p)
        results[r["notebook"]] = r
        flag = verdict(r)
        failed += bool(flag)
        print(f"{r['notebook']:<45} {r['wall_s']:>7.1f} s  {r['peak_rss_mb']:>6} MB peak RSS  {flag or 'ok'}")
    RESULTS.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
