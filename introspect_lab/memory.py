"""Give freed memory back to the system after each notebook cell (Linux, glibc).

PyTorch's CPU tensors come from glibc's ``malloc``. After a large backward pass
or a batch of images, glibc keeps most of the freed memory in its heaps instead
of returning it, so a kernel's resident size only ever grows: notebook 03 held
about 1 GB after its first attribution cell although its live data was 0.7 GB.
On Binder (2 GB) that is the difference between a kernel that lives and one that
is killed. After every cell the hook calls glibc's ``malloc_trim(0)``, which
returns the free pages (a few ms; up to 60 ms after a large cell); after a cell
that ran for more than :data:`MIN_SECONDS` it first collects reference cycles
(torch.fx graph copies are one; a collection costs 0.1–0.2 s). Elsewhere
(macOS, Windows, musl) the hook is not installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import time

__all__ = ["MIN_SECONDS", "release_memory", "trim_after_cells"]

#: Cells shorter than this (seconds) are followed by the trim only, without a garbage collection.
MIN_SECONDS = 0.5

_installed: set[int] = set()


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_memory(collect: bool = True) -> bool:
    """Collect reference cycles (``collect``), then return free heap memory to the system; True if trimmed.

    Source: glibc ``malloc_trim(3)``; Python's ``gc.collect``.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def trim_after_cells(shell=None) -> bool:
    """Register :func:`release_memory` after every notebook cell (with a collection after long ones).

    ``shell`` defaults to the running IPython kernel; outside one, or without glibc, nothing
    happens and False is returned. Registering twice in one kernel is a no-op (True).
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or _malloc_trim() is None:
        return False
    if id(shell) in _installed:
        return True
    started = [time.perf_counter()]

    def before(*_) -> None:
        started[0] = time.perf_counter()

    def after(*_) -> None:
        release_memory(collect=time.perf_counter() - started[0] > MIN_SECONDS)

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    _installed.add(id(shell))
    return True
