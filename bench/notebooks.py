"""Run notebooks at their default settings (not fast mode) under Binder's limits; report time and peak RSS.

    python bench/notebooks.py notebooks/01_filters_and_activations.ipynb [...]

Each notebook runs in a fresh kernel through nbclient, one at a time. The kernel
is started by ``bench/binder_kernel.py``, which puts it under Binder's limits
before ``ipykernel`` starts: one CPU (``sched_setaffinity``, one thread) and a
2 GB memory cap (``RLIMIT_DATA``, or a memory cgroup with ``BINDER_BENCH_CGROUP=1``);
the table's header says which mechanism held. The peak RSS is the kernel
process's (and its children's) maximum resident set size, sampled every 0.2 s.
Results are printed and written to ``bench/results/notebooks.json`` (merged by
name). A notebook that raises, or is stopped by the memory cap, or whose peak
RSS reaches Binder's 2 GB (where the kernel restarts) fails the run (exit status 1).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

RESULTS = Path(__file__).parent / "results" / "notebooks.json"
BINDER_LIMIT_MB = 2048  # mybinder.org restarts the kernel above 2 GB
KERNEL = "introspect-lab-binder-limits"
LIMITS = {"how": "not started"}  # what binder_kernel.py reported for the last kernel


def binder_kernelspec() -> Path:
    """A kernel spec folder whose kernel starts through ``binder_kernel.py``; add it to ``JUPYTER_PATH``."""
    root = Path(tempfile.mkdtemp(prefix="binder-kernel-"))
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, str(Path(__file__).with_name("binder_kernel.py")), "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    return root


def run(path: Path, timeout: int = 900) -> dict:
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("INTROSPECT_LAB_FAST", None)
    spec_root = binder_kernelspec()
    report = spec_root / "limits.txt"
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(spec_root), os.environ.get("JUPYTER_PATH")])
    )
    os.environ.update(BINDER_BENCH_REPORT=str(report), BINDER_BENCH_LIMIT_MB=str(BINDER_LIMIT_MB))
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(path.parent)}}
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
        ok, error = True, ""
    except Exception as exc:  # report, keep going with the other notebooks
        print(f"{path.name}: FAILED: {exc}", file=sys.stderr)
        ok = False
        capped = "MemoryError" in str(exc) or type(exc).__name__ == "DeadKernelError"
        error = "stopped by the memory cap" if capped else f"raised {type(exc).__name__}"
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    LIMITS["how"] = (
        report.read_text().strip() if report.exists() else "NOT APPLIED (the kernel did not report)"
    )
    group = LIMITS["how"].partition("cgroup ")[2].partition(" capped")[0]
    if group and Path(group).is_dir():
        Path(group).rmdir()  # the kernel has exited: its cgroup is empty
    shutil.rmtree(spec_root, ignore_errors=True)
    return {"notebook": path.name, "ok": ok, "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20),
            "limits": LIMITS["how"], "error": error}  # fmt: skip


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(Path("notebooks").glob("*.ipynb"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = 0
    print(f"Binder's budget: 1 CPU, {BINDER_LIMIT_MB} MB; goal per notebook: under 3 min and 1.5 GB.")
    for p in paths:
        r = run(p)
        results[r["notebook"]] = r
        failed += not r["ok"]
        flag = "" if r["wall_s"] < 180 and r["peak_rss_mb"] < 1536 else "  (over the 3 min / 1.5 GB goal)"
        flag = f"  FAILED: {r['error']}" if r.get("error") else flag
        if r["peak_rss_mb"] >= BINDER_LIMIT_MB:
            flag = f"  FAILED: over Binder's {BINDER_LIMIT_MB} MB, the kernel would restart"
            failed += 1
        print(f"{r['notebook']:<45} {r['wall_s']:>7.1f} s  {r['peak_rss_mb']:>6} MB peak RSS{flag}")
    print(f"Limits: {LIMITS['how']}.")
    RESULTS.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
