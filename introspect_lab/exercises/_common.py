"""Shared pieces of the exercise tasks: random inputs in float64, a tiny CNN, an objective context.

Inputs are small and in float64, so that two correct implementations agree
to ~1e-12 and any real mistake shows as a relative error far above the
tolerance. Models are tiny CNNs with fresh random weights: a function that
only works on one network does not pass.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..synthesis import objectives as O

__all__ = ["tiny_cnn", "LAYER", "randn64", "randint_between", "random_image", "context"]

LAYER = "features"


def randn64(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard normal values of ``shape`` in float64 from ``g``."""
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def randint_between(g: torch.Generator, lo: int, hi: int) -> int:
    """A random integer in ``[lo, hi]`` (both ends included) from ``g``."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def tiny_cnn(g: torch.Generator, classes: int = 10, width: int = 8) -> nn.Module:
    """A small float64 CNN with random weights: conv–ReLU–conv–ReLU, global average pooling, one linear layer.

    Layers by name: ``conv1``, ``relu1``, ``conv2``, ``features`` (the last ReLU,
    the CAM / Grad-CAM layer), ``pool``, ``flatten``, ``fc``.
    """
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, width, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            features=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(2 * width, classes),
        )
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model.eval()


def random_image(g: torch.Generator, batch: int, h: int, w: int | None = None) -> torch.Tensor:
    """A random image in the normalised range of ImageNet models (uniform in [−2, 2])."""
    return torch.rand(batch, 3, h, w or h, generator=g, dtype=torch.float64) * 4 - 2


def context(activations: dict, image: torch.Tensor | None = None) -> O.Context:
    """An objective :class:`~introspect_lab.synthesis.objectives.Context` from activations (and an image)."""
    img = image if image is not None else torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    return O.Context(activations=activations, image=img, input=img)
