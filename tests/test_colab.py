"""Colab: a launch link beside every Binder link, and a first cell that installs the course only where it is
missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARK = "# Colab: fetch the course once"


def _setup_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_colab_setup(path):
    assert _setup_cell(path).startswith(MARK)


def test_the_setup_cell_is_the_same_everywhere_and_a_no_op_when_installed(monkeypatch):
    cells = {_setup_cell(p) for p in NOTEBOOKS}
    assert len(cells) == 1
    ran = []
    monkeypatch.setattr("subprocess.run", lambda *a, **k: ran.append(a))
    exec(cells.pop(), {})  # introspect_lab is installed here: nothing is cloned or installed
    assert ran == []


def test_the_setup_cell_installs_where_the_package_is_missing(monkeypatch):
    import importlib.util
    import sys

    ran = []
    monkeypatch.setattr("subprocess.run", lambda args, **k: ran.append(args))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(_setup_cell(NOTEBOOKS[0]), {})
    assert ran[0][:3] == ["git", "clone", "--depth=1"] and ran[1][-2:] == ["-e", "/content/introspect-lab"]


def test_every_binder_badge_has_a_colab_badge_for_the_same_notebook():
    text = (ROOT / "README.md").read_text()
    binder = re.findall(r"mybinder\.org/v2/gh/[^)]*?notebooks/([\w]+\.ipynb)\)", text)
    colab = re.findall(r"colab\.research\.google\.com/github/[^)]*?/notebooks/([\w]+\.ipynb)\)", text)
    assert binder and binder == colab
    assert {p.name for p in NOTEBOOKS} <= set(colab)
