"""Paired (cluster) bootstrap intervals: hand-checkable cases, the verdict, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from introspect_lab.intervals import paired_difference


def test_identical_scores_give_a_zero_interval_and_no_winner():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    d = paired_difference(a, a.copy(), ("x", "y"))
    assert d.mean == 0 and d.low == 0 and d.high == 0 and d.winner is None
    assert "no clear winner" in d.verdict()


def test_a_constant_gap_is_found_exactly_and_names_the_winner():
    b = np.random.default_rng(0).uniform(size=50)
    d = paired_difference(b + 0.25, b, ("better", "worse"))
    # every unit differs by exactly 0.25: every bootstrap mean is 0.25
    assert d.mean == pytest.approx(0.25) and d.low == pytest.approx(0.25) and d.high == pytest.approx(0.25)
    assert d.winner == "better" and d.verdict().startswith("better beats worse")
    assert paired_difference(b, b + 0.25, ("worse", "better")).winner == "better"


def test_interval_matches_the_normal_approximation_for_many_units():
    rng = np.random.default_rng(1)
    a, b = rng.binomial(1, 0.7, 400).astype(float), rng.binomial(1, 0.6, 400).astype(float)
    d = paired_difference(a, b, n_boot=4000)
    se = (a - b).std(ddof=1) / np.sqrt(a.size)
    assert d.low == pytest.approx(d.mean - 1.96 * se, abs=0.005)
    assert d.high == pytest.approx(d.mean + 1.96 * se, abs=0.005)


def test_clusters_widen_the_interval_when_seeds_disagree():
    rng = np.random.default_rng(2)
    base = [rng.binomial(1, 0.5, 200).astype(float) for _ in range(4)]
    shifts = [0.0, 0.3, -0.2, 0.1]  # runs that disagree
    a = [np.clip(x + s, 0, 1) for x, s in zip(base, shifts)]
    pooled = paired_difference(np.concatenate(a), np.concatenate(base))
    clustered = paired_difference(a, base, unit="seeds and test examples")
    assert clustered.mean == pytest.approx(pooled.mean, abs=0.02)
    assert clustered.high - clustered.low > 2 * (pooled.high - pooled.low)


def test_minus_and_errors():
    rng = np.random.default_rng(3)
    b = rng.uniform(size=100)
    big, small = paired_difference(b + 0.3, b), paired_difference(b + 0.1, b)
    d = big.minus(small, "big", "small")
    assert d.mean == pytest.approx(0.2) and d.winner == "big"
    with pytest.raises(ValueError, match="same units"):
        paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="level"):
        paired_difference(np.ones(3), np.ones(3), level=95)
