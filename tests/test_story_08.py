"""Story of notebook 08: Gram matching synthesises textures; higher layers carry larger-scale statistics."""

from introspect_lab import load_image, sample_image, to_display
from introspect_lab.texture import look
from introspect_lab.texture.gatys import style_losses, style_targets, style_transfer, texture_synthesis


def test_texture_from_higher_layers_matches_larger_structure(lite0):
    tex = load_image(sample_image("brick"), lite0, 96)
    low = texture_synthesis(
        lite0, tex, style_layers=["stem", "blocks.1"], size=96, steps=60, seed=0, progress=False
    )
    high = texture_synthesis(
        lite0,
        tex,
        style_layers=["stem", "blocks.1", "blocks.3", "blocks.5"],
        size=96,
        steps=60,
        seed=0,
        progress=False,
    )
    assert high.extra["loss_end"] * 10 < high.extra["loss_start"]
    assert low.extra["loss_end"] * 10 < low.extra["loss_start"]
    # the deep (large-structure) statistics are matched only when their layer is used
    deep = style_targets(lite0, tex, ["blocks.5"])
    assert (
        style_losses(lite0, high.image, deep)["blocks.5"] * 2
        < style_losses(lite0, low.image, deep)["blocks.5"]
    )


def test_style_transfer_at_defaults_shows_a_colourful_style(lite0):
    # chelsea styled with a crop of the flower photo, at the registry's defaults (128 px, 200 steps)
    content = load_image(sample_image("chelsea"), lite0, 128)
    style = load_image(sample_image("flower").crop((100, 100, 400, 400)), lite0, 128)
    res = style_transfer(lite0, content, style, seed=0, progress=False)
    assert res.extra["style_start"] > 10 * res.extra["style_end"]
    c_content, c_style = (look.colourfulness(to_display(x, lite0)) for x in (content, style))
    c_out = look.colourfulness(to_display(res.image, lite0))
    # the result takes on the style's colourfulness (measured: 38 → 109, style 108)
    assert abs(c_out - c_style) < abs(c_content - c_style) / 3
