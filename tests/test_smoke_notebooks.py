"""Smoke run: every lecture notebook, end to end, at random weights, in the classroom's cache states.

The switch is ``INTROSPECT_LAB_SMOKE_MODEL`` (see :mod:`introspect_lab.config`):
``load_model`` then builds an architecture with random weights whatever a
notebook asks for, and prints so, naming the model the request resolved to.
Each notebook runs top to bottom in fast mode, offline, in its worker's shared kernel
(:class:`SharedKernel`: namespace emptied and environment set before each run; the
fresh-kernel run of every notebook is nbval's). The run fails on errors only: outputs
are not compared, and checks whose claim needs trained weights print that they were
skipped (``config.needs_trained_weights``).

The classroom states (:data:`introspect_lab.classroom.STATES`) are rehearsed with
dataset caches in their real layout (``tests/fake_caches.py``, tiny) and
``INTROSPECT_LAB_SMOKE_CACHED`` for the classic models. To stay within the suite's
time budget, a notebook runs in a cached state only where :func:`classroom.plan`
says its model or data choice differs from every state already run, in the order
nothing cached, Binder (what ``binder/postBuild`` fetches, parsed from it), ``make
fetch`` (parsed from the Makefile); each notebook runs at least twice:

- the notebooks whose choices do not change with the cache (03, 04, 06, 07, 08, 14;
  ``classroom.depends_on_cache``) run with nothing cached, on SqueezeNet 1.1 and
  on ResNet-18; :func:`test_the_other_notebooks_never_touch_the_caches` shows from
  their code that nothing they call reads a dataset or a classic model's cache;
- the others run with nothing cached on SqueezeNet 1.1, then once per further
  distinct plan: 00, 01, 02, 05, 09, 11, 13 on Binder (``make fetch`` changes nothing
  for them), 10 after ``make fetch`` only (Binder has no Imagewoof: its plan is the
  nothing-cached one), 12 in both. Where the state makes a notebook load a
  classic model, ``INTROSPECT_LAB_SMOKE_MODEL=as-chosen`` builds that very model at
  random weights (AlexNet in notebook 13 on Binder); otherwise the run is on
  ResNet-18, keeping that architecture's coverage.

The nothing-cached state on the real bundled model is the nbval run of ``notebooks/``.
Every run checks the printed choices (``Data (purpose): ...`` lines and the model
each ``load_model`` resolved to) against :func:`introspect_lab.classroom.plan`.
Each notebook is its own test class, so that pytest-xdist's ``--dist loadscope``
spreads them over workers (and each worker builds the caches once, about 0.2 s).
On this machine the shared kernel (with smaller fast-mode data in 11 and 12) took the 34 runs from
633 s to 392 s of test time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from fake_caches import binder_fetch, build_cache, make_fetch

from introspect_lab import classroom

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE_MODELS = ["squeezenet1_1", "resnet18"]
STATE = {s.name: s for s in classroom.STATES}

ENV = {
    "INTROSPECT_LAB_FAST": "1",
    "INTROSPECT_LAB_OFFLINE": "1",
    "INTROSPECT_LAB_PROGRESS": "0",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
}
SMOKE_VARS = ("INTROSPECT_LAB_SMOKE_MODEL", "INTROSPECT_LAB_SMOKE_CACHED", "INTROSPECT_LAB_DATA")


def _printed(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
    return "".join(text)


class SharedKernel:
    """One kernel per pytest worker for all its smoke runs: torch and torchvision are imported once, not per
    run.

    Each run starts with a cell that empties the namespace (``%reset -f``), closes figures, returns
    to the notebooks folder and sets the run's environment (read at call time by
    :mod:`introspect_lab.config`), so a notebook cannot lean on names an earlier run left. What
    only a fresh kernel shows (every import a notebook needs) is the nbval run's to check; a
    kernel that died is replaced before the next run.
    """

    def __init__(self) -> None:
        self.km = None

    def kernel(self):
        from jupyter_client import AsyncKernelManager
        from nbclient.util import run_sync

        if self.km is None or not run_sync(self.km.is_alive)():
            self.close()
            self.km = AsyncKernelManager(kernel_name="python3")
            env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
            run_sync(self.km.start_kernel)(env=env, cwd=str(ROOT / "notebooks"))
        return self.km

    def close(self) -> None:
        from nbclient.util import run_sync

        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)
            self.km = None


def _setup_cell(env: dict[str, str]) -> nbformat.NotebookNode:
    unset = [k for k in SMOKE_VARS if k not in env]
    return nbformat.v4.new_code_cell(  # the one reset, last, empties the earlier run's names and these
        "import os\nimport matplotlib.pyplot\n"
        f"matplotlib.pyplot.close('all')\nos.chdir({str(ROOT / 'notebooks')!r})\n"
        f"os.environ.update({env!r})\nfor k in {unset!r}:\n    os.environ.pop(k, None)\n"
        "%reset -f"
    )


def run_smoke(path: Path, model: str, shared: SharedKernel, **env: str) -> str:
    """Execute ``path`` with ``INTROSPECT_LAB_SMOKE_MODEL=model`` (and ``env``); return everything it
    printed.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, _setup_cell({**ENV, "INTROSPECT_LAB_SMOKE_MODEL": model, **env}))
    client = NotebookClient(
        nb,
        km=shared.kernel(),
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the traceback without terminal colours
        pytest.fail(f"{path.name} with {model}, {env} failed:\n{plain}", pytrace=False)
    return _printed(nb)


@pytest.fixture(scope="session")
def shared_kernel():
    shared = SharedKernel()
    yield shared
    shared.close()


@pytest.fixture(scope="session")
def state_dirs(tmp_path_factory) -> dict[str, Path]:
    """A data folder per classroom state, holding the datasets that state has fetched."""
    root = tmp_path_factory.mktemp("classroom")
    return {
        s.name: build_cache(root / s.name.replace(" ", "_"), sorted(s.datasets)) for s in classroom.STATES
    }


def printed_choices(printed: str) -> tuple[list[str], list[str]]:
    """The models each ``load_model`` resolved to, and the ``Data (...)`` lines, in order."""
    used = re.findall(
        r"^Smoke run \(INTROSPECT_LAB_SMOKE_MODEL=[\w-]+\): "
        r"\w+ with random weights instead of (\w+)\.$",
        printed,
        re.M,
    )
    return used, re.findall(r"^Data \(.+$", printed, re.M)


def check_choices(notebook: str, printed: str, state: classroom.State) -> None:
    used, data = printed_choices(printed)
    want_models, want_data = classroom.plan(notebook, state)
    assert used == list(want_models), (
        f"{notebook} in the {state.name} state loaded {used}, expected {want_models}"
    )
    assert data == [str(d) for d in want_data], f"{notebook} in the {state.name} state printed {data}"


def _arch(notebook: str, state: classroom.State) -> str:
    """``as-chosen`` where the state makes the notebook load a classic model, else ResNet-18 for its
    coverage.
    """
    used = classroom.plan(notebook, state)[0]
    return "as-chosen" if set(used) - {"efficientnet_lite0"} else "resnet18"


def _runs(path: Path) -> list[tuple[str, str]]:
    """(smoke model, state) runs of a notebook: one per distinct plan (at most three), at least two."""
    nb = path.stem
    if not classroom.depends_on_cache(nb):
        return [(m, "nothing cached") for m in SMOKE_MODELS]
    runs, seen = [("squeezenet1_1", "nothing cached")], [classroom.plan(nb, STATE["nothing cached"])]
    for state in (STATE["Binder"], STATE["make fetch"]):
        if classroom.plan(nb, state) not in seen:  # else an earlier run took the same choices
            seen.append(classroom.plan(nb, state))
            runs.append((_arch(nb, state), state.name))
    return runs


def _smoke_class(path: Path) -> type:
    @pytest.mark.parametrize("model, state", _runs(path))
    def test_runs_end_to_end(self, model, state, state_dirs, shared_kernel):
        s = STATE[state]
        printed = run_smoke(
            path,
            model,
            shared_kernel,
            INTROSPECT_LAB_DATA=str(state_dirs[state]),
            INTROSPECT_LAB_SMOKE_CACHED=",".join(sorted(s.models)),
        )
        if "load_model" in path.read_text():
            assert f"Smoke run (INTROSPECT_LAB_SMOKE_MODEL={model})" in printed or (
                f"Model: {model} " in printed and "random weights" in printed
            ), f"{path.name} did not announce the smoke model"
        check_choices(path.stem, printed, s)

    name = "TestSmoke_" + path.stem
    return type(
        name, (), {"test_runs_end_to_end": test_runs_end_to_end, "__doc__": f"Smoke run of {path.name}."}
    )


for _path in NOTEBOOKS:
    globals()["TestSmoke_" + _path.stem] = _smoke_class(_path)


def test_every_lecture_notebook_is_smoked():
    assert len(NOTEBOOKS) >= 9
    assert all(f"TestSmoke_{p.stem}" in globals() for p in NOTEBOOKS)
    assert sorted(classroom.NOTEBOOKS) == [p.stem for p in NOTEBOOKS], (
        "classroom.NOTEBOOKS lists every notebook"
    )


def test_the_rehearsed_states_are_what_binder_and_make_fetch_fetch():
    assert (STATE["Binder"].models, STATE["Binder"].datasets) == binder_fetch()
    assert (STATE["make fetch"].models, STATE["make fetch"].datasets) == make_fetch()
    assert STATE["nothing cached"].models == STATE["nothing cached"].datasets == frozenset()


# Everything through which a notebook's choice can depend on the cache: the dataset
# registry and its pools, the classroom's choices, the experiments that load data (not
# texture_models, which reads only bundled photos and its committed results), and
# classic models requested by name (a notebook's MODEL line names the bundled model).
CACHE_READERS = re.compile(
    r"\b(datasets|image_pool|imagenette_pool|offline_pool|use_data|is_cached|classroom"
    r"|experiments(?! import texture_models\b)|first_layer_filters)\b"
    r'|load_model\(\s*"(?!efficientnet_lite0"|\w+", pretrained=False)'
)


def test_the_other_notebooks_never_touch_the_caches():
    """Notebooks run in one state only use nothing a state changes: checked on their code."""
    for path in NOTEBOOKS:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        readers = sorted({m.group(0) for m in CACHE_READERS.finditer(code)})
        if classroom.depends_on_cache(path.stem):
            assert readers, f"{path.name} is run in every state but calls nothing that reads a cache"
        else:
            assert not readers, f"{path.name} reads a cache ({readers}): declare it in classroom.NOTEBOOKS"
        for purpose in classroom.NOTEBOOKS[path.stem].data:
            assert f'use_data("{purpose}")' in code or purpose in ("style shift", "novelty"), (
                path.name,
                purpose,
            )


def test_the_shared_kernel_keeps_runs_apart(tmp_path):
    """Each run sees only its own environment and names, and a dead kernel is replaced."""
    shared = SharedKernel()
    try:
        notebooks = {}
        for name, code in [
            (
                "env",
                "import os\nx = 1\n"
                "print(os.environ['INTROSPECT_LAB_SMOKE_MODEL'], os.environ.get('INTROSPECT_LAB_DATA'))",
            ),
            ("leak", "print(x)"),
            ("die", "import os\nos._exit(1)"),
        ]:
            notebooks[name] = tmp_path / f"{name}.ipynb"
            nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), notebooks[name])
        assert run_smoke(notebooks["env"], "resnet18", shared, INTROSPECT_LAB_DATA="/d").split() == [
            "resnet18",
            "/d",
        ]
        assert run_smoke(notebooks["env"], "alexnet", shared).split() == ["alexnet", "None"]
        with pytest.raises(pytest.fail.Exception, match="NameError"):
            run_smoke(notebooks["leak"], "resnet18", shared)
        with pytest.raises(Exception, match="(?i)dead|died"):
            run_smoke(notebooks["die"], "resnet18", shared)
        assert run_smoke(notebooks["env"], "vgg16", shared).split() == ["vgg16", "None"]
    finally:
        shared.close()
