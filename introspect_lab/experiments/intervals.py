"""Intervals for the paper experiments, and sentences that name a winner only when the interval allows it.

* :func:`cluster_bootstrap` — a percentile bootstrap that resamples the unit that repeats
  (the source photo), not the pairs drawn from it (Field & Welsh 2007, "Bootstrapping
  clustered data"). Used for the style-shift ranks (seed 000, Table 1).
* :func:`across_partitions` — mean and Student-t interval over independent class
  partitions, each with its own fine-tuning (seed 000, Figures 4–5).
* :func:`compare` — the sentence: "A is lower than B by d [lo, hi]" only when the
  interval excludes zero, else "no difference detected at this size".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["cluster_bootstrap", "across_partitions", "compare", "fmt_interval"]


def cluster_bootstrap(
    values: Sequence[float], clusters: Sequence, *, stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """``(estimate, low, high)`` of ``stat(values)``, resampling whole clusters with replacement.

    ``values[i]`` belongs to cluster ``clusters[i]`` (e.g. the source photo of pair ``i``; for a
    paired difference pass the per-pair differences). Each replicate draws as many clusters as
    there are, with replacement, and pools their values. Percentile interval.
    """
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    if values.shape != clusters.shape or values.size == 0:
        raise ValueError(
            f"Give one cluster id per value; got {values.shape} values and {clusters.shape} ids."
        )
    ids = np.unique(clusters)
    members = [np.flatnonzero(clusters == c) for c in ids]
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        reps[b] = stat(values[np.concatenate([members[k] for k in pick])])
    a = (1 - level) / 2
    return float(stat(values)), float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def across_partitions(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student-t interval of the mean over independent partitions (one value each)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def fmt_interval(est: float, lo: float, hi: float, digits: int = 1) -> str:
    """``"est [lo, hi]"`` with ``digits`` decimals."""
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def compare(a: str, b: str, diff: tuple[float, float, float], *, better: str = "lower", digits: int = 1,
            unit: str = "") -> str:  # fmt: skip
    """One sentence about ``a − b`` (``diff`` = estimate, low, high of the difference a − b).

    Names a winner only when the interval excludes zero; ``better`` says whether lower
    (ranks) or higher (AUROC) values win.
    """
    est, lo, hi = diff
    txt = fmt_interval(est, lo, hi, digits) + unit
    if not (lo > 0 or hi < 0):
        return f"{a} vs {b}: no difference detected at this size (difference {txt}, interval includes 0)."
    a_wins = (hi < 0) == (better == "lower")
    win, lose = (a, b) if a_wins else (b, a)
    return f"{win} beats {lose} (difference {a} − {b} = {txt}, interval excludes 0)."
