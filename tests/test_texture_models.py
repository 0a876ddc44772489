"""The texture-model comparison (data/results/texture_models.json) against today's code, and its look claims.

The stored file is recomputed in a cheap slice (brick at 64 px, 3 steps, every
network) and its settings must equal today's. The look claims are checked on
a fresh synthesis at the stored settings with descriptors that no loss uses.
"""

import copy

import numpy as np
import pytest

from introspect_lab import to_display
from introspect_lab.experiments import texture_models as T
from introspect_lab.texture import look

GREY = ("brick", "grass", "gravel")


@pytest.fixture(scope="module")
def stored():
    return T.load_results()


def check_settings(res: dict) -> None:
    """Every model's stored settings, textures and seeds are today's."""
    assert res["textures"] == {t: list(b) if b else None for t, b in T.TEXTURES.items()}
    assert set(res["rows"]) == set(T.MODELS)
    for m in T.MODELS:
        _, cfg = T.build(m, res["settings"]["net_seed"])
        want = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
        want["size"] = res["settings"]["size"]
        assert res["settings"]["models"][m] == want, m
    for key in ("command", "torch_version", "threads", "seconds", "slice"):
        assert key in res, f"{key} is not recorded"


def test_stored_settings_are_todays_and_the_check_notices_a_change(stored):
    check_settings(stored)
    bad = copy.deepcopy(stored)
    bad["settings"]["models"]["shallow_multiscale"]["colour_weight"] *= 10
    with pytest.raises(AssertionError):
        check_settings(bad)


def test_stored_slice_recomputes_with_todays_code(stored):
    got = T.slice_descriptors(stored["settings"]["net_seed"])
    want = stored["slice"]["descriptors"]
    assert set(got) == set(want)
    for m, d in want.items():
        for k, v in d.items():
            assert np.isclose(got[m][k], v, rtol=1e-3, atol=1e-4), (
                f"{m} {k}: recomputed {got[m][k]}, stored {v}"
            )


def test_stored_intervals_follow_from_the_stored_rows(stored):
    assert T.comparisons(stored["rows"], stored["settings"]["seeds"]) == stored["comparisons"]


@pytest.fixture(scope="module")
def fresh():
    """Seed 0 at the stored settings (128 px): the shallow network on the grey textures and coffee, Lite0 on brick and coffee."""
    out = {}
    for m, textures in (
        ("shallow_multiscale", (*GREY, "coffee")),
        ("efficientnet_lite0", ("brick", "coffee")),
    ):
        net, cfg = T.build(m)
        for t in textures:
            ex = T.exemplar(t, net, cfg.size)
            out[m, t] = (to_display(ex, net), T.synthesise(m, net, cfg, ex, 0)[0])
    return out


def test_shallow_network_keeps_grey_textures_grey_with_their_grey_levels_and_picks_each_out(fresh):
    res = {t: fresh["shallow_multiscale", t][1] for t in GREY}
    ex = {t: fresh["shallow_multiscale", t][0] for t in GREY}
    for t in GREY:
        # the starting noise has colourfulness ≈ 90; stored results 5–7
        assert look.colourfulness(res[t]) < 10, t
        assert look.grey_histogram_distance(res[t], ex[t]) < 0.04, t
    names, d, matched = look.lineup(res, ex)
    assert all(matched.values()), f"line-up distances (rows: results, columns: {names}):\n{d.round(3)}"


def test_shallow_network_brick_keeps_its_orientations_better_than_lite0(fresh):
    # measured (seed 0): orientation distance to the exemplar 0.30 (shallow) vs 0.53 (Lite0)
    d = {
        m: float(np.abs(look.orientation_spectrum(r) - look.orientation_spectrum(e)).sum())
        for m in ("shallow_multiscale", "efficientnet_lite0")
        for e, r in [fresh[m, "brick"]]
    }
    assert d["shallow_multiscale"] < 0.8 * d["efficientnet_lite0"], d


def test_shallow_network_is_far_less_jagged_than_lite0_on_a_smooth_photo(fresh):
    # coffee: high-frequency share of the exemplar ≈ 0.014, Lite0 ≈ 0.58, shallow ≈ 0.13 (stored, seed 0)
    ex, shallow = fresh["shallow_multiscale", "coffee"]
    lite = fresh["efficientnet_lite0", "coffee"][1]
    hf = {n: look.high_frequency_share(x) for n, x in (("ex", ex), ("shallow", shallow), ("lite0", lite))}
    assert hf["shallow"] < 0.5 * hf["lite0"], hf
    assert abs(hf["shallow"] - hf["ex"]) < abs(hf["lite0"] - hf["ex"]), hf
