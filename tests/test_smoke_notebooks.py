"""Smoke run: every lecture notebook, end to end, on other registry architectures at random weights.

The switch is ``INTROSPECT_LAB_SMOKE_MODEL`` (see :mod:`introspect_lab.config`):
``load_model`` then builds that architecture with random weights whatever a
notebook asks for, and prints so. Each notebook runs top to bottom in fast mode,
offline, once per smoke model; both runs share one kernel (the first run pays
for importing torch and the library), with the namespace reset and every figure
closed in between. The run fails on errors only: outputs are not
compared, and checks whose claim needs trained weights print that they were
skipped (``config.needs_trained_weights``).

Every ``notebooks/NN_*.ipynb`` is picked up. Each notebook is its own test
class, so that pytest-xdist's ``--dist loadscope`` spreads them over workers.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE_MODELS = ["squeezenet1_1", "resnet18"]

ENV = {
    "INTROSPECT_LAB_FAST": "1",
    "INTROSPECT_LAB_OFFLINE": "1",
    "INTROSPECT_LAB_PROGRESS": "0",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
}


def _printed(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
    return "".join(text)


@pytest.fixture(scope="class")
def kernel(request):
    """One kernel for every smoke run of the class's notebook (the environment of :data:`ENV`)."""
    from nbclient import NotebookClient

    path = request.cls.path
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)
        mp.setenv("PYTHONPATH", str(ROOT))
        mp.delenv("INTROSPECT_LAB_SMOKE_MODEL", raising=False)
        client = NotebookClient(
            nbformat.v4.new_notebook(),
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            shutdown_kernel="immediate",  # a graceful shutdown waits seconds for nothing a test needs
        )
        with client.setup_kernel():
            yield client


RESET = """\
get_ipython().run_line_magic("reset", "-f")
import os, matplotlib.pyplot
matplotlib.pyplot.close("all")
os.environ["INTROSPECT_LAB_SMOKE_MODEL"] = {model!r}
"""


def run_smoke(path: Path, model: str, client) -> str:
    """Execute ``path`` in ``client``'s kernel with ``INTROSPECT_LAB_SMOKE_MODEL=model``; return what it printed."""
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(RESET.format(model=model)))
    client.nb = nb
    try:
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
    except CellExecutionError as exc:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the traceback without terminal colours
        pytest.fail(f"{path.name} with INTROSPECT_LAB_SMOKE_MODEL={model} failed:\n{plain}", pytrace=False)
    return _printed(nb)


class _Smoke:
    path: Path

    @pytest.mark.parametrize("model", SMOKE_MODELS)
    def test_runs_end_to_end(self, model, kernel):
        printed = run_smoke(self.path, model, kernel)
        if "load_model" in self.path.read_text():
            assert f"Smoke run (INTROSPECT_LAB_SMOKE_MODEL={model})" in printed or (
                f"Model: {model} " in printed and "random weights" in printed
            ), f"{self.path.name} did not announce the smoke model"


for _path in NOTEBOOKS:
    _name = "TestSmoke_" + _path.stem
    globals()[_name] = type(_name, (_Smoke,), {"path": _path, "__doc__": f"Smoke run of {_path.name}."})


def test_every_lecture_notebook_is_smoked():
    assert len(NOTEBOOKS) >= 9
    assert all(f"TestSmoke_{p.stem}" in globals() for p in NOTEBOOKS)
