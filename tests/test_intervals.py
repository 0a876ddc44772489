"""Intervals for the paper experiments: the cluster bootstrap, the interval over partitions, the winner rule."""

import numpy as np
import pytest
from scipy import stats

from introspect_lab.experiments.intervals import across_partitions, cluster_bootstrap, compare


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
