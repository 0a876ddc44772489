"""Freed memory goes back to the system after long notebook cells (introspect_lab.memory)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from introspect_lab import memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


@pytest.mark.skipif(memory._malloc_trim() is None, reason="glibc only")
def test_release_memory_returns_freed_heap_memory():
    """200 MB of 100 kB tensors (glibc's heap, not mmap) stay resident after del; the trim returns them."""
    tensors = [torch.ones(25_000) for _ in range(2000)]
    pin = torch.ones(10)  # keeps the heap's top in use, so free() alone cannot shrink it
    del tensors
    before = _rss_mb()
    assert memory.release_memory()
    assert _rss_mb() < before - 100, "malloc_trim returned less than half of the 200 MB freed"
    del pin


class _Events:
    def __init__(self):
        self.callbacks = {}

    def register(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)


def test_hook_collects_after_long_cells_only(monkeypatch):
    if memory._malloc_trim() is None:
        assert memory.trim_after_cells(SimpleNamespace(events=_Events())) is False
        return
    shell = SimpleNamespace(events=_Events())
    calls = []
    monkeypatch.setattr(memory, "release_memory", lambda collect: calls.append(collect))
    assert memory.trim_after_cells(shell) is True
    assert memory.trim_after_cells(shell) is True  # once per shell
    assert [len(v) for v in shell.events.callbacks.values()] == [1, 1]
    (before,), (after,) = shell.events.callbacks["pre_run_cell"], shell.events.callbacks["post_run_cell"]
    before(None)
    after(None)
    assert calls == [False]  # a short cell: the trim only
    monkeypatch.setattr(memory, "MIN_SECONDS", -1.0)
    before(None)
    after(None)
    assert calls == [False, True]  # a long one: a garbage collection first


def test_outside_a_kernel_nothing_is_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    assert memory.trim_after_cells() is False
