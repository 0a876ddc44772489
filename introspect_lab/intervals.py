"""Intervals for comparisons, and sentences that name a winner only when the interval allows it.

One function per statistic:

* :func:`paired_difference` — a paired percentile bootstrap of the difference between two
  methods scored on the *same* units (test examples, or test examples within seeds), keeping
  the pairs together (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13).
  With several seeds (clusters) it resamples seeds first and then examples within each drawn
  seed, so the interval also carries the spread between training runs.
* :func:`cluster_bootstrap` — a percentile bootstrap that resamples the unit that repeats
  (the source photo), not the pairs drawn from it (Field & Welsh 2007, "Bootstrapping
  clustered data"). Used for the style-shift ranks (seed 000, Table 1).
* :func:`across_partitions` — mean and Student-t interval over independent class
  partitions, each with its own fine-tuning (seed 000, Figures 4–5).

:meth:`Difference.verdict` and :func:`compare` turn an interval into a sentence: a winner only
when the interval of the difference excludes zero, else "no difference detected at this size".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .lazy import lazy_import

stats = lazy_import("scipy.stats")

__all__ = [
    "Difference",
    "paired_difference",
    "cluster_bootstrap",
    "across_partitions",
    "compare",
    "fmt_interval",
]


@dataclass
class Difference:
    """``mean(a) − mean(b)`` with a percentile bootstrap interval (what :func:`paired_difference` returns)."""

    a: str
    b: str
    mean: float
    low: float
    high: float
    level: float
    unit: str
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def minus(self, other: Difference, a: str, b: str) -> Difference:
        """``self − other`` for two differences bootstrapped independently (e.g. a gain at two data sizes)."""
        if self.samples.size != other.samples.size or not self.samples.size:
            raise ValueError("Both differences need bootstrap samples of the same count (same n_boot).")
        d = self.samples - other.samples
        lo, hi = np.quantile(d, [(1 - self.level) / 2, (1 + self.level) / 2])
        return Difference(a, b, self.mean - other.mean, float(lo), float(hi), self.level, self.unit, d)

    @property
    def winner(self) -> str | None:
        """``a`` or ``b`` when the interval excludes zero, else ``None``."""
        if self.low > 0:
            return self.a
        if self.high < 0:
            return self.b
        return None

    def interval(self, scale: float = 100, unit: str = " points") -> str:
        """``+3.1 points [95% interval −1.0, +7.2]`` (``scale=100``: fractions shown as percentage points)."""
        return (
            f"{self.mean * scale:+.{2 if scale == 1 else 1}f}{unit} [{self.level:.0%} interval "
            f"{self.low * scale:+.{2 if scale == 1 else 1}f}, "
            f"{self.high * scale:+.{2 if scale == 1 else 1}f}]"
        )

    def verdict(
        self, what: str = "accuracy", scale: float = 100, unit: str = " points", verb: str = "beats"
    ) -> str:
        """One sentence: who wins, or that the interval includes zero; always with the interval.

        For accuracies (fractions) the default prints percentage points; pass
        ``scale=1, unit=""`` for a loss.
        """
        diff = f"{self.a} − {self.b} = {self.interval(scale, unit)} ({what}; bootstrap over {self.unit})"
        if self.winner is None:
            return f"no clear winner between {self.a} and {self.b}: {diff} includes 0"
        loser = self.b if self.winner == self.a else self.a
        return f"{self.winner} {verb} {loser}: {diff}"


def _clusters(x) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [x.astype(float)]
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return [row.astype(float) for row in x]
    return [np.asarray(row, dtype=float).ravel() for row in x]


def paired_difference(
    a,
    b,
    names: Sequence[str] = ("A", "B"),
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    unit: str = "test examples",
) -> Difference:
    """Mean of ``a − b`` and its paired percentile-bootstrap interval.

    ``a`` and ``b`` are per-unit scores of two methods on the same units
    (e.g. 0/1 correctness per test example): 1-D arrays, or one array per
    seed (a cluster bootstrap: seeds are resampled, then units within each).
    """
    ca, cb = _clusters(a), _clusters(b)
    if len(ca) != len(cb) or any(x.shape != y.shape for x, y in zip(ca, cb)):
        raise ValueError("a and b must score the same units: equal shapes, one array per seed.")
    if not ca or any(x.size == 0 for x in ca):
        raise ValueError("Nothing to compare: give at least one score per method.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    diffs = [x - y for x, y in zip(ca, cb)]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for k in range(n_boot):
        picks = rng.integers(0, len(diffs), len(diffs)) if len(diffs) > 1 else [0]
        stats[k] = np.mean([diffs[i][rng.integers(0, diffs[i].size, diffs[i].size)].mean() for i in picks])
    mean = float(np.mean([d.mean() for d in diffs]))
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Difference(names[0], names[1], mean, float(low), float(high), level, unit, stats)


def cluster_bootstrap(
    values: Sequence[float],
    clusters: Sequence,
    *,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
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


def compare(
    a: str,
    b: str,
    diff: tuple[float, float, float],
    *,
    better: str = "lower",
    digits: int = 1,
    unit: str = "",
) -> str:
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
