"""The look descriptors against hand-computed cases (introspect_lab.texture.look)."""

import numpy as np
import pytest

from introspect_lab.texture import look


def test_colourfulness_grey_is_zero_and_pure_red_by_hand():
    assert look.colourfulness(np.full((8, 8, 3), 0.4)) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    # rg = 255, yb = 127.5, no spread: C = 0.3 * sqrt(255² + 127.5²)
    assert look.colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))


def test_structure_scale_finds_the_period_of_stripes():
    x = np.arange(64)
    for period in (4, 8, 16):
        stripes = 0.5 + 0.4 * np.sin(2 * np.pi * x / period)
        img = np.repeat(np.tile(stripes, (64, 1))[..., None], 3, axis=2)
        assert look.structure_scale(img) == pytest.approx(period, rel=0.15)


def test_grey_histogram_distance_by_hand():
    a, b = np.full((4, 4, 3), 0.2), np.full((4, 4, 3), 0.5)
    assert look.grey_histogram_distance(a, a) == 0.0
    assert look.grey_histogram_distance(a, b) == pytest.approx(0.3)


def test_lineup_matches_each_picture_to_itself_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    x = np.arange(64)
    pics = {
        "fine": np.clip(0.5 + 0.2 * rng.standard_normal((64, 64, 3)), 0, 1),
        "stripes": np.repeat(np.tile(0.5 + 0.4 * np.sin(2 * np.pi * x / 16), (64, 1))[..., None], 3, 2),
        "red": np.stack([np.full((64, 64), 0.9), rng.uniform(0, 0.2, (64, 64)), np.full((64, 64), 0.1)], -1),
    }
    names, d, matched = look.lineup(pics, pics)
    assert all(matched.values()) and np.allclose(np.diag(d), 0)
    with pytest.raises(ValueError, match="H×W×3"):
        look.colourfulness(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="same names"):
        look.lineup({"a": pics["red"]}, pics)


def test_orientation_spectrum_of_stripes_and_noise():
    x = np.arange(64)
    vertical = np.repeat(np.tile(0.5 + 0.4 * np.sin(2 * np.pi * x / 8), (64, 1))[..., None], 3, 2)
    e = look.orientation_spectrum(vertical)
    assert e.sum() == pytest.approx(1.0) and e.max() > 0.9  # all power in one orientation
    noise = np.random.default_rng(0).uniform(0, 1, (64, 64, 3))
    assert look.orientation_spectrum(noise).max() < 0.2  # spread over the 8 sectors


def test_regularity_of_stripes_checkerboard_and_noise():
    y, x = np.mgrid[:64, :64]
    stripes = np.repeat((np.sin(2 * np.pi * x / 8) * 0.4 + 0.5)[..., None], 3, axis=2)
    assert look.regularity(stripes) > 0.95  # repeats every 8 px
    noise = np.random.default_rng(0).random((64, 64, 3))
    assert abs(look.regularity(noise)) < 0.15
    assert look.regularity(np.full((16, 16, 3), 0.5)) == 0.0  # flat: nothing repeats


def test_high_frequency_share_of_stripes_by_period_and_of_noise():
    x = np.arange(64)

    def stripes(period):
        s = 0.5 + 0.4 * np.sin(2 * np.pi * x / period)
        return np.repeat(np.tile(s, (64, 1))[..., None], 3, axis=2)

    assert look.high_frequency_share(stripes(16)) < 0.01  # 1/16 cycles/px: all power below 0.25
    assert look.high_frequency_share(stripes(3)) > 0.95  # 1/3 cycles/px: all power above 0.25
    noise = np.random.default_rng(0).random((64, 64, 3))
    # white noise: power spread evenly over the frequency square, ≈ 1 − π/16 of it beyond radius 0.25
    assert look.high_frequency_share(noise) == pytest.approx(1 - np.pi / 16, abs=0.05)
    assert look.high_frequency_share(np.full((8, 8, 3), 0.3)) == 0.0


def test_edge_correlation_of_a_picture_itself_a_shift_and_noise():
    rng = np.random.default_rng(0)
    x = np.zeros((32, 32, 3))
    x[:, 16:] = 1.0  # one vertical edge
    assert look.edge_correlation(x, x) == pytest.approx(1.0)
    assert look.edge_correlation(x, 0.5 * x + 0.2) == pytest.approx(1.0)  # contrast does not matter
    moved = np.roll(x, 8, axis=1)  # the edge elsewhere
    assert look.edge_correlation(x, moved) < 0.1
    assert abs(look.edge_correlation(x, rng.random((32, 32, 3)))) < 0.2
    with pytest.raises(ValueError, match="different sizes"):
        look.edge_correlation(x, x[:16])


def test_colour_share_is_the_fraction_of_the_way_to_the_styles_colourfulness():
    grey = np.full((16, 16, 3), 0.5)
    red = np.zeros((16, 16, 3))
    red[..., 0] = 1.0  # colourfulness: rg = 1, yb = 0.5, no spread, so C = 0.3·√1.25
    half = 0.5 * red + 0.25  # rg = 0.5, yb = 0.25: C halves
    assert look.colourfulness(red) == pytest.approx(0.3 * np.sqrt(1.25) * 255, rel=1e-6)
    assert look.colour_share(grey, grey, red) == 0.0
    assert look.colour_share(red, grey, red) == pytest.approx(1.0)
    assert look.colour_share(half, grey, red) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equally colourful"):
        look.colour_share(red, grey, grey)
