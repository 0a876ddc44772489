"""The exercise sets are real nbgrader assignments: generate, release, autograde, round trip.

One nbgrader course in a temporary folder: ``nbgrader generate_assignment``
releases every set (compared byte for byte with the committed student
versions), then one ``nbgrader autograde`` call grades three students:
``solution`` (the source notebooks, full marks), ``blank`` (the released
versions untouched, zero) and ``wrong`` (one planted mistake, partial marks
with the self-check's message in the graded notebook).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from introspect_lab.cli import main
from introspect_lab.exercises import TASKS
from introspect_lab.exercises.assignments import generate, source_notebooks, student_version

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "docs" / "course"
STUDENT = ROOT / "notebooks" / "exercises"
LECTURES = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
WRONG_SET = "ex08_texture_and_style"
WRONG_LINE = ("(4 * n**2 * m**2)", "(4 * n**2)")  # the planted mistake: M² missing from the style loss
WRONG_TASK = "gram_loss"


def _sources() -> list[Path]:
    return source_notebooks(COURSE)


def _cells(path: Path):
    return nbformat.read(path, as_version=4).cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


# --- the sources are real nbgrader source notebooks -------------------------------------------


def test_every_lecture_notebook_has_an_exercise_set():
    sets = {p.parent.name for p in _sources()}
    for lecture in LECTURES:
        assert f"ex{lecture.name[:2]}_{lecture.stem[3:]}" in sets, f"no exercise set for {lecture.name}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.stem)
def test_source_notebook_structure(path):
    cells = _cells(path)
    assert path.stem == path.parent.name, "nbgrader layout: source/ASSIGNMENT/ASSIGNMENT.ipynb"
    solutions = [c for c in cells if _nbgrader(c).get("solution")]
    tests = [c for c in cells if _nbgrader(c).get("grade")]
    assert 2 <= len(solutions) <= 4, "each set has 2-4 tasks"
    assert len(tests) == len(solutions)
    ids = [_nbgrader(c)["grade_id"] for c in cells if _nbgrader(c)]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    for c in solutions:
        assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
    for c in tests:
        assert _nbgrader(c)["points"] > 0 and _nbgrader(c)["locked"]
        assert "### BEGIN HIDDEN TESTS" in c.source and "check(" in c.source
        name = c.source.split('check("', 1)[1].split('"', 1)[0]
        assert name in TASKS
    for c in cells:
        if "### BEGIN SOLUTION" in c.source or "### BEGIN HIDDEN TESTS" in c.source:
            assert _nbgrader(c), "markers outside nbgrader cells stop generate_assignment"
    lecture = f"{path.stem[2:4]}_{path.stem[5:]}.ipynb"
    assert f"](../{lecture})" in cells[0].source, "the set links its lecture notebook"


def test_student_versions_have_no_answers_and_no_hidden_tests():
    for path in _sources():
        student = STUDENT / path.name
        text = student.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "more=True" not in text
        for c in _cells(student):
            if _nbgrader(c).get("solution"):
                assert "# YOUR CODE HERE\n    raise NotImplementedError()" in c.source
        src = {c.id: c.source for c in _cells(path)}
        for c in _cells(student):  # everything outside the solutions is the same
            if not _nbgrader(c).get("solution") and not _nbgrader(c).get("grade"):
                assert c.source == src[c.id]


def test_committed_student_versions_are_up_to_date(capsys):
    code = main(["exercises", "--check", "--course", str(COURSE), "--out", str(STUDENT)])
    assert code == 0, capsys.readouterr().out


def test_generate_writes_and_catches_hand_edits(tmp_path):
    out = tmp_path / "exercises"
    assert len(generate(COURSE, out)) == len(_sources())
    assert generate(COURSE, out, check_only=True) == []
    victim = out / _sources()[0].name
    nb = json.loads(victim.read_text())
    nb["cells"][2]["source"] = "print('the answer')"
    victim.write_text(json.dumps(nb))
    assert generate(COURSE, out, check_only=True) == [victim]
    (out / "ex99_extra.ipynb").write_text("{}")
    assert out / "ex99_extra.ipynb" in generate(COURSE, out, check_only=True)


def test_student_version_replaces_solutions_with_stubs():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    meta = {
        "grade": False,
        "grade_id": "f",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION",
            metadata={"nbgrader": meta},
        )
    ]
    out = student_version(nb)
    assert out.cells[0].source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert "return x + 1" in nb.cells[0].source  # the source is untouched


def test_generation_without_metadata_fails_like_nbgrader():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")]
    with pytest.raises(RuntimeError, match="non-solution cell"):
        student_version(nb)


# --- the round trip with nbgrader's own command line -------------------------------------------


def _run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)  # nbgrader calls alembic from the same environment
    env = dict(os.environ)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")  # kernels import this tree
    env.setdefault("INTROSPECT_LAB_FAST", "1")
    env.setdefault("INTROSPECT_LAB_OFFLINE", "1")
    env.setdefault("INTROSPECT_LAB_PROGRESS", "0")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder after generate_assignment and one autograde call for three students."""
    pytest.importorskip("nbgrader")
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(COURSE / "source", root / "source")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'introspect-lab'\n"
        "c.Execute.timeout = 600\n"
        # a graceful shutdown waits seconds per notebook for nothing a grade needs (80 s of the round trip)
        "c.Execute.shutdown_kernel = 'immediate'\n"
    )
    _run_nbgrader(root, "generate_assignment", "--assignment=*", "--force")
    sets = sorted(p.name for p in (root / "source").iterdir())
    for name in sets:
        for student, origin in [("solution", root / "source"), ("blank", root / "release")]:
            dest = root / "submitted" / student / name
            dest.mkdir(parents=True)
            shutil.copy(origin / name / f"{name}.ipynb", dest)
    wrong = root / "submitted" / "wrong" / WRONG_SET
    wrong.mkdir(parents=True)
    text = (root / "source" / WRONG_SET / f"{WRONG_SET}.ipynb").read_text()
    assert text.count(json.dumps(WRONG_LINE[0])[1:-1]) == 1
    (wrong / f"{WRONG_SET}.ipynb").write_text(text.replace(WRONG_LINE[0], WRONG_LINE[1]))
    _run_nbgrader(root, "autograde", "--assignment=*", "--force")
    # the guide's last steps: grades.csv and the feedback a student reads
    _run_nbgrader(root, "export")
    _run_nbgrader(root, "generate_feedback", f"--assignment={WRONG_SET}", "--student=wrong", "--force")
    return root, sets


def _scores(root: Path) -> dict[tuple[str, str], tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {
            (a.name, sub.student.id): (sub.score, sub.max_score)
            for a in gb.assignments
            for sub in a.submissions
        }


def test_released_versions_are_the_committed_student_versions(course):
    root, sets = course
    assert sets == sorted(p.stem for p in STUDENT.glob("*.ipynb"))
    for name in sets:
        released = (root / "release" / name / f"{name}.ipynb").read_text()
        assert released == (STUDENT / f"{name}.ipynb").read_text(), f"{name}: run `introspect-lab exercises`"


def test_solutions_get_full_marks_and_blanks_get_zero(course):
    root, sets = course
    scores = _scores(root)
    for name in sets:
        score, max_score = scores[(name, "solution")]
        assert max_score > 0 and score == max_score, (name, score, max_score)
        assert scores[(name, "blank")] == (0.0, max_score), name


def test_a_planted_mistake_gets_partial_marks_and_a_useful_message(course):
    root, _ = course
    score, max_score = _scores(root)[(WRONG_SET, "wrong")]
    assert 0 < score < max_score
    graded = nbformat.read(root / "autograded" / "wrong" / WRONG_SET / f"{WRONG_SET}.ipynb", as_version=4)
    cell = next(c for c in graded.cells if _nbgrader(c).get("grade_id") == f"{WRONG_TASK}_test")
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert f"✗ {WRONG_TASK}: relative error" in text and "4 N² M²" in text, text
    assert any(o.get("ename") == "AssertionError" for o in cell.outputs)
    feedback = (root / "feedback" / "wrong" / WRONG_SET / f"{WRONG_SET}.html").read_text()
    assert f"✗ {WRONG_TASK}: relative error" in feedback


def test_grades_export(course):
    import csv

    root, sets = course
    rows = list(csv.DictReader((root / "grades.csv").open()))
    assert len(rows) == 3 * len(sets)  # one row per student and assignment, missing submissions as 0
    wrong = next(r for r in rows if r["student_id"] == "wrong" and r["assignment"] == WRONG_SET)
    assert 0 < float(wrong["score"]) < float(wrong["max_score"])


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda p: p.stem)
def test_lecture_notebook_ends_with_questions_and_its_exercise_set(lecture):
    last = nbformat.read(lecture, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Questions and exercises")
    target = f"exercises/ex{lecture.name[:2]}_{lecture.stem[3:]}.ipynb"
    assert f"]({target})" in last.source
    assert (lecture.parent / target).exists()
