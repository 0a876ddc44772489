"""Every command the README and the instructor guide show is real, and the ones not run elsewhere run here.

Covered elsewhere: ``make test`` (CI, ``.ci/run``), ``make test-browser`` (CI), ``introspect-lab info`` /
``fetch`` (tests/test_cli.py), ``introspect-lab exercises`` / ``make exercises`` (tests/test_exercises.py, the
regeneration diff), ``nbgrader generate_assignment`` / ``autograde`` (tests/test_exercises.py, the round
trip), ``make bench``'s 2 GB verdict (tests/test_binder.py). Here: that each documented ``make`` target
exists, each ``introspect-lab`` sub-command parses, ``make lab`` starts a JupyterLab server, and CI runs both
suites.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from introspect_lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "teaching.md"]
BIN = Path(sys.executable).parent


def _doc_text() -> str:
    return "\n".join(p.read_text() for p in DOCS)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def test_documented_make_targets_exist():
    used = set(re.findall(r"\bmake ([a-z][\w-]*)", _doc_text()))
    assert {"lab", "test", "fetch", "exercises", "test-browser", "bench"} <= used
    missing = used - _make_targets()
    assert not missing, f"documented but not in the Makefile: {sorted(missing)}"


def test_documented_introspect_lab_commands_parse():
    parser = build_parser()
    commands = re.findall(r"(?:`|^|/)introspect-lab ((?:fetch|info|exercises)[^`\n|;)#]*)", _doc_text(), re.M)
    assert any(c.startswith("fetch") for c in commands) and any(c.startswith("info") for c in commands)
    for command in commands:
        argv = [a for a in shlex.split(command.replace("…", "")) if not a.startswith("/")]
        parser.parse_args(argv)  # exits (SystemExit) on an unknown option or sub-command


def test_documented_nbgrader_commands_exist():
    pytest.importorskip("nbgrader")
    from nbgrader.apps import NbGraderApp

    subs = set(NbGraderApp.subcommands)
    used = set(re.findall(r"(?:`|^)nbgrader ([a-z_]+)", _doc_text(), re.M))
    assert {"generate_assignment", "autograde"} <= used
    assert used <= subs, sorted(used - subs)


def test_ci_runs_the_tests_then_the_browser_suite():
    run = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in run.splitlines()]
    assert lines.index("make test") < lines.index("make test-browser")
    assert "apt-get install -y --no-install-recommends chromium" in run and "apt-get update" in run
    assert "DEBIAN_FRONTEND=noninteractive" in run
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)
    assert "tests/browser" in (ROOT / "Makefile").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_starts_jupyterlab_on_the_welcome_notebook(tmp_path):
    """``make lab``'s own recipe (from ``make -n``), with this environment's jupyter, headless on a free
    port.
    """
    port, token = _free_port(), "introspect-lab-test"
    args = f"--no-browser --port={port} --ip=127.0.0.1 --ServerApp.token={token} --ServerApp.port_retries=0"
    dry = subprocess.run(
        ["make", "-n", "lab", f"LAB_ARGS={args}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    recipe = next(line for line in dry.splitlines() if "jupyter lab" in line)
    recipe = re.sub(r"\S*/jupyter\b", str(BIN / "jupyter"), recipe)
    assert recipe.startswith("cd notebooks &&") and "00_welcome.ipynb" in recipe
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
    )
    proc = subprocess.Popen(
        recipe,
        shell=True,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/contents/00_welcome.ipynb?content=0&token={token}"
                with urllib.request.urlopen(url, timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer within 3 minutes"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=30) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _recipe(target: str) -> list[str]:
    dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return dry.replace("\\\n", " ").splitlines()


def test_make_fetch_and_exercises_call_the_cli():
    assert any(line.endswith("introspect-lab fetch --all") for line in _recipe("fetch"))
    assert any(line.endswith("introspect-lab exercises") for line in _recipe("exercises"))
    assert any(
        "tests/browser" in line and "INTROSPECT_LAB_BROWSER=1" in line for line in _recipe("test-browser")
    )


def test_fetch_all_offline_reports_every_name_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from introspect_lab import datasets, models
    from introspect_lab.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    assert main(["fetch", "--all"]) == 1
    err = capsys.readouterr().err
    for name in [n for n, s in models.MODELS.items() if not s.bundled] + list(datasets.DATASETS):
        assert f"{name}: FAILED" in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert main(["info", "--verify"]) == 0


def test_bench_notebooks_reports_wall_time_and_peak_rss(tmp_path, monkeypatch, capsys):
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("bench_notebooks", ROOT / "bench" / "notebooks.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results.json")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = bytearray(50 * 2**20)")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    assert bench.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "tiny.ipynb" in out and "peak RSS" in out and "kernel CPU" in out and "machine" in out
    import json

    result = json.loads((tmp_path / "results.json").read_text())["tiny.ipynb"]
    assert result["ok"] and result["peak_rss_mb"] >= 50
    # the machine's speed before and after: the fixed workload's CPU seconds, in the table too
    before, after = result["calibration_s"]
    assert 0 < before < 30 and 0 < after < 30 and f"{before}/{after} s" in out
