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
from torch import nn

from ..hooks import weights_key
from ..info import ModelInfo
from ..lazy import lazy_import
from ..models import MODELS, load_model, model_settings
from ..names import unknown_name_error
from ..settings import TextureSettings, override

torchvision_models = lazy_import("torchvision.models", "pip install torchvision")

__all__ = [
    "VGG_GRAM_LAYERS",
    "SHALLOW_SIZES",
    "vgg19_random",
    "shallow_multiscale",
    "shallow_gram_layers",
    "CircularConv2d",
    "texture_settings",
    "TEXTURE_NETWORKS",
    "texture_network",
]

#: Gatys et al.'s (2015) texture layers of VGG-19, after their ReLU.
VGG_GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Filter sizes of the shallow random network (a subset of Ustyuzhaninov et al.'s 3 … 55 px).
SHALLOW_SIZES = (3, 5, 7, 11, 15, 23)
#: The texture networks compared by introspect_lab.experiments.texture_models (names for texture_network).
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


class CircularConv2d(nn.Conv2d):
    """A ``Conv2d`` with ``padding_mode="circular"`` that convolves large filters by FFT: same output, faster.

    With circular padding a convolution is a circular cross-correlation, so by
    the convolution theorem ``y = IFFT(conj(FFT(K)) · FFT(x))``, ``K`` the filter
    placed on an H×W grid with its centre at (0, 0). One H×W FFT costs the same
    whatever the filter size, so from 9 px up (odd sizes, stride 1, filters no
    larger than the image, float32/float64) it beats the direct convolution: at
    128 px on one core, 21 ms against 103 ms for 32 filters of 23 px (forward
    and backward). Agrees with ``nn.Conv2d`` to rounding (tested); other cases run
    ``nn.Conv2d`` itself. The filters' spectrum is kept while the weights and
    the image size stay the same and the weights are frozen.
    """

    #: The smallest filter side convolved by FFT (below it the direct convolution is as fast).
    FFT_FROM = 9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``nn.Conv2d``'s output (circular padding), by FFT where that is faster."""
        k = self.kernel_size[0]
        h, w = x.shape[-2:]
        if not (
            self.padding_mode == "circular"
            and k >= self.FFT_FROM
            and k % 2
            and self.kernel_size == (k, k)
            and self.padding == (k // 2, k // 2)
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and k <= min(h, w)
            and x.dtype in (torch.float32, torch.float64)
        ):
            return super().forward(x)
        # Σ_c X_c · K_fc as a broadcast product; einsum ran one tiny complex matrix product per frequency
        y = torch.fft.irfft2((torch.fft.rfft2(x).unsqueeze(1) * self._spectrum(h, w)).sum(2), s=(h, w))
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def _spectrum(self, h: int, w: int) -> torch.Tensor:
        """``conj(FFT(K))`` of the filters on an h×w grid, centred at (0, 0); kept while nothing changed."""
        weight = self.weight
        key = (h, w, weights_key(self))  # also sees edits through ``.data``, which skip the version
        cached = getattr(self, "_cached_spectrum", None)
        if cached is not None and cached[0] == key and not weight.requires_grad:
            return cached[1]
        k = weight.shape[-1]
        grid = nn.functional.pad(weight, (0, w - k, 0, h - k))
        spectrum = torch.fft.rfft2(torch.roll(grid, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))).conj()
        if not weight.requires_grad:
            self._cached_spectrum = (key, spectrum)
        return spectrum


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
                conv = CircularConv2d(3, filters, k, padding=k // 2, padding_mode=padding, bias=False)
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
    """One random convolutional layer: ``filters`` filters of each size in ``sizes`` (Ustyuzhaninov et
    al. 2017).

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
    """Texture-synthesis settings for any network (field overrides allowed); what ``texture_synthesis`` uses.

    For :func:`vgg19_random` and :func:`shallow_multiscale`: L-BFGS
    (``optimizer="lbfgs"``) with equal weights on every Gram layer (Gatys et
    al. 2015; each layer's error relative to the exemplar's Gram energy), the
    pixels' colour statistics as "layer 0" (``colour_weight`` 100, which keeps
    a grey exemplar grey) and a little total variation (``tv_weight`` 1e-5),
    at 128 px with step 1. ``steps`` (L-BFGS iterations) fit about 10 s on
    one CPU core: 20 for VGG-19 (≈ 0.5 s per evaluation), 40 for the shallow
    network (≈ 0.1 s; its large filters run as FFTs, :class:`CircularConv2d`).
    For any other network, the registry's (or the derived)
    ``models.model_settings(net).texture``: Adam on the synthesis engine.
    Compared by :mod:`introspect_lab.experiments.texture_models`.
    """
    if isinstance(net, ShallowMultiscale):
        layers = shallow_gram_layers(net)
        base = dict(steps=40)
    elif isinstance(net, nn.Sequential) and "relu1_1" in dict(net.named_children()):
        layers = tuple(n for n in VGG_GRAM_LAYERS if n in dict(net.named_children()))
        base = dict(steps=20)
    else:
        return override(model_settings(net).texture, **overrides)
    cfg = dict(
        style_layers=layers,
        style_weights=tuple(1.0 for _ in layers),
        size=128,
        lr=1.0,
        tv_weight=1e-5,
        colour_weight=100.0,
        optimizer="lbfgs",
        **base,
    )
    cfg.update(overrides)
    return TextureSettings(**cfg)


def texture_network(name: str, seed: int = 0) -> nn.Module:
    """A texture network by name: ``"shallow_multiscale"``, ``"vgg19_random"`` or a registry model's name.

    The random networks are built offline (seeded); a registry name is
    :func:`~introspect_lab.models.load_model` (the bundled
    ``"efficientnet_lite0"`` works offline). Use the result with
    :func:`~introspect_lab.texture.gatys.texture_synthesis`, whose default
    settings are :func:`texture_settings`.
    """
    if name == "shallow_multiscale":
        return shallow_multiscale(seed)
    if name == "vgg19_random":
        return vgg19_random(seed)
    if name not in MODELS:
        raise unknown_name_error("texture network", name, ["shallow_multiscale", "vgg19_random", *MODELS])
    return load_model(name, verbose=False)
