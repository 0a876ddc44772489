"""Story of notebook 07: features match at every depth, but deeper layers keep less of the image."""

from introspect_lab import load_image, sample_image
from introspect_lab.synthesis import invert


def test_inversion_error_grows_with_depth(lite0):
    photo = load_image(sample_image("chelsea"), lite0, 96)
    # measured (96 px, 60 steps): feature error 0.035 / 0.059 / 0.072, relative image error 0.45 / 0.69 / 1.31
    res = [
        invert(lite0, photo, layer, size=96, steps=60, seed=0, progress=False)
        for layer in ("stem", "blocks.3", "head")
    ]
    feats = [r.extra["feature_error"] for r in res]
    rel = [r.extra["relative_error"] for r in res]
    assert max(feats) < 0.15
    assert rel[0] < rel[1] < rel[2]
    assert rel[0] < 0.6 and rel[2] > 0.9
