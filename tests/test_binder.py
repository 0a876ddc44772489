"""Binder: a launch link per notebook, a build that bakes in the weights and drops instructor material, a 2 GB
check.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER_URL = "https://mybinder.org/v2/gh/introspect-lab/introspect-lab/HEAD?urlpath=lab/tree/notebooks/{}"


def _readme_rows() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^\| \[`(\d\d_\w+\.ipynb)`\]\(notebooks/\1\)", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_notebook_row_of_the_readme_has_its_binder_link():
    rows = _readme_rows()
    assert len(rows) >= 9
    for name in sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")):
        assert name in rows, f"{name} has no row in the README's notebook table"
    for name, line in rows.items():
        assert (ROOT / "notebooks" / name).exists(), f"README row for a missing notebook {name}"
        assert f"]({BINDER_URL.format(name)})" in line, (
            f"the README row of {name} lacks its Binder launch link"
        )


def test_postbuild_prefetches_weights_and_removes_instructor_material():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert post.startswith("#!/bin/bash") and "set -euo pipefail" in post
    fetch = next(line for line in post.splitlines() if line.startswith("introspect-lab fetch"))
    for model in ("squeezenet1_1", "resnet18", "alexnet"):  # every classic model a notebook loads by name
        assert model in fetch
    used = set()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        # models loaded with their weights (pretrained=False builds random weights: nothing to fetch)
        used |= set(re.findall(r'load_model\(\\"(\w+)\\"(?!, pretrained=False)', nb.read_text()))
    assert used - {"efficientnet_lite0"} <= set(fetch.split()), used
    assert re.search(r"^rm -rf docs/course$", post, re.M), "the nbgrader sources (solutions) must not ship"


def test_solutions_are_not_in_the_student_tree():
    for nb in (ROOT / "notebooks").rglob("*.ipynb"):
        text = nb.read_text()
        assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text, nb
    assert not (ROOT / "notebooks" / "solutions").exists()


def _bench():
    spec = importlib.util.spec_from_file_location("bench_notebooks", ROOT / "bench" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FixedMachine:
    def measure(self) -> float:
        return 0.5

    def close(self) -> None:
        pass


def test_bench_fails_a_notebook_over_binders_2gb(tmp_path, monkeypatch, capsys):
    bench = _bench()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "notebooks.json")
    monkeypatch.setattr(bench, "Calibration", _FixedMachine)  # the real one: test_commands
    fake = {"a.ipynb": (900, 50.0), "b.ipynb": (2100, 10.0), "c.ipynb": (900, 70.0)}  # MB, CPU s
    limits = "CPU 0 only (sched_setaffinity); memory: RLIMIT_DATA 2048 MB per process"
    monkeypatch.setattr(
        bench,
        "run",
        lambda p: {
            "notebook": p.name,
            "ok": True,
            "error": "",
            "wall_s": 90.0,
            "cpu_s": fake[p.name][1],
            "peak_rss_mb": fake[p.name][0],
            "limits": limits,
        },
    )
    assert bench.main(["a.ipynb"]) == 0  # 90 s of wall on a busy machine, 50 s of the kernel's CPU: in budget
    assert bench.main(["a.ipynb", "b.ipynb"]) == 1
    out = capsys.readouterr().out
    assert "b.ipynb" in out and "over Binder's 2048 MB" in out and f"Limits: {limits}" in out
    assert bench.main(["c.ipynb"]) == 1
    assert "OVER BUDGET: 70 CPU s > 60 s" in capsys.readouterr().out


def test_the_bench_kernel_takes_binders_limits_before_the_kernel_starts(monkeypatch, tmp_path):
    """bench/binder_kernel.py: one CPU, RLIMIT_DATA at the cap, then exec ipykernel (nothing applied here)."""
    spec = importlib.util.spec_from_file_location("binder_kernel", ROOT / "bench" / "binder_kernel.py")
    kernel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernel)
    calls = []
    monkeypatch.setattr(kernel.os, "sched_setaffinity", lambda pid, cpus: calls.append(("cpus", cpus)))
    monkeypatch.setattr(kernel.resource, "setrlimit", lambda what, lim: calls.append((what, lim)))
    monkeypatch.setattr(kernel.os, "execv", lambda exe, argv: calls.append(("exec", argv[1:])))
    monkeypatch.setattr(kernel.os, "environ", {"BINDER_BENCH_REPORT": str(tmp_path / "how.txt")})
    kernel.main(["-f", "conn.json"])
    assert calls[0][0] == "cpus" and len(calls[0][1]) == 1
    assert calls[1] == (kernel.resource.RLIMIT_DATA, (2048 * 2**20, 2048 * 2**20))
    assert calls[2] == ("exec", ["-m", "ipykernel_launcher", "-f", "conn.json"])
    assert kernel.os.environ["OMP_NUM_THREADS"] == "1"
    assert "RLIMIT_DATA 2048 MB" in (tmp_path / "how.txt").read_text()
