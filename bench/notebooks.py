"""Run notebooks at their default settings (not fast mode); report wall time and peak RSS.

    python bench/notebooks.py notebooks/01_filters_and_activations.ipynb [...]

Each notebook runs in a fresh kernel through nbclient, one at a time; the
peak RSS is the kernel process's maximum resident set size. Results are
printed and written to ``bench/results/notebooks.json`` (merged by name).
A notebook whose peak RSS reaches Binder's 2 GB (where the kernel restarts)
fails the run (exit status 1), like a notebook that raises.
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


def run(path: Path, timeout: int = 900) -> dict:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env.pop("INTROSPECT_LAB_FAST", None)
    os.environ.pop("INTROSPECT_LAB_FAST", None)
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
        client.execute()
        ok = True
    except Exception as exc:  # report, keep going with the other notebooks
        print(f"{path.name}: FAILED: {exc}", file=sys.stderr)
        ok = False
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    return {"notebook": path.name, "ok": ok, "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20)}


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(Path("notebooks").glob("*.ipynb"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = 0
    for p in paths:
        r = run(p)
        results[r["notebook"]] = r
        failed += not r["ok"]
        flag = "" if r["wall_s"] < 180 and r["peak_rss_mb"] < 1536 else "  (over the 3 min / 1.5 GB goal)"
        if r["peak_rss_mb"] >= BINDER_LIMIT_MB:
            flag = f"  FAILED: over Binder's {BINDER_LIMIT_MB} MB, the kernel would restart"
            failed += 1
        print(f"{r['notebook']:<45} {r['wall_s']:>7.1f} s  {r['peak_rss_mb']:>6} MB peak RSS{flag}")
    RESULTS.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
