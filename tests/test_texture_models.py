"""The texture-model comparison (data/results/texture_models.json) against today's code, and its look claims.

The stored file is recomputed in a cheap slice (brick at 64 px, 10–40 steps, every
network, within the drift between CPUs; plus one forward pass per network, tightly),
and its settings must equal today's. The look claims are checked on the stored rows
with descriptors that no loss uses.
"""

import copy

import numpy as np
import pytest

from introspect_lab.experiments import texture_models as T

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
            # the tolerance absorbs float drift between CPUs (style-shift ranks drift by up to 1.6×
            # across two CPUs); a changed network or setting moves these by far more
            assert np.isclose(got[m][k], v, rtol=0.05, atol=5e-3), (
                f"{m} {k}: recomputed {got[m][k]}, stored {v}"
            )


def test_each_network_still_computes_what_it_did(stored):
    # one forward pass per network on the slice's exemplar: deterministic up to the last bits
    got, want = T.slice_features(stored["settings"]["net_seed"]), stored["slice"]["features"]
    assert set(got) == set(want)
    for m, v in want.items():
        assert np.isclose(got[m], v, rtol=1e-4), f"{m}: recomputed {got[m]}, stored {v}"


def test_stored_intervals_follow_from_the_stored_rows(stored):
    assert T.comparisons(stored["rows"], stored["settings"]["seeds"]) == stored["comparisons"]


# The look claims are read off the stored rows (both seeds): the slice and forward-pass tests
# above tie those rows to today's code, and a fresh 128 px run of every texture costs minutes.


def _row(stored, model, texture, seed):
    return stored["rows"][model][texture][str(seed)]


@pytest.mark.parametrize("seed", [0, 1])
def test_shallow_network_keeps_grey_textures_grey_with_their_grey_levels_and_picks_each_out(stored, seed):
    for t in GREY:
        r = _row(stored, "shallow_multiscale", t, seed)
        # the starting noise has colourfulness ≈ 90; stored results 5–7
        assert r["colourfulness"] < 10 and r["grey_distance"] < 0.04, (t, r)
        assert r["lineup_match"], (t, r["lineup_nearest"])


@pytest.mark.parametrize("seed", [0, 1])
def test_shallow_network_brick_keeps_its_orientations_better_than_lite0(stored, seed):
    # stored: orientation distance to the exemplar 0.30 / 0.32 (shallow) vs 0.53 / 0.42 (Lite0)
    d = {m: _row(stored, m, "brick", seed)["orientation_distance"] for m in T.MODELS}
    assert d["shallow_multiscale"] < 0.8 * d["efficientnet_lite0"], d


@pytest.mark.parametrize("seed", [0, 1])
def test_shallow_network_is_far_less_jagged_than_lite0_on_a_smooth_photo(stored, seed):
    # coffee: high-frequency share of the exemplar ≈ 0.014, Lite0 ≈ 0.57, shallow ≈ 0.16
    hf = {m: _row(stored, m, "coffee", seed)["hf_share"] for m in T.MODELS}
    ex = _row(stored, "shallow_multiscale", "coffee", seed)["hf_share_exemplar"]
    assert hf["shallow_multiscale"] < 0.5 * hf["efficientnet_lite0"], hf
    assert abs(hf["shallow_multiscale"] - ex) < abs(hf["efficientnet_lite0"] - ex), hf
