"""The exercise tasks: fresh inputs, the library's answer, and what is switched off while checking.

One block per exercise set (``ex01`` … ``ex14``), in the order of the
lecture notebooks. Inputs are small and in float64, so that two correct
implementations agree to ~1e-12 and any real mistake shows as a relative
error far above the tolerance. Models are tiny CNNs with fresh random
weights: a function that only works on one network does not pass.
"""

from __future__ import annotations

from . import tasks_01_04, tasks_05_08, tasks_09_14  # noqa: F401  (each registers its tasks)
from ._common import LAYER, tiny_cnn

__all__ = ["LAYER", "tiny_cnn"]
