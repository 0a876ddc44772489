"""Gram matrices, texture synthesis and style transfer on the bundled model."""

from __future__ import annotations

import pytest
import torch

from introspect_lab import load_image, normalize, sample_image
from introspect_lab.hooks import count_hooks
from introspect_lab.synthesis.objectives import gram
from introspect_lab.texture.gatys import style_losses, style_targets, style_transfer, texture_synthesis


def test_gram_matrix_by_hand():
    f = torch.arange(12.0).view(1, 3, 2, 2)
    flat = f.view(3, 4)
    expected = torch.stack([torch.stack([(flat[i] * flat[j]).sum() for j in range(3)]) for i in range(3)])
    assert torch.allclose(gram(f)[0], expected)
    with pytest.raises(ValueError, match=r"\[B, N, H, W\]"):
        gram(torch.zeros(3, 4))


def test_gram_gradient_is_autograds_for_any_upstream_gradient_and_twice_differentiable():
    # gram() has its own backward, (Ḡ + Ḡᵀ) F; checked against autograd's on F Fᵀ, for a non-symmetric Ḡ
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 3, dtype=torch.float64)
    (mine,) = torch.autograd.grad((gram(f) * upstream).sum(), f)
    flat = f.reshape(2, 3, -1)
    (reference,) = torch.autograd.grad(((flat @ flat.transpose(1, 2)) * upstream).sum(), f)
    assert torch.allclose(mine, reference)
    assert torch.autograd.gradcheck(gram, (f,)) and torch.autograd.gradgradcheck(gram, (f,))


def test_style_losses_zero_for_the_exemplar(lite0):
    brick = load_image(sample_image("brick"), lite0, 64)
    targets = style_targets(lite0, brick, ["stem", "blocks.1"])
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in style_losses(lite0, brick, targets).values())
    grass = load_image(sample_image("grass"), lite0, 64)
    assert all(v > 0 for v in style_losses(lite0, grass, targets).values())


def test_texture_synthesis_cuts_gram_loss_10x(lite0, unchanged):
    check = unchanged(lite0)
    brick = load_image(sample_image("brick"), lite0, 96)
    # measured at 128 px, 100 steps: 7537 → 444 (17×); at 96 px, 60 steps ≈ 13×
    res = texture_synthesis(
        lite0, brick, style_layers=["stem", "blocks.1", "blocks.3"], size=96, steps=60, seed=0, progress=False
    )
    assert res.extra["loss_end"] * 10 < res.extra["loss_start"]
    check()


def test_texture_loss_start_is_the_gram_loss_of_the_starting_noise(lite0):
    # loss_start and loss_end are both the Gram loss alone: the colour and TV terms do not enter
    # (loss_start held them before, which made the registry run's fall look 10× larger than it was)
    brick = load_image(sample_image("brick"), lite0, 64)
    runs = [
        texture_synthesis(
            lite0, brick, size=64, steps=2, seed=0, progress=False, colour_weight=c, tv_weight=v
        )
        for c, v in ((0, 0), (1e4, 1e-2))
    ]
    assert runs[0].extra["loss_start"] == pytest.approx(runs[1].extra["loss_start"], rel=1e-6)
    layers = runs[0].extra["layers"]
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    by_hand = sum(style_losses(lite0, normalize(noise, lite0), style_targets(lite0, brick, layers)).values())
    assert runs[0].extra["loss_start"] == pytest.approx(by_hand, rel=1e-4)


def test_style_transfer_lowers_content_and_style_losses(lite0, chelsea, unchanged):
    check = unchanged(lite0)
    style = load_image(sample_image("brick"), lite0, 96)
    # from noise, with a content weight large enough for the content term to act within 40 steps
    res = style_transfer(
        lite0, chelsea, style, size=96, steps=40, init="noise", content_weight=1e-2, seed=0, progress=False
    )
    e = res.extra
    assert e["content_end"] < 0.5 * e["content_start"]
    assert e["style_end"] < 0.5 * e["style_start"]
    # from the content photo, the style loss falls while the content stays close
    res2 = style_transfer(lite0, chelsea, style, size=96, steps=40, seed=0, progress=False)
    assert res2.extra["content_start"] == 0
    assert res2.extra["style_end"] < 0.7 * res2.extra["style_start"]
    check()
    assert count_hooks(lite0) == 0


def test_style_weights_validated(lite0, chelsea):
    with pytest.raises(ValueError, match="style weights"):
        style_transfer(lite0, chelsea, chelsea, style_weights=[1.0, 2.0], steps=1, progress=False)
    with pytest.raises(ValueError, match="not style layers"):
        style_transfer(lite0, chelsea, chelsea, style_weights={"blocks.9": 1.0}, steps=1, progress=False)
