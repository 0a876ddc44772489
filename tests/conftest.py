"""Shared fixtures: the real bundled model, sample batches, and a model-unchanged check."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")
os.environ.setdefault("INTROSPECT_LAB_OFFLINE", "1")

# The real-browser suite (tests/browser) needs Chromium and runs only with `make test-browser`.
collect_ignore = [] if os.environ.get("INTROSPECT_LAB_BROWSER") else ["browser"]

from introspect_lab import load_image, load_model, sample_image  # noqa: E402
from introspect_lab.hooks import count_hooks  # noqa: E402

# Longest first. `make test` runs `--dist loadscope --no-loadscope-reorder`: xdist hands the
# scopes (a module, a test class, a notebook) to its two workers in this order, so the long
# ones start early and the many short ones fill the gaps at the end (longest-processing-time
# scheduling). xdist's own reorder, by number of tests, started the 35 smoke runs last.
LONG_FIRST = (
    "tests/test_exercises.py",  # the nbgrader round trip, about 3 minutes in one scope
    "tests/test_all_models.py",
    "tests/test_smoke_notebooks.py",
    "tests/test_story_",
    "notebooks/",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        return next((i for i, p in enumerate(LONG_FIRST) if item.nodeid.startswith(p)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: each scope keeps its own order


@pytest.fixture(scope="session")
def lite0():
    """The bundled EfficientNet-Lite0 (real ImageNet weights), loaded once per session."""
    return load_model("efficientnet_lite0", verbose=False)


@pytest.fixture(scope="session")
def chelsea(lite0):
    """skimage's chelsea (a tabby cat) as a normalised [1,3,224,224] batch."""
    return load_image(sample_image("chelsea"), lite0)


@pytest.fixture(scope="session")
def coffee(lite0):
    return load_image(sample_image("coffee"), lite0)


def model_snapshot(model: torch.nn.Module, copy: bool = True) -> dict:
    """Everything a helper must leave as it found it (``copy=False``: the live tensors, to compare with)."""
    return {
        "state": {k: v.detach().clone() if copy else v for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "modules": [type(m).__name__ for m in model.modules()],
        "hooks": count_hooks(model),
        "grads": [p.grad is None for p in model.parameters()],
    }


def assert_unchanged(before: dict, model: torch.nn.Module) -> None:
    after = model_snapshot(model, copy=False)  # a second copy of a VGG's 0.5 GB would only be compared
    for key in ("requires_grad", "training", "inplace", "modules", "hooks", "grads"):
        assert before[key] == after[key], f"model {key} changed"
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), f"parameter/buffer {k} changed"


@pytest.fixture
def unchanged():
    """Usage: ``check = unchanged(model); ...; check()`` asserts the model is as before."""

    def start(model):
        before = model_snapshot(model)
        return lambda: assert_unchanged(before, model)

    return start
