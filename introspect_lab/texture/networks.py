"""Texture networks other than the bundled classifier: random VGG-19 and a shallow random multi-scale layer.

Gram-matrix texture synthesis (Gatys, Ecker & Bethge 2015) works on any
network's features, but how the result *looks* depends on the network.
Two networks with **random** weights, built offline and seeded:

* :func:`vgg19_random`: torchvision's VGG-19 (``vgg19(weights=None)``, its
  own Kaiming initialisation, seeded) up to ``relu5_1``, with the layers
  named as in Gatys et al. (``conv1_1``, ``relu1_1``, …, ``pool1``, …) and,
  as Gatys did, max-pooling replaced by average pooling. Its Gram layers are
  :data:`VGG_GRAM_LAYERS` (``relu1_1 … relu5_1``). VGG with random weights
  still synthesises textures and stylises (He, Wang & Hopcroft, NeurIPS 2016,
  "A powerful generative model using random weights for the deep image
  representation"; Wang, Li & Vasconcelos, CVPR 2021, "Rethinking and
  improving the robustness of image style transfer").
* :func:`shallow_multiscale`: one convolutional layer with random filters at
  several sizes (3 … 23 px), each followed by a ReLU, after Ustyuzhaninov,
  Brendel, Gatys & Bethge (ICLR 2017), "What does it take to generate natural
  textures?": a single random layer matched by its Gram matrices makes
  textures close to VGG's, and the range of filter sizes matters more than
  trained weights. Each filter is drawn from N(0, 1), made zero-mean and scaled
  to unit norm; the Gram layers are its ReLUs, one per size
  (:func:`shallow_gram_layers`).

Both take ImageNet-normalised input (like every model without a
:class:`~introspect_lab.info.ModelInfo`), have frozen parameters, and are
used with :func:`~introspect_lab.texture.gatys.texture_synthesis` and the
settings of :func:`texture_settings`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import capture
from ..images import check_batch, normalize
from ..info import ModelInfo
from ..lazy import lazy_import
from ..settings import TextureSettings
from ..synthesis import objectives as O
from ..synthesis.priors import total_variation

torchvision_models = lazy_import("torchvision.models", "pip install torchvision")

__all__ = [
    "VGG_GRAM_LAYERS",
    "SHALLOW_SIZES",
    "vgg19_random",
    "shallow_multiscale",
    "shallow_gram_layers",
    "texture_settings",
    "TEXTURE_NETWORKS",
    "lbfgs_texture",
]

#: Gatys et al.'s (2015) texture layers of VGG-19, after their ReLU.
VGG_GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Filter sizes of the shallow random network (a subset of Ustyuzhaninov et al.'s 3 … 55 px).
SHALLOW_SIZES = (3, 5, 7, 11, 15, 23)
#: The texture networks compared in bench/bench_texture_models.py: name → builder.
TEXTURE_NETWORKS = ("efficientnet_lite0", "vgg19_random", "shallow_multiscale")


def _vgg_names(features: nn.Sequential) -> list[str]:
    names, block, conv = [], 1, 0
    for m in features:
        if isinstance(m, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        else:
            names.append(f"pool{block}")
            block, conv = block + 1, 0
    return names


def _freeze(net: nn.Module, name: str) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    net.eval()
    net.lab_info = ModelInfo(name=name, source="random weights (seeded), built offline")
    return net


def vgg19_random(seed: int = 0, *, pool: str = "avg", last: str = "relu5_1") -> nn.Sequential:
    """VGG-19's convolutional part with seeded random weights, up to ``last``, layers named ``conv1_1`` ….

    Built from ``torchvision.models.vgg19(weights=None)`` (Simonyan &
    Zisserman 2015) under ``torch.manual_seed(seed)`` (torchvision's
    initialisation: Kaiming-normal conv weights, zero biases), without
    touching the global random state. ``pool="avg"`` replaces max-pooling by
    2×2 average pooling, as Gatys et al. (2015) did for texture synthesis
    ("improves the gradient flow"); ``"max"`` keeps VGG's own. ReLUs are not
    in-place, so every named activation can be captured.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = torchvision_models.vgg19(weights=None).features
    names = _vgg_names(features)
    if last not in names:
        raise ValueError(f"last must be one of VGG-19's layers {names}, got {last!r}.")
    layers = OrderedDict()
    for name, m in zip(names, features):
        if isinstance(m, nn.ReLU):
            m = nn.ReLU(inplace=False)
        elif isinstance(m, nn.MaxPool2d) and pool == "avg":
            m = nn.AvgPool2d(2, 2)
        layers[name] = m
        if name == last:
            break
    return _freeze(nn.Sequential(layers), f"vgg19_random(seed={seed}, pool={pool})")


class ShallowMultiscale(nn.Module):
    """One random convolutional layer at several filter sizes, each with its ReLU (``conv7``, ``relu7``, …).

    Circular padding: every pixel is seen by every filter the same way (the
    result tiles seamlessly; valid convolutions left a blurred rim). The
    branches run in order of size, so a truncated forward pass up to the
    largest ReLU runs all of them.
    """

    def __init__(self, sizes: Sequence[int], filters: int, seed: int, padding: str = "circular") -> None:
        super().__init__()
        self.sizes = tuple(int(k) for k in sizes)
        gen = torch.Generator().manual_seed(seed)
        for k in self.sizes:
            if padding == "valid":
                conv = nn.Conv2d(3, filters, k, bias=False)
            else:
                conv = nn.Conv2d(3, filters, k, padding=k // 2, padding_mode=padding, bias=False)
            w = torch.randn(filters, 3, k, k, generator=gen)
            w = w - w.mean(dim=(1, 2, 3), keepdim=True)
            conv.weight.data.copy_(w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
            self.add_module(f"conv{k}", conv)
            self.add_module(f"relu{k}", nn.ReLU(inplace=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated (flattened) ReLU responses of every size (the Gram layers are the ``relu{k}``)."""
        outs = [getattr(self, f"relu{k}")(getattr(self, f"conv{k}")(x)).flatten(1) for k in self.sizes]
        return torch.cat(outs, dim=1)


def shallow_multiscale(
    seed: int = 0, *, sizes: Sequence[int] = SHALLOW_SIZES, filters: int = 32, padding: str = "circular"
) -> ShallowMultiscale:
    """A single random convolutional layer with ``filters`` filters of each size in ``sizes`` (Ustyuzhaninov et al. 2017).

    Source: I. Ustyuzhaninov, W. Brendel, L. Gatys, M. Bethge, "What does it
    take to generate natural textures?", ICLR 2017: their multi-scale model
    (sizes 3 … 55 px, 128 filters each, random weights, ReLU, Gram matrices)
    comes close to VGG-19. Here fewer, smaller filters keep a 128 px
    synthesis within seconds on one CPU core; filters are zero-mean with
    unit norm (seeded ``torch.Generator``, global random state untouched).
    """
    sizes = tuple(sizes)
    if not sizes or any(int(k) < 1 for k in sizes) or filters < 1:
        raise ValueError(f"need at least one filter size ≥ 1 and filters ≥ 1, got sizes={sizes}, {filters=}.")
    if padding not in ("circular", "reflect", "zeros", "valid"):
        raise ValueError(f"padding must be 'circular', 'reflect', 'zeros' or 'valid', got {padding!r}.")
    net = ShallowMultiscale(sizes, filters, seed, padding)
    return _freeze(
        net, f"shallow_multiscale(seed={seed}, sizes={sizes}, filters={filters}, padding={padding})"
    )


def shallow_gram_layers(net: ShallowMultiscale) -> tuple[str, ...]:
    """The Gram layers of a :func:`shallow_multiscale` network: ``relu{k}`` for each filter size."""
    return tuple(f"relu{k}" for k in net.sizes)


def texture_settings(net: nn.Module, **overrides) -> TextureSettings:
    """Texture-synthesis settings for :func:`vgg19_random` or :func:`shallow_multiscale` (field overrides allowed).

    For :func:`lbfgs_texture`: equal weights on every Gram layer (Gatys et al.
    2015; each layer's error relative to the exemplar's Gram energy), the
    pixels' colour statistics as "layer 0" (``colour_weight`` 100, which keeps
    a grey exemplar grey) and a little total variation (``tv_weight`` 1e-5),
    L-BFGS at 128 px with step 1. ``steps`` (L-BFGS iterations) fit about
    10 s on one CPU core: 20 for VGG-19 (≈ 0.5 s per evaluation), 40 for the
    shallow network (≈ 0.2 s). Measured against the bundled model's
    :class:`~introspect_lab.settings.TextureSettings` by
    :mod:`introspect_lab.experiments.texture_models`.
    """
    if isinstance(net, ShallowMultiscale):
        layers = shallow_gram_layers(net)
        base = dict(steps=40)
    elif isinstance(net, nn.Sequential) and "relu1_1" in dict(net.named_children()):
        layers = tuple(n for n in VGG_GRAM_LAYERS if n in dict(net.named_children()))
        base = dict(steps=20)
    else:
        raise TypeError(
            f"texture_settings knows vgg19_random() and shallow_multiscale() networks, got {type(net).__name__}; "
            "for a registry model use models.settings(model).texture."
        )
    cfg = dict(
        style_layers=layers,
        style_weights=tuple(1.0 for _ in layers),
        size=128,
        lr=1.0,
        tv_weight=1e-5,
        colour_weight=100.0,
        **base,
    )
    cfg.update(overrides)
    return TextureSettings(**cfg)


def lbfgs_texture(
    net: nn.Module,
    texture: torch.Tensor,
    settings: TextureSettings,
    *,
    seed: int = 0,
    history: int = 20,
) -> tuple[torch.Tensor, dict]:
    """Gram texture synthesis with L-BFGS, as Gatys et al. (2015) optimised it; each layer's error relative.

    Minimises ``Σ_l w_l E_l / Ê_l + λ_c L_colour + λ_TV R_{V^2}`` over the
    pixels (normalised space) from U(0, 1) noise, ``settings.steps``
    L-BFGS iterations (``torch.optim.LBFGS``, strong-Wolfe line search,
    ``history`` pairs, at most ``⌈1.25·steps⌉`` loss evaluations), where
    ``Ê_l = Σ Â² / (4 N² M²)`` is the exemplar's own Gram energy, so that
    every layer starts near 1 whatever the scale of its random weights.
    ``λ_c`` is ``settings.colour_weight`` (pixel colour mean and covariance,
    :func:`~introspect_lab.synthesis.objectives.colour_loss`), ``λ_TV``
    ``settings.tv_weight``. Returns the image (clamped to the valid pixel
    range) and ``{"loss_start", "loss_end", "evaluations"}``.
    """
    layers, w = list(settings.style_layers), dict(zip(settings.style_layers, settings.style_weights))
    hw = (settings.size, settings.size)
    target = check_batch(texture, "texture", net)
    if tuple(target.shape[-2:]) != hw:
        target = F.interpolate(target, size=hw, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad(), capture(net, layers, stop=True) as cap:
        cap.run(target)
        grams = {n: O.gram(cap.activations[n]) for n in layers}
        energy = {n: float(O.gram_error(cap.activations[n] * 0, grams[n]).sum()) for n in layers}
    colour = O.colour_loss(target)
    lo, hi = normalize(torch.zeros(1, 3, 1, 1), net), normalize(torch.ones(1, 3, 1, 1), net)
    gen = torch.Generator().manual_seed(seed)
    x = normalize(torch.rand(1, 3, *hw, generator=gen), net).requires_grad_(True)

    def loss_fn() -> torch.Tensor:
        with capture(net, layers, detach=False, stop=True) as c:
            c.run(x)
            total = sum(w[n] * O.gram_error(c.activations[n], grams[n]).sum() / energy[n] for n in layers)
        total = total + settings.colour_weight * colour(O.Context({}, image=x, input=x))
        return total + settings.tv_weight * total_variation(x)

    with torch.no_grad():
        start = float(loss_fn())
    opt = torch.optim.LBFGS(
        [x],
        lr=settings.lr,
        max_iter=settings.steps,
        max_eval=int(1.25 * settings.steps + 0.999),
        history_size=history,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        x.copy_(torch.maximum(torch.minimum(x, hi), lo))
        end = float(loss_fn())
    return x.detach(), {"loss_start": start, "loss_end": end, "evaluations": evals}
