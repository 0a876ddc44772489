"""Notebook check cells: find them, store their reference output, and falsify them.

A *check cell* is a code cell whose source contains ``# NBVAL_CHECK_OUTPUT``.
``pytest --nbval-lax`` compares what such a cell prints with the output stored
in the notebook, so the stored output is the reference and a check stored
without one compares nothing (nbval also skips a cell whose
``execution_count`` is ``None``). Check outputs are the only outputs a
notebook keeps.

Store (or refresh) the reference outputs of notebooks after editing them::

    PYTHONPATH=$PWD python tests/nbchecks.py notebooks/00_welcome.ipynb [...]

This executes each notebook top to bottom in fast mode (offline, no progress
bars, one thread), keeps the outputs of the check cells, and strips every
other output and execution count.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path

import nbformat

MARKER = "# NBVAL_CHECK_OUTPUT"

# What a stored check output must not contain: it has to print the same on every run and machine.
UNSTABLE = {
    "a memory address": re.compile(r"0x[0-9a-fA-F]{6,}"),
    "a timing": re.compile(r"\b\d+(\.\d+)?\s?(s|ms|µs|sec|seconds|it/s|s/it)\b"),
}

RUN_ENV = {
    "INTROSPECT_LAB_FAST": "1",
    "INTROSPECT_LAB_OFFLINE": "1",
    "INTROSPECT_LAB_PROGRESS": "0",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
}


def is_check_cell(cell) -> bool:
    """True for a code cell marked ``# NBVAL_CHECK_OUTPUT``."""
    return cell.get("cell_type") == "code" and MARKER in "".join(cell.get("source", ""))


def check_cells(nb) -> list[int]:
    """Indices of the check cells of a notebook (a dict or a NotebookNode)."""
    return [i for i, cell in enumerate(nb["cells"]) if is_check_cell(cell)]


def stored_text(cell) -> str:
    """Everything a check cell's stored outputs print, stream after stream."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
        else:
            data = out.get("data", {}).get("text/plain", "")
            parts.append("".join(data) if isinstance(data, list) else data)
    return "".join(parts)


_FLIP = {"True": "False", "False": "True"}


def falsify_line(line: str) -> str:
    """The line a check would print if its claim were false.

    Booleans are flipped (``True`` ↔ ``False``); a line without one (e.g.
    ``coffee: top-1 is espresso``) gets a different value after its last colon
    or ``is``.
    """
    flipped = re.sub(r"\b(True|False)\b", lambda m: _FLIP[m.group(1)], line)
    if flipped != line:
        return flipped
    m = re.search(r"^(.*(?::| is ))\s*(.+)$", line)
    if m:
        return f"{m.group(1)} not-{m.group(2).strip()}"
    return line + " (falsified)"


def store_outputs(path: Path, timeout: int = 900) -> list[str]:
    """Execute ``path`` in fast mode; keep check-cell outputs only; return the stored texts."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    metadata = copy.deepcopy(nb.metadata)
    saved = {k: os.environ.get(k) for k in RUN_ENV}
    os.environ.update(RUN_ENV)
    os.environ.setdefault("PYTHONPATH", str(path.resolve().parents[1]))
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if is_check_cell(cell):
            cell.outputs = [_clean(out) for out in _coalesce(cell.outputs)]
            if not cell.outputs:
                raise RuntimeError(f"{path.name}: a check cell printed nothing:\n{cell.source}")
            texts.append(stored_text(cell))
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata = metadata
    nbformat.write(nb, path)
    return texts


def _coalesce(outputs):
    merged = []
    for out in outputs:
        if (
            merged
            and out.get("output_type") == "stream"
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == out.get("name")
        ):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(copy.deepcopy(out))
    return merged


def _clean(out):
    if out.get("output_type") == "execute_result":
        out["metadata"] = {}
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        texts = store_outputs(Path(arg))
        print(f"{arg}: {len(texts)} check outputs stored")
        for text in texts:
            print("   ", text.rstrip().replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
