"""Story of notebook 08: Gram matching synthesises textures; higher layers carry larger-scale statistics."""

from introspect_lab import load_image, sample_image
from introspect_lab.style import style_losses, style_targets, texture_synthesis


def test_texture_from_higher_layers_matches_larger_structure(lite0):
    tex = load_image(sample_image("brick"), lite0, 96)
    low = texture_synthesis(lite0, tex, ["stem", "blocks.1"], size=96, steps=60, seed=0, progress=False)
    high = texture_synthesis(lite0, tex, ["stem", "blocks.1", "blocks.3", "blocks.5"], size=96, steps=60, seed=0,
                             progress=False)  # fmt: skip
    assert high.extra["loss_end"] * 10 < high.extra["loss_start"]
    assert low.extra["loss_end"] * 10 < low.extra["loss_start"]
    # the deep (large-structure) statistics are matched only when their layer is used
    deep = style_targets(lite0, tex, ["blocks.5"])
    assert (
        style_losses(lite0, high.image, deep)["blocks.5"] * 2
        < style_losses(lite0, low.image, deep)["blocks.5"]
    )
