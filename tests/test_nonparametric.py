"""Efros–Leung non-parametric texture synthesis (seed 004): it copies, and it copies the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from introspect_lab.texture.nonparametric import efros_leung, verbatim_fraction


def _periodic(period: int = 7, tiles: int = 6, seed: int = 0):
    pattern = np.random.default_rng(seed).random((period, period, 3)).astype(np.float32)
    return pattern, np.tile(pattern, (tiles, tiles, 1))


def test_copies_only_exemplar_pixels_and_reports_where_from():
    ex = skimage.data.brick()[:48, :48]
    res = efros_leung(ex, (20, 24), window=7, seed=3, progress=False)
    assert res.image.shape == (20, 24, 3) and res.source.shape == (20, 24, 2)
    ex01 = np.repeat(ex[..., None], 3, axis=2).astype(np.float32) / 255.0
    copied = ex01[res.source[..., 0], res.source[..., 1]]
    np.testing.assert_array_equal(res.image, copied)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reproduces_a_periodic_exemplar_exactly_up_to_a_shift(seed):
    period = 7
    pattern, ex = _periodic(period)
    res = efros_leung(ex, 30, window=9, seed=seed, progress=False)
    a, b = res.source[0, 0]
    expected = np.roll(np.tile(pattern, (6, 6, 1)), (-a, -b), axis=(0, 1))[:30, :30]
    np.testing.assert_array_equal(res.image, expected)
    # ...and the copy is a shift, not the same crop every time: the phase depends on the seed.


def test_each_pixel_is_copied_from_the_nearest_window_by_the_formula():
    # tolerance 0: every pick is the argmin of d(p, q) = Σ g m ‖N(p) − E(q)‖² / Σ g m, computed here
    # pixel by pixel from the definition, over the known pixels of the window (borders included)
    ex = np.random.default_rng(0).random((14, 14, 3)).astype(np.float32)
    w, half = 5, 2
    res = efros_leung(ex, (9, 11), window=w, tolerance=0, seed=0, progress=False)
    r = np.arange(w) - half
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (w / 6.4) ** 2))
    canvas = np.full((9 + 2 * half, 11 + 2 * half, 3), np.nan)
    canvas[half, half] = ex[tuple(res.source[0, 0])]
    for i in range(9):
        for j in range(11):
            if i == j == 0:
                continue
            nb = canvas[i : i + w, j : j + w]
            m = ~np.isnan(nb[..., 0])
            best, pick = np.inf, None
            for a in range(half, 14 - half):
                for b in range(half, 14 - half):
                    diff = (
                        (np.nan_to_num(nb) - ex[a - half : a + half + 1, b - half : b + half + 1]) ** 2
                    ).sum(-1)
                    d = (g * m * diff).sum() / (g * m).sum()
                    best, pick = (d, (a, b)) if d < best else (best, pick)
            assert tuple(res.source[i, j]) == pick, (i, j)
            canvas[i + half, j + half] = ex[pick]


def test_different_seeds_give_different_textures_and_same_seed_the_same():
    ex = skimage.data.gravel()[:40, :40]
    a = efros_leung(ex, 16, window=7, seed=0, progress=False).image
    b = efros_leung(ex, 16, window=7, seed=0, progress=False).image
    c = efros_leung(ex, 16, window=7, seed=1, progress=False).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=8), "odd"),
        (dict(window=61), "larger than the window"),
        (dict(tolerance=-1), "tolerance"),
    ],
)
def test_bad_parameters_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        efros_leung(np.zeros((40, 40)), 8, **kwargs)


def test_non_finite_exemplar_is_rejected():
    ex = np.zeros((40, 40, 3), np.float32)
    ex[3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        efros_leung(ex, 8)


def test_onion_order_grows_from_a_seed_and_copies_only_exemplar_pixels():
    """Efros & Leung's order: a 3×3 exemplar seed at the centre, then outward; every pixel still a copy."""
    rng = np.random.default_rng(0)
    ex = rng.random((20, 20, 3)).astype(np.float32)
    r = efros_leung(ex, 15, window=5, order="onion", seed=0, progress=False)
    assert np.array_equal(r.image, ex[r.source[..., 0], r.source[..., 1]])
    centre = r.source[6:9, 6:9]  # the seed is a 3×3 block of the exemplar, copied as it is
    assert np.array_equal(centre - centre[0, 0], np.stack(np.mgrid[:3, :3], -1))
    assert (
        verbatim_fraction(r.source) > 0.3
    )  # random exemplar: matches are only exact at a shift, so runs are copied
    with pytest.raises(ValueError, match="order"):
        efros_leung(ex, 8, window=5, order="spiral")
