"""Story of notebook 14: a trained feed-forward network replaces an optimisation, and is far faster per
image.
"""

from __future__ import annotations

import time

import torch

from introspect_lab.images import normalize
from introspect_lab.texture.feedforward import (
    sample01,
    style_loss,
    style_target,
    stylize,
    train_texture_net,
)
from introspect_lab.texture.gatys import style_transfer
from introspect_lab.texture.stylenet import StyleNet


def test_one_forward_pass_matches_the_texture_and_is_much_faster_than_optimising(lite0):
    texture = sample01("brick", lite0, 48)
    trained = train_texture_net(lite0, texture, size=48, batch=2, steps=40, width=8, seed=0, progress=False)
    target = style_target(lite0, texture)
    z = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(0)
    untrained = style_loss(lite0, StyleNet(width=8).eval()(z).clamp(0, 1), target).mean()
    stylize(trained.net, z)  # warm-up
    start = time.perf_counter()
    out = stylize(trained.net, z)
    t_forward = time.perf_counter() - start
    assert style_loss(lite0, out, target).mean() < untrained / 3
    start = time.perf_counter()
    style_transfer(
        lite0, normalize(z[:1], lite0), normalize(texture, lite0), size=48, steps=20, seed=0, progress=False
    )
    t_optim = time.perf_counter() - start
    assert t_optim > 10 * t_forward
