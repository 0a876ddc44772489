"""Repository hygiene: stripped notebooks, environment files in step, docs that match the code."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import nbchecks
import pytest

import introspect_lab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_only_check_cells_keep_outputs(path):
    """Stored check outputs are the only stored outputs, and every check cell has one.

    nbval compares a ``# NBVAL_CHECK_OUTPUT`` cell with its stored output only when the
    cell has an execution count; without both, the check compares nothing.
    Refresh them with ``python tests/nbchecks.py NOTEBOOK``.
    """
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if not nbchecks.is_check_cell(cell):
            assert cell.get("outputs") == [], f"{path.name} cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
            continue
        where = f"{path.name} check cell {i}"
        outputs = cell.get("outputs", [])
        assert outputs, f"{where} has no stored output, so nbval compares nothing (run tests/nbchecks.py)"
        assert isinstance(cell.get("execution_count"), int), f"{where} has no execution count: nbval skips it"
        for out in outputs:
            assert out.get("output_type") == "stream" and out.get("name") == "stdout", (
                f"{where} stores a {out.get('output_type')} output; a check prints text only"
            )
        text = nbchecks.stored_text(cell)
        assert text.strip(), f"{where} stores an empty output"
        for what, pattern in nbchecks.UNSTABLE.items():
            assert not pattern.search(text), f"{where} stores {what}, which changes from run to run: {text!r}"


def test_notebooks_are_listed_in_readme():
    readme = (ROOT / "README.md").read_text()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        assert path.name in readme, f"{path.name} is missing from the README's notebook table"


def _conda_deps(path: Path) -> list[str]:
    deps, in_pip = [], False
    for line in path.read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if re.match(r"^\s+- pip:\s*$", stripped):
            in_pip = True
            continue
        m = re.match(r"^(\s*)- (.+)$", stripped)
        if m and (in_pip or len(m.group(1)) == 2):
            if m.group(2).startswith("-e "):
                continue
            deps.append(m.group(2).strip())
    return deps


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_binder_environment_matches_environment_yml():
    assert _conda_deps(ROOT / "environment.yml") == _conda_deps(ROOT / "binder" / "environment.yml")


def test_environment_covers_runtime_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conda = {_name(d) for d in _conda_deps(ROOT / "environment.yml")}
    conda_to_pip = {"pytorch-cpu": "torch"}
    conda = {conda_to_pip.get(n, n) for n in conda}
    for req in pyproject["project"]["dependencies"]:
        assert _name(req) in conda, f"{req} is in pyproject.toml but not in environment.yml"


def test_binder_scripts():
    post = (ROOT / "binder" / "postBuild").read_text()
    start = (ROOT / "binder" / "start").read_text()
    assert "set -e" in post and "introspect-lab fetch" in post
    assert "OMP_NUM_THREADS=1" in start and start.rstrip().endswith('exec "$@"')


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme.split("\n## ", 1)[0], "the first screen must show `make test`"
    assert "make lab" in readme.split("\n## ", 1)[0]
    run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", run, re.M)


def _public_functions():
    for mod_info in pkgutil.walk_packages(introspect_lab.__path__, "introspect_lab."):
        module = importlib.import_module(mod_info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj


def test_public_functions_have_docstrings():
    missing = [name for name, obj in _public_functions() if not (obj.__doc__ or "").strip()]
    assert not missing, f"public functions/classes without a docstring: {missing}"


def test_runtime_never_imports_captum():
    for path in (ROOT / "introspect_lab").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+captum", path.read_text(), re.M), path
