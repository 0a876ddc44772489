"""Package-wide options read from environment variables (model settings: :mod:`.settings`).

``INTROSPECT_LAB_FAST=1``
    Fast mode for automated runs (CI, ``make test``). Notebooks call
    :func:`fast` to shrink iteration counts and image sizes; nothing else
    changes, so a notebook under test runs exactly as a student runs it,
    only shorter.
``INTROSPECT_LAB_OFFLINE=1``
    Never try the network; use only cached or bundled files.
``INTROSPECT_LAB_MIRROR=http://host/path``
    Download weights and datasets from a local mirror (a lab server holding
    the same file names) instead of their original hosts. Hashes are
    checked all the same.
``INTROSPECT_LAB_PROGRESS=0``
    Hide progress bars.
``INTROSPECT_LAB_SMOKE_MODEL=squeezenet1_1``
    Smoke run: :func:`~introspect_lab.models.load_model` builds this registry
    architecture with *random* weights whatever model a notebook asks for,
    and says so. Used by the test suite to run every notebook on every
    architecture offline; checks that need trained weights are skipped (see
    :func:`needs_trained_weights`). ``as-chosen`` instead builds, at random
    weights, the model the request resolves to (the requested one when it is
    cached, else its fallback). Never set it in class.
``INTROSPECT_LAB_SMOKE_CACHED=squeezenet1_1,resnet18,alexnet``
    In a smoke run only: the classic models that count as cached, to rehearse
    a classroom whose cache holds them (Binder's, or one after ``make fetch``)
    where their weights cannot be downloaded. Unset: what is really cached.
``INTROSPECT_LAB_DATA``
    Where datasets are cached (default ``~/.cache/introspect_lab``).
    Model weights use the standard torch cache (``$TORCH_HOME``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in _TRUE


def is_fast() -> bool:
    """True when ``INTROSPECT_LAB_FAST`` is set (CI and ``make test``)."""
    return _flag("INTROSPECT_LAB_FAST")


def fast(normal: T, quick: T) -> T:
    """Return ``quick`` in fast mode and ``normal`` otherwise.

    Notebooks use it for iteration counts and sizes only, e.g.
    ``steps = fast(200, 5)``.
    """
    return quick if is_fast() else normal


def is_offline() -> bool:
    """True when ``INTROSPECT_LAB_OFFLINE`` forbids any network access."""
    return _flag("INTROSPECT_LAB_OFFLINE")


def mirror() -> str | None:
    """The download mirror from ``INTROSPECT_LAB_MIRROR``, or ``None``."""
    return os.environ.get("INTROSPECT_LAB_MIRROR") or None


def show_progress() -> bool:
    """Whether progress bars are shown (``INTROSPECT_LAB_PROGRESS``, default on).

    ``TQDM_DISABLE`` does not reach ``tqdm.auto`` in notebooks, so every
    progress bar in the package passes ``disable=not show_progress()``.
    """
    return _flag("INTROSPECT_LAB_PROGRESS", default=True)


def data_dir() -> Path:
    """The dataset cache folder (``INTROSPECT_LAB_DATA`` or ``~/.cache/introspect_lab``)."""
    root = os.environ.get("INTROSPECT_LAB_DATA")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "introspect_lab"


def weights_dir() -> Path:
    """The model-weights cache: torch's standard ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def smoke_model() -> str | None:
    """The architecture forced by ``INTROSPECT_LAB_SMOKE_MODEL`` (random weights), or ``None``."""
    value = os.environ.get("INTROSPECT_LAB_SMOKE_MODEL", "").strip()
    return value or None


AS_CHOSEN = "as-chosen"  # INTROSPECT_LAB_SMOKE_MODEL value: each request's own choice, random weights


def smoke_cached() -> frozenset[str] | None:
    """In a smoke run, the models ``INTROSPECT_LAB_SMOKE_CACHED`` declares cached; otherwise ``None``."""
    value = os.environ.get("INTROSPECT_LAB_SMOKE_CACHED")
    if smoke_model() is None or value is None:
        return None
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def needs_trained_weights(what: str) -> bool:
    """False in a smoke run (random weights), after printing that the check ``what`` is skipped.

    Notebook checks whose claim only holds for a trained network read::

        if needs_trained_weights("the cat is the top-1 class"):
            assert ...
    """
    model = smoke_model()
    if model is None:
        return True
    print(f"skipped (smoke run on {model} with random weights): {what}")
    return False


def fresh_seed() -> int:
    """A new random seed for a run given ``seed=None``, drawn from torch's global generator.

    The run keeps it (e.g. ``result.extra["seed"]``), so an image a student liked can be made again.
    """
    import torch  # here, not at the top: this module is read before torch is needed

    return int(torch.randint(0, 2**62, (1,)).item())
