"""Intervals: the paired bootstrap, the cluster bootstrap by photo, the Student-t interval over partitions and
the winner rule (hand-checkable cases, input errors).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from introspect_lab.intervals import across_partitions, cluster_bootstrap, compare, paired_difference


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


def test_cluster_bootstrap_resamples_clusters_not_values():
    # two photos, two pairs each: a replicate pools 0, 2 or 4 copies of photo B's value, so the
    # mean is 0, 5 or 10; a pair-level bootstrap would also give 2.5 and 7.5
    values, photos = [0, 0, 10, 10], ["a", "a", "b", "b"]
    est, lo, hi = cluster_bootstrap(values, photos, n_boot=500, seed=1)
    assert est == 5 and lo == 0 and hi == 10
    reps = {cluster_bootstrap(values, photos, n_boot=1, seed=s)[1] for s in range(40)}
    assert reps <= {0.0, 5.0, 10.0}
    # one photo repeated: no spread at all, however many pairs it gives
    assert cluster_bootstrap([3, 3, 3, 3], [7, 7, 7, 7]) == (3.0, 3.0, 3.0)


def test_cluster_bootstrap_is_wider_than_the_pair_bootstrap_when_photos_repeat():
    rng = np.random.default_rng(0)
    photo_effect = rng.normal(0, 10, 6)
    photos = np.repeat(np.arange(6), 5)
    values = photo_effect[photos] + rng.normal(0, 1, 30)
    _, lo_c, hi_c = cluster_bootstrap(values, photos)
    _, lo_p, hi_p = cluster_bootstrap(values, np.arange(30))
    assert hi_c - lo_c > 1.8 * (hi_p - lo_p)


def test_cluster_bootstrap_bad_input():
    with pytest.raises(ValueError, match="one cluster id per value"):
        cluster_bootstrap([1, 2, 3], [0, 1])


def test_across_partitions_is_the_student_t_interval():
    v = [0.8, 0.7, 0.9, 0.75, 0.85]
    m, lo, hi = across_partitions(v)
    half = stats.t.ppf(0.975, 4) * np.std(v, ddof=1) / np.sqrt(5)
    assert m == pytest.approx(0.8) and lo == pytest.approx(0.8 - half) and hi == pytest.approx(0.8 + half)
    assert np.isnan(across_partitions([0.5])[1])


def test_compare_names_a_winner_only_when_the_interval_excludes_zero():
    assert "no difference detected" in compare("tuned", "none", (-5.0, -12.0, 3.0))
    assert compare("tuned", "none", (-5.0, -9.0, -1.0)).startswith("tuned beats none")
    assert compare("tuned", "none", (5.0, 1.0, 9.0)).startswith("none beats tuned")
    assert compare("FC", "MSP", (0.05, 0.01, 0.09), better="higher").startswith("FC beats MSP")
    assert compare("FC", "MSP", (-0.05, -0.09, -0.01), better="higher").startswith("MSP beats FC")
