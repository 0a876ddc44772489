"""Exercises: student versions generated from solution notebooks, and self-checks.

Instructors write one notebook per exercise set in ``notebooks/solutions/``
with the answers in place, marked as nbgrader does:

.. code-block:: python

    def gram(features):
        ### BEGIN SOLUTION
        f = features.flatten(2)
        return f @ f.transpose(1, 2)
        ### END SOLUTION

``introspect-lab exercises`` writes the student version to
``notebooks/exercises/`` with each solution replaced by
``# YOUR CODE HERE`` / ``raise NotImplementedError()`` and every
``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` block removed.
Markdown answers go between ``<!-- BEGIN SOLUTION -->`` and
``<!-- END SOLUTION -->``. ``introspect-lab exercises --check`` (run by the
tests) fails when the committed student versions differ from what the
solutions generate.

Students call :func:`check` in their notebook to compare an answer with
the library's reference, using the relative error of the cs231n
assignments, ``max|x − y| / max(1e-8, |x| + |y|)``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import torch

__all__ = ["rel_error", "check", "student_source", "student_notebook", "generate"]

SOLUTION_RE = re.compile(
    r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
    re.S | re.M,
)
HIDDEN_RE = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.S | re.M
)
MD_SOLUTION_RE = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
STUDENT_CODE = "{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n"
STUDENT_TEXT = "*YOUR ANSWER HERE*"


def rel_error(x, y) -> float:
    """``max|x − y| / max(1e-8, |x| + |y|)``, elementwise maximum (cs231n's check)."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"Shapes differ: your answer has shape {x.shape}, the reference {y.shape}.")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check(name: str, answer, reference, tol: float = 1e-3) -> bool:
    """Print whether ``answer`` matches ``reference`` (relative error below ``tol``) and return it.

    A wrong shape is reported as such, with both shapes, instead of an error
    from deep inside numpy.
    """
    if answer is None:
        print(f"✗ {name}: your function returned None. Did you forget `return`?")
        return False
    try:
        err = rel_error(answer, reference)
    except ValueError as exc:
        print(f"✗ {name}: {exc}")
        return False
    ok = err < tol
    mark = "✓" if ok else "✗"
    hint = "" if ok else " Compare your formula with the one in the markdown above."
    print(f"{mark} {name}: relative error {err:.1e} ({'below' if ok else 'above'} {tol:.0e}).{hint}")
    return ok


def student_source(source: str, cell_type: str = "code") -> str:
    """One cell's source with its solutions replaced and hidden tests removed."""
    if cell_type == "markdown":
        return MD_SOLUTION_RE.sub(STUDENT_TEXT, source)
    out = HIDDEN_RE.sub("", source)
    out = SOLUTION_RE.sub(lambda m: STUDENT_CODE.format(indent=m.group("indent")), out)
    return out if source.endswith("\n") else out.rstrip("\n")


def student_notebook(nb: dict) -> dict:
    """The student version of a solution notebook (a JSON dict), outputs cleared."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = student_source(src, cell["cell_type"])
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def generate(solutions: str | Path, exercises: str | Path, check_only: bool = False) -> list[Path]:
    """Write (or with ``check_only``, compare) the student version of every solution notebook.

    Returns the student notebooks that were out of date (written, or which
    would be written). Student notebooks with no solution are reported too.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise FileNotFoundError(f"No solutions folder at {solutions}.")
    stale = []
    expected_names = set()
    for src in sorted(solutions.glob("*.ipynb")):
        expected_names.add(src.name)
        text = _dump(student_notebook(json.loads(src.read_text())))
        dest = exercises / src.name
        if not dest.exists() or dest.read_text() != text:
            stale.append(dest)
            if not check_only:
                exercises.mkdir(parents=True, exist_ok=True)
                dest.write_text(text)
    if exercises.is_dir():
        stale += [p for p in sorted(exercises.glob("*.ipynb")) if p.name not in expected_names]
    return stale
