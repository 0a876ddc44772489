"""Intervals for comparisons: a paired (cluster) bootstrap of the difference between two methods.

A sentence names a winner only when the interval of the difference excludes
zero. Both methods are scored on the *same* units (test examples, or test
examples within seeds), so the bootstrap resamples units and keeps the pairs
together (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13,
percentile intervals). With several seeds (clusters) it resamples seeds first
and then examples within each drawn seed, so the interval also carries the
spread between training runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


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
            f"{self.low * scale:+.{2 if scale == 1 else 1}f}, {self.high * scale:+.{2 if scale == 1 else 1}f}]"
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
