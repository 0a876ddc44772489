"""Student notebooks from nbgrader source notebooks, with nbgrader's own preprocessors.

The sources are an nbgrader course folder (``docs/course``): one
``source/ASSIGNMENT/ASSIGNMENT.ipynb`` per exercise set, with solution
cells (``### BEGIN SOLUTION`` … ``### END SOLUTION``), autograded test cells
with points and ``### BEGIN HIDDEN TESTS`` parts, and a grade id on every
graded cell. :func:`student_version` runs the preprocessors of
``nbgrader generate_assignment`` (lock cells, clear solutions and outputs,
checksums, clear hidden tests) without the gradebook database, so the
committed student versions in ``notebooks/exercises/`` are exactly what
``nbgrader generate_assignment`` releases; the tests check both.
nbgrader is a development dependency (the ``dev`` extra).
"""

from __future__ import annotations

from pathlib import Path

from ..lazy import lazy_import

P = lazy_import(
    "nbgrader.preprocessors",
    hint="Generating exercises needs nbgrader: `pip install -e '.[dev]'` (or `pip install nbgrader`).",
)

__all__ = ["student_version", "source_notebooks", "generate"]


def student_version(nb):
    """The released (student) version of an nbgrader source notebook (an ``nbformat`` node).

    The same preprocessors, in the same order, as ``nbgrader generate_assignment``
    (nbgrader 0.9), minus the header/footer and the database step.
    """
    import copy

    nb = copy.deepcopy(nb)
    resources: dict = {}
    steps = [
        P.LockCells(),
        P.ClearSolutions(),
        P.ClearOutput(),
        P.CheckCellMetadata(),
        P.ComputeChecksums(),
        P.ClearHiddenTests(),
        P.ClearMarkScheme(),
        P.ComputeChecksums(),
        P.CheckCellMetadata(),
    ]
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    return nb


def source_notebooks(course: str | Path) -> list[Path]:
    """Every ``source/ASSIGNMENT/*.ipynb`` of an nbgrader course folder, sorted."""
    course = Path(course)
    if not (course / "source").is_dir():
        raise FileNotFoundError(f"No nbgrader course at {course} (expected a source/ folder in it).")
    return sorted(p for p in (course / "source").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _dumps(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def generate(course: str | Path, out: str | Path, check_only: bool = False) -> list[Path]:
    """Write (or with ``check_only``, compare) the student version of every source notebook into ``out``.

    Returns the student notebooks that were out of date (written, or which
    would be written); student notebooks in ``out`` with no source are
    reported too.
    """
    import nbformat

    out = Path(out)
    stale: list[Path] = []
    names = set()
    for src in source_notebooks(course):
        names.add(src.name)
        text = _dumps(student_version(nbformat.read(src, as_version=4)))
        dest = out / src.name
        if not dest.exists() or dest.read_text() != text:
            stale.append(dest)
            if not check_only:
                out.mkdir(parents=True, exist_ok=True)
                dest.write_text(text)
    if out.is_dir():
        stale += [p for p in sorted(out.glob("*.ipynb")) if p.name not in names]
    return stale
