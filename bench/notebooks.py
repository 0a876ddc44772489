"""Run notebooks at their default settings (not fast mode) under Binder's limits; report time and peak RSS.

    python bench/notebooks.py notebooks/01_filters_and_activations.ipynb [...]

Each notebook runs in a fresh kernel through nbclient, one at a time, offline. The
kernel is started by ``bench/binder_kernel.py``, which puts it under Binder's limits
before ``ipykernel`` starts: one CPU (``sched_setaffinity``, one thread) and a 2 GB
memory cap (``RLIMIT_DATA``, or a memory cgroup with ``BINDER_BENCH_CGROUP=1``); the
table says which mechanism held. Per notebook it reports the wall time, the kernel's
own CPU time (user + sys of the kernel and its children: on a shared machine the wall
time is inflated by other processes, the CPU time much less) and the peak RSS (kernel
and children, sampled every 0.2 s).

This machine's speed can drift by more than a notebook's change (the same notebook has
taken 1.5× as long within an hour). So before and after each notebook the bench times a
fixed PyTorch workload (:data:`CALIBRATION`: convolutions and matrix products, one thread,
on the kernel's core) and prints its CPU seconds as the ``machine`` column: two runs whose
calibrations differ ran in different spells. The verdict uses the raw CPU seconds.

Each notebook is held to the class budget: at most 60 s on one core (judged on the
kernel's CPU seconds, the number a busy machine disturbs least) and 1.2 GB peak RSS.
A notebook over the budget, one that raises or is stopped by the memory cap, one whose
cell runs longer than ``CELL_TIMEOUT`` (a hang) and one whose peak RSS reaches Binder's
2 GB (where the kernel restarts) fail the run (exit status 1). Results are printed and
written to ``bench/results/notebooks.json`` (merged by name).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
BUDGET_S, BUDGET_MB = 60, 1229  # every notebook at its defaults: about a minute on one core, ≤ 1.2 GB
CELL_TIMEOUT = 600  # a cell that runs longer is a hang, not a slow notebook
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "INTROSPECT_LAB_OFFLINE": "1"}
KERNEL = "introspect-lab-binder-limits"


#: A fixed workload whose CPU seconds say how fast the machine is right now (0.33–0.61 s here): a
#: process that runs it once for each line it reads, so torch is imported once per bench run.
CALIBRATION = """
import sys, time, torch
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 32, 96, 96, generator=g, requires_grad=True)
w = torch.randn(32, 32, 3, 3, generator=g)
torch.nn.functional.conv2d(x, w, padding=1).sum().backward()
for _ in sys.stdin:
    a, t = torch.randn(256, 256, generator=g), time.process_time()
    for _ in range(40):
        torch.nn.functional.conv2d(x, w, padding=1).relu().square().sum().backward()
        a = torch.tanh(a @ a)
    print(time.process_time() - t, flush=True)
"""


class Calibration:
    """:data:`CALIBRATION` in a process on the kernels' core; ``measure()`` gives its CPU seconds."""

    def __init__(self) -> None:
        cpu = min(os.sched_getaffinity(0))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CALIBRATION],
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ | ONE_CORE,
        )

    def measure(self) -> float:
        """CPU seconds of one run of the workload, now."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        """End the process."""
        self.proc.stdin.close()
        self.proc.wait()


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


def usage(pid: int) -> tuple[int, float]:
    """RSS (bytes) and CPU seconds (user + sys, waited-for children included) of ``pid`` and its live
    children.
    """
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs)
    t = proc.cpu_times()
    cpu = t.user + t.system + t.children_user + t.children_system
    return rss, cpu + sum(c.cpu_times().user + c.cpu_times().system for c in procs[1:])


def run(path: Path, timeout: int = CELL_TIMEOUT) -> dict:
    """Execute ``path`` in a fresh kernel at its defaults under Binder's limits; times, peak RSS, limits."""
    nb = nbformat.read(path, as_version=4)
    spec_root = binder_kernelspec()
    report = spec_root / "limits.txt"
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(spec_root), os.environ.get("JUPYTER_PATH")])
    )
    # the kernel's environment: defaults (no fast mode), inline figures as in class, one thread
    env = {k: v for k, v in os.environ.items() if k not in ("INTROSPECT_LAB_FAST", "MPLBACKEND")} | ONE_CORE
    env |= {"BINDER_BENCH_REPORT": str(report), "BINDER_BENCH_LIMIT_MB": str(BINDER_LIMIT_MB)}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(path.parent)}}
    )
    peak, cpu = 0, 0.0
    done = threading.Event()

    def watch():
        nonlocal peak, cpu
        while not done.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                try:
                    rss, seconds = usage(pid)
                    peak, cpu = max(peak, rss), max(cpu, seconds)
                except psutil.Error:
                    pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        client.execute(env=env)
        ok, error = True, ""
    except Exception as exc:  # report, keep going with the other notebooks
        print(f"{path.name}: FAILED: {exc}", file=sys.stderr)
        ok = False
        capped = "MemoryError" in str(exc) or type(exc).__name__ == "DeadKernelError"
        error = "stopped by the memory cap" if capped else f"raised {type(exc).__name__}"
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    limits = report.read_text().strip() if report.exists() else "NOT APPLIED (the kernel did not report)"
    group = limits.partition("cgroup ")[2].partition(" capped")[0]
    if group and Path(group).is_dir():
        Path(group).rmdir()  # the kernel has exited: its cgroup is empty
    shutil.rmtree(spec_root, ignore_errors=True)
    return {
        "notebook": path.name,
        "ok": ok,
        "error": error,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak / 2**20),
        "limits": limits,
    }


def verdict(r: dict) -> str:
    """Empty when the notebook ran within the budget, else why it fails."""
    if not r["ok"]:
        return f"FAILED: {r.get('error') or 'raised'} (see above)"
    if r["peak_rss_mb"] >= BINDER_LIMIT_MB:
        return f"FAILED: over Binder's {BINDER_LIMIT_MB} MB, the kernel would restart"
    over = [f"{r['cpu_s']:.0f} CPU s > {BUDGET_S} s"] if r["cpu_s"] > BUDGET_S else []
    over += [f"{r['peak_rss_mb']} MB > {BUDGET_MB} MB"] if r["peak_rss_mb"] > BUDGET_MB else []
    return f"OVER BUDGET: {', '.join(over)}" if over else ""


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(Path("notebooks").glob("*.ipynb"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = 0
    print(
        f"Budget per notebook: {BUDGET_S} s on one core (kernel CPU seconds), {BUDGET_MB} MB; Binder: "
        f"{BINDER_LIMIT_MB} MB"
    )
    print(f"{'notebook':<45} {'wall':>9} {'kernel CPU':>12} {'peak RSS':>10} {'machine':>13}")
    limits = set()
    machine = Calibration()
    for p in paths:
        before = machine.measure()
        r = run(p)
        r["calibration_s"] = [round(before, 2), round(machine.measure(), 2)]
        results[r["notebook"]] = r
        limits.add(r["limits"])
        flag = verdict(r)
        failed += bool(flag)
        print(
            f"{r['notebook']:<45} {r['wall_s']:>7.1f} s {r['cpu_s']:>10.1f} s "
            f"{r['peak_rss_mb']:>7} MB {'/'.join(map(str, r['calibration_s'])):>11} s  {flag or 'ok'}"
        )
    machine.close()
    print("Limits: " + "; ".join(sorted(limits)))
    print("machine: CPU seconds of a fixed workload before/after each notebook (lower: a faster spell)")
    RESULTS.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
