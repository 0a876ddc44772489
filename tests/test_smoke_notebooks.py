"""Smoke run: every lecture notebook, end to end, at random weights, in the classroom's cache states.

The switch is ``INTROSPECT_LAB_SMOKE_MODEL`` (see :mod:`introspect_lab.config`):
``load_model`` then builds an architecture with random weights whatever a
notebook asks for, and prints so, naming the model the request resolved to.
Each notebook runs top to bottom in a fresh kernel in fast mode, offline. The
run fails on errors only: outputs are not compared, and checks whose claim
needs trained weights print that they were skipped (``config.needs_trained_weights``).

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
"""

from __future__ import annotations

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


def _printed(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
    return "".join(text)


def run_smoke(path: Path, model: str, monkeypatch, **env: str) -> str:
    """Execute ``path`` with ``INTROSPECT_LAB_SMOKE_MODEL=model`` (and ``env``); return everything it printed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    for key, value in {**ENV, "INTROSPECT_LAB_SMOKE_MODEL": model, **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        shutdown_kernel="immediate",  # a graceful shutdown waits seconds for nothing a test needs
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the traceback without terminal colours
        pytest.fail(f"{path.name} with {model}, {env} failed:\n{plain}", pytrace=False)
    return _printed(nb)


@pytest.fixture(scope="session")
def state_dirs(tmp_path_factory) -> dict[str, Path]:
    """A data folder per classroom state, holding the datasets that state has fetched."""
    root = tmp_path_factory.mktemp("classroom")
    return {
        s.name: build_cache(root / s.name.replace(" ", "_"), sorted(s.datasets)) for s in classroom.STATES
    }


def printed_choices(printed: str) -> tuple[list[str], list[str]]:
    """The models each ``load_model`` resolved to, and the ``Data (...)`` lines, in order."""
    used = re.findall(r"^Smoke run \(INTROSPECT_LAB_SMOKE_MODEL=[\w-]+\): \w+ with random weights instead of (\w+)\.$",
                      printed, re.M)  # fmt: skip
    return used, re.findall(r"^Data \(.+$", printed, re.M)


def check_choices(notebook: str, printed: str, state: classroom.State) -> None:
    used, data = printed_choices(printed)
    want_models, want_data = classroom.plan(notebook, state)
    assert used == list(want_models), (
        f"{notebook} in the {state.name} state loaded {used}, expected {want_models}"
    )
    assert data == [str(d) for d in want_data], f"{notebook} in the {state.name} state printed {data}"


def _arch(notebook: str, state: classroom.State) -> str:
    """``as-chosen`` where the state makes the notebook load a classic model, else ResNet-18 for its coverage."""
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
    def test_runs_end_to_end(self, model, state, state_dirs, monkeypatch):
        s = STATE[state]
        printed = run_smoke(path, model, monkeypatch, INTROSPECT_LAB_DATA=str(state_dirs[state]),
                            INTROSPECT_LAB_SMOKE_CACHED=",".join(sorted(s.models)))  # fmt: skip
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
# registry and its pools, the classroom's choices, the experiments that load data, and
# classic models requested by name (a notebook's MODEL line names the bundled model).
CACHE_READERS = re.compile(
    r"\b(datasets|image_pool|imagenette_pool|offline_pool|use_data|is_cached|classroom|experiments"
    r"|first_layer_filters)\b"
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
