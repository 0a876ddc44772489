"""The look of texture synthesis at the library's defaults, judged by descriptors its loss does not use.

For every bundled texture (scikit-image's brick, grass, gravel: grey
photographs), synthesised at the registry's defaults on the bundled model:

* a grey exemplar gives a grey result (Hasler–Süsstrunk colourfulness);
* the grey-level distribution is kept (Wasserstein-1 between grey levels);
* the scale of structure is kept (power-weighted mean period of the spectrum);
* in a line-up with the other exemplars, each result is nearest its own.

Before these defaults (Gram loss only, Adam 0.05, 150 steps) every result
was saturated colour noise: colourfulness ≈ 130, structure period ≈ 2.7 px
against ≈ 4.5–4.9 px, and no result was matched to its exemplar.
"""

import pytest

from introspect_lab import load_image, sample_image, to_display
from introspect_lab.texture import look
from introspect_lab.texture.gatys import texture_synthesis

TEXTURES = ["brick", "grass", "gravel"]


@pytest.fixture(scope="module")
def synthesised(lite0):
    ex = {n: load_image(sample_image(n), lite0, 128) for n in TEXTURES}
    res = {n: texture_synthesis(lite0, x, seed=0, progress=False) for n, x in ex.items()}
    return (
        {n: to_display(x, lite0) for n, x in ex.items()},
        {n: to_display(r.image, lite0) for n, r in res.items()},
    )


@pytest.mark.parametrize("name", TEXTURES)
def test_grey_exemplar_gives_a_grey_texture_with_its_grey_levels_and_scale(synthesised, name):
    ex, res = synthesised
    assert look.colourfulness(ex[name]) < 1
    assert look.colourfulness(res[name]) < 15, "a grey exemplar must give a grey texture"
    assert look.grey_histogram_distance(res[name], ex[name]) < 0.04
    ratio = look.structure_scale(res[name]) / look.structure_scale(ex[name])
    assert 0.7 < ratio < 1.5, f"scale of structure {ratio:.2f}× the exemplar's"


def test_each_texture_is_matched_to_its_own_exemplar_in_a_lineup(synthesised):
    ex, res = synthesised
    names, d, matched = look.lineup(res, ex)
    assert all(matched.values()), f"line-up distances (rows: results, columns: {names}):\n{d.round(3)}"
