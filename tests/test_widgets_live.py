"""The live optimisation widget: a slider change gives a new preview; stop leaves no thread or hook."""

from __future__ import annotations

import threading
import time

import ipywidgets as W
import pytest

from introspect_lab.hooks import count_hooks
from introspect_lab.synthesis import visualize_class
from introspect_lab.widgets import LiveOptimization


def _wait_for(cond, timeout=60.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_slider_change_updates_preview_and_cleans_up(lite0, unchanged):
    check = unchanged(lite0)
    threads_before = set(threading.enumerate())
    l2 = W.FloatLogSlider(value=1e-3, base=10, min=-5, max=-1, description="λ")
    jitter = W.IntSlider(value=4, min=0, max=16, description="jitter")
    live = LiveOptimization(
        lambda **kw: visualize_class(lite0, "tabby", seed=0, **kw),
        {"l2_weight": l2, "jitter": jitter},
        size=64,
        steps=40,
        preview_size=32,
        preview_steps=6,
        every=3,
    )
    try:
        _drive(live, jitter)
        _slider_reaches_the_objective(live, l2)
    finally:
        live.stop()
    assert not live.running
    assert live.error is None
    assert _wait_for(lambda: set(threading.enumerate()) <= threads_before, timeout=10), (
        set(threading.enumerate()) - threads_before
    )
    assert count_hooks(lite0) == 0
    check()


def _drive(live, jitter):
    assert _wait_for(lambda: live.previews > 0)
    first = bytes(live.image.value)
    assert first[:4] == b"\x89PNG"
    n = live.previews
    jitter.value = 12  # as if the student dragged the slider
    assert live.last_change is not None
    assert _wait_for(lambda: live.previews > n and live.first_preview_after_change is not None)
    assert live.params == {"l2_weight": 1e-3, "jitter": 12}
    assert bytes(live.image.value) != first


def _l2_weight_in_the_loss(result) -> float:
    """The weight the objective gave ‖I‖² at step 0: terms["l2"][0] = −λ‖I₀‖² with I₀ the stored init."""
    return -result.terms["l2"][0] / float(result.extra["init"].pow(2).sum())


def _slider_reaches_the_objective(live, l2):
    assert live.wait(120) and live.result is not None
    assert _l2_weight_in_the_loss(live.result) == pytest.approx(1e-3, rel=1e-4)
    l2.value = 1e-2  # the student drags the λ slider
    assert live.wait(120) and live.error is None
    assert _l2_weight_in_the_loss(live.result) == pytest.approx(1e-2, rel=1e-4)


def test_runs_to_completion_and_reports_errors(lite0):
    live = LiveOptimization(
        lambda **kw: visualize_class(lite0, "tabby", seed=0, **kw),
        {},
        size=32,
        steps=6,
        preview_size=32,
        every=2,
    )
    assert live.wait(60)
    assert live.result is not None and live.result.steps_done == 6 and live.status.value.startswith("done")
    bad = LiveOptimization(lambda **kw: visualize_class(lite0, "tabbbby", **kw), {}, size=32, steps=2)
    assert bad.wait(60)
    assert "tabby" in str(bad.error) and bad.status.value.startswith("error")
    with pytest.raises(TypeError, match="ipywidgets control"):
        LiveOptimization(lambda **kw: None, {"l2_weight": 0.1}, autostart=False)
    assert count_hooks(lite0) == 0
