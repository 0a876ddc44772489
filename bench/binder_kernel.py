"""A Jupyter kernel under Binder's limits: one CPU, a 2 GB memory cap, then ``ipykernel``.

    python bench/binder_kernel.py -f CONNECTION_FILE

Used as the ``argv`` of the kernel spec that ``bench/notebooks.py`` writes. Before
the kernel starts, in its own process (so the limits cover the kernel and every
process it starts):

- CPU: ``os.sched_setaffinity`` pins it to one core (what ``taskset -c N`` does), and
  ``OMP_NUM_THREADS=MKL_NUM_THREADS=1`` as ``binder/start`` sets them;
- memory: ``RLIMIT_DATA`` (``setrlimit``) caps its private writable memory (heap and
  anonymous maps, i.e. what becomes resident), so going over raises ``MemoryError``.
  ``RLIMIT_AS`` would not do: PyTorch maps about 4 GB of address space while resident at
  1.5 GB. With ``BINDER_BENCH_CGROUP=1`` the kernel instead joins a new child of its own
  memory cgroup capped at the limit (``memory.max`` in v2, ``memory.limit_in_bytes`` in
  v1), which is how Binder's Kubernetes pods are limited (the kernel is killed over it);
  that needs a writable cgroup tree, and the bench removes the group afterwards.

The mechanism used is written to ``BINDER_BENCH_REPORT`` (a file path), for the table.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

LIMIT_BYTES = int(os.environ.get("BINDER_BENCH_LIMIT_MB", "2048")) * 2**20


def _cgroup(limit: int) -> str | None:
    """Move this process into a new child of its memory cgroup, capped at ``limit``; its path, or ``None``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "memory":  # cgroup v1
            base, knob = Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
        elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2
            base, knob = Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"
        else:
            continue
        group = base / f"introspect-lab-bench-{os.getpid()}"
        try:
            group.mkdir()
            (group / knob).write_text(str(limit))
            (group / "cgroup.procs").write_text(str(os.getpid()))
            return str(group)
        except OSError:
            if group.is_dir():
                group.rmdir()
    return None


def main(argv: list[str]) -> None:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    wanted = os.environ.get("BINDER_BENCH_CGROUP") == "1"
    group = _cgroup(LIMIT_BYTES) if wanted else None
    if group:
        how = f"cgroup {group} capped at {LIMIT_BYTES >> 20} MB"
    else:
        resource.setrlimit(resource.RLIMIT_DATA, (LIMIT_BYTES, LIMIT_BYTES))
        why = "no writable memory cgroup" if wanted else "BINDER_BENCH_CGROUP=1 tries a memory cgroup instead"
        how = f"RLIMIT_DATA {LIMIT_BYTES >> 20} MB per process ({why})"
    report = os.environ.get("BINDER_BENCH_REPORT")
    if report:
        Path(report).write_text(f"CPU {cpu} only (sched_setaffinity); memory: {how}\n")
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
