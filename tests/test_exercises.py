"""Student notebooks are generated from the solutions, and the self-checks judge correctly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from introspect_lab.cli import main
from introspect_lab.exercises import check, generate, rel_error, student_notebook, student_source

ROOT = Path(__file__).resolve().parents[1]


def test_solution_blocks_are_replaced_keeping_indentation():
    src = (
        "def f(x):\n"
        "    ### BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    return y\n"
        "    ### END SOLUTION\n"
        "\n"
        "### BEGIN HIDDEN TESTS\n"
        "assert f(1) == 2\n"
        "### END HIDDEN TESTS\n"
        "print(f)\n"
    )
    assert student_source(src) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)\n"
    )


def test_markdown_answers_are_hidden():
    md = "Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->"
    assert student_source(md, "markdown") == "Why?\n*YOUR ANSWER HERE*"


def test_student_notebook_has_no_outputs_and_no_answers():
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["x = 1\n", "### BEGIN SOLUTION\n", "x = 2\n", "### END SOLUTION\n"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "2"}],
                "execution_count": 3,
                "metadata": {},
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out = student_notebook(nb)
    assert out["cells"][0]["outputs"] == [] and out["cells"][0]["execution_count"] is None
    assert "x = 2" not in out["cells"][0]["source"]
    assert nb["cells"][0]["execution_count"] == 3  # the solution is untouched


def test_generate_and_check(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    nb = {"cells": [{"cell_type": "code", "source": "### BEGIN SOLUTION\na = 1\n### END SOLUTION\n",
                     "outputs": [], "execution_count": None, "metadata": {}}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    (sol / "ex.ipynb").write_text(json.dumps(nb))
    assert generate(sol, ex, check_only=True) == [ex / "ex.ipynb"]
    assert generate(sol, ex) == [ex / "ex.ipynb"]
    assert generate(sol, ex, check_only=True) == []
    (ex / "ex.ipynb").write_text("{}")  # a hand edit to a generated file is caught
    assert generate(sol, ex, check_only=True) == [ex / "ex.ipynb"]


def test_committed_student_notebooks_match_their_solutions(capsys):
    solutions = ROOT / "notebooks" / "solutions"
    code = main(
        [
            "exercises",
            "--check",
            "--solutions",
            str(solutions),
            "--out",
            str(ROOT / "notebooks" / "exercises"),
        ]
    )
    assert code == 0, capsys.readouterr().out
    assert list(solutions.glob("*.ipynb")), "there is at least one exercise set"


def test_rel_error_and_check(capsys):
    x = torch.tensor([1.0, 2.0, 3.0])
    assert rel_error(x, x) == 0
    assert rel_error(np.array([1.0]), np.array([3.0])) == 0.5
    assert check("same", x, x.clone())
    assert not check("off", x * 1.1, x)
    assert not check("shape", x[:2], x)
    assert not check("none", None, x)
    out = capsys.readouterr().out
    assert "✓ same" in out and "✗ off" in out and "shape (2,)" in out and "forget `return`" in out
