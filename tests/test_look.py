"""The look of texture synthesis at the library's defaults, judged by descriptors its loss does not use.

For every bundled texture (scikit-image's brick, grass, gravel: grey
photographs), synthesised at the registry's defaults on the bundled model:

* a grey exemplar gives a grey result (Hasler–Süsstrunk colourfulness);
* the grey-level distribution is kept (Wasserstein-1 between grey levels);
* the scale of structure is kept (power-weighted mean period of the spectrum);
* in a line-up with the other exemplars, each result is nearest its own, on average over two
  seeds (one seed's brick can sit within 0.02 of grass: the thread count, or BatchNorm folded
  into the convolutions, moves it across).

Before these defaults (Gram loss only, Adam 0.05, 150 steps) every result
was saturated colour noise: colourfulness ≈ 130, structure period ≈ 2.7 px
against ≈ 4.5–4.9 px, and no result was matched to its exemplar.
"""

import numpy as np
import pytest

from introspect_lab import load_image, sample_image, to_display
from introspect_lab.texture import look
from introspect_lab.texture.gatys import texture_synthesis

TEXTURES = ["brick", "grass", "gravel"]


SEEDS = (0, 1)


@pytest.fixture(scope="module")
def synthesised(lite0):
    """The exemplars, and each seed's results, as display images."""
    ex = {n: load_image(sample_image(n), lite0, 128) for n in TEXTURES}
    made = {(s, n): texture_synthesis(lite0, x, seed=s, progress=False) for s in SEEDS for n, x in ex.items()}
    res = {s: {n: to_display(made[s, n].image, lite0) for n in TEXTURES} for s in SEEDS}
    return {n: to_display(x, lite0) for n, x in ex.items()}, res


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", TEXTURES)
def test_grey_exemplar_gives_a_grey_texture_with_its_grey_levels_and_scale(synthesised, name, seed):
    ex, results = synthesised
    res = results[seed]
    assert look.colourfulness(ex[name]) < 1
    assert look.colourfulness(res[name]) < 15, "a grey exemplar must give a grey texture"
    assert look.grey_histogram_distance(res[name], ex[name]) < 0.04
    ratio = look.structure_scale(res[name]) / look.structure_scale(ex[name])
    assert 0.7 < ratio < 1.5, f"scale of structure {ratio:.2f}× the exemplar's"


def test_each_texture_is_matched_to_its_own_exemplar_in_a_lineup(synthesised):
    ex, results = synthesised
    lineups = [look.lineup(results[seed], ex) for seed in SEEDS]
    names, d = lineups[0][0], np.mean([d for _, d, _ in lineups], axis=0)
    matched = {n: int(np.argmin(d[i])) == i for i, n in enumerate(names)}
    assert all(matched.values()), f"mean line-up distances (rows: results, columns: {names}):\n{d.round(3)}"
