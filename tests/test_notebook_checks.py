"""Every notebook check can fail: falsify each one in a mutated copy and see nbval fail.

A notebook check is a ``# NBVAL_CHECK_OUTPUT`` cell; ``pytest --nbval-lax``
compares what it prints with the reference output stored in the notebook
(refreshed with ``python tests/nbchecks.py NOTEBOOK``). For every check cell
of every notebook, and every line it prints, a mutated copy of the notebook
keeps that cell (its marker, stored output and execution count) but makes it
print the falsified line, as it would if the claim were false (``True`` →
``False``; ``top-1 is espresso`` → ``top-1 is not-espresso``). The copy drops
the other code cells, so it runs in a second: the full notebooks already run
under nbval in the same suite, which shows that the real cells print exactly
the stored reference.

One ``pytest --nbval-lax`` subprocess runs all the copies, in one kernel. Each falsified cell
must fail with "Cell outputs differ", and an unmutated control printing the
stored text must pass, so the failure comes from the comparison and from
nothing else. A last cell shows why the stored output matters: a falsified
check stored without an output passes.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbchecks
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p
    for p in (ROOT / "notebooks").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts and nbchecks.check_cells(json.loads(p.read_text()))
)


def _cases() -> list[tuple[str, int, int, str]]:
    """(notebook, cell index, printed line number, line) for every line of every check."""
    cases = []
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for i in nbchecks.check_cells(nb):
            lines = nbchecks.stored_text(nb["cells"][i]).splitlines() or [""]
            cases += [(path.name, i, k, line) for k, line in enumerate(lines)]
    return cases


CASES = _cases()


def _printing(text: str, like, tag: str) -> nbformat.NotebookNode:
    """A copy of check cell ``like`` (marker, stored output, count) whose code prints ``text``."""
    cell = copy.deepcopy(like)
    cell.id = f"{like.get('id', 'cell')}-{tag}"[:64]
    cell.source = f"{nbchecks.MARKER}\nprint({text!r}, end='')"
    return cell


def _mutated_cells(path: Path) -> tuple[list, list]:
    """The notebook cut to its check cells: a control and one falsified copy per printed line.

    Returns the cells and, for each, what nbval must do with it: ``("pass", key)`` or
    ``("fail", key)`` with key = (notebook, (cell index, line number or None)).
    """
    nb = nbformat.read(path, as_version=4)
    cells, expect = [], []
    for i in nbchecks.check_cells(nb):
        check = nb.cells[i]
        text = nbchecks.stored_text(check)
        cells.append(_printing(text, check, "control"))
        expect.append(("pass", (path.name, (i, None))))
        lines = text.splitlines(keepends=True) or [""]
        for k, line in enumerate(lines):
            body = line.rstrip("\n")
            falsified = nbchecks.falsify_line(body)
            assert falsified != body
            mutated = "".join(lines[:k] + [falsified + line[len(body) :]] + lines[k + 1 :])
            cells.append(_printing(mutated, check, f"falsified-{k}"))
            expect.append(("fail", (path.name, (i, k))))
    # The hazard the stored outputs remove: a falsified check with nothing stored compares nothing.
    unstored = _printing("False\n", nb.cells[nbchecks.check_cells(nb)[0]], "unstored")
    unstored.outputs, unstored.execution_count = [], None
    cells.append(unstored)
    expect.append(("pass", (path.name, ("unstored", None))))
    return cells, expect


@pytest.fixture(scope="module")
def nbval_results(tmp_path_factory) -> dict:
    """Run nbval once on the mutated copies; map (notebook, key) → (expected, outcome, message).

    The copies' cells go into one notebook, so that one kernel runs them all.
    """
    work = tmp_path_factory.mktemp("mutated")
    (work / "pytest.ini").write_text("[pytest]\n")  # keep the repository's conftest and options out
    cells, expected = [], []
    for path in NOTEBOOKS:
        more_cells, more_expected = _mutated_cells(path)
        cells += more_cells
        expected += more_expected
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    nb.cells = cells
    nbformat.write(nb, work / "mutated.ipynb")
    report = work / "report.xml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(work / "pytest.ini"),
            "--rootdir",
            str(work),
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--junitxml={report}",
            "-q",
            "mutated.ipynb",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.is_file(), f"nbval did not run:\n{proc.stdout}\n{proc.stderr}"
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        outcome = "pass" if problem is None else "fail"
        message = "" if problem is None else (problem.get("message", "") + (problem.text or ""))
        outcomes[int(case.get("name").split()[-1])] = (outcome, message)  # "Cell 12"
    assert len(outcomes) == len(expected), f"nbval ran {len(outcomes)} cells, expected {len(expected)}"
    return {key: (want, *outcomes[n]) for n, (want, key) in enumerate(expected)}


def test_every_lecture_notebook_has_a_check_that_can_fail():
    """Each lecture notebook checks its claim: a stored-output check cell (falsified below) or an assert."""
    lecture = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(lecture) >= 9
    for path in lecture:
        nb = json.loads(path.read_text())
        asserts = any(
            c["cell_type"] == "code" and re.search(r"^\s*assert ", "".join(c["source"]), re.M)
            for c in nb["cells"]
        )
        assert nbchecks.check_cells(nb) or asserts, f"{path.name} has no check cell and no assert"
    assert len(CASES) >= len(NOTEBOOKS)


@pytest.mark.parametrize(("notebook", "cell", "line", "text"), CASES, ids=lambda v: str(v)[:40])
def test_falsified_check_fails(nbval_results, notebook, cell, line, text):
    want, outcome, message = nbval_results[(notebook, (cell, line))]
    assert outcome == "fail", (
        f"{notebook} cell {cell}: a copy printing {nbchecks.falsify_line(text)!r} passed"
    )
    assert "Cell outputs differ" in message, message


@pytest.mark.parametrize("notebook", sorted({c[0] for c in CASES}))
def test_unmutated_controls_pass(nbval_results, notebook):
    controls = {k: v for k, v in nbval_results.items() if k[0] == notebook and k[1][1] is None}
    assert controls
    for key, (want, outcome, message) in controls.items():
        assert outcome == want == "pass", f"{key}: {message}"


def _printed_values(source: str) -> list[list[ast.expr]]:
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))
    return [
        node.args
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checks_print_computed_values(path):
    """A check that prints a constant (``print("ok:", True)``) could never fail."""
    nb = json.loads(path.read_text())
    for i in nbchecks.check_cells(nb):
        calls = _printed_values("".join(nb["cells"][i]["source"]))
        assert calls, f"{path.name} cell {i} prints nothing"
        for args in calls:
            assert any(not isinstance(a, ast.Constant) for a in args), (
                f"{path.name} cell {i} prints only constants: {[ast.unparse(a) for a in args]}"
            )
