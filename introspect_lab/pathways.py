"""Neural pathways: turn units on and off through their ReLU masks (seed 002, Sec. 4).

Wei, Zhou, Torralba & Freeman write the class-visualisation gradient of
AlexNet as a product of weight matrices and ReLU masks (Eq. 4, here
with ``W ∈ ℝ^{out×in}`` and ``M = diag(m)``, so that it composes)::

    ∂S_t/∂I = w_tᵀ M₇ W₇ M₆ W₆ M₅ ∂Φ/∂I

and open or close units of the masks ``m₅…m₇`` to read out the different
"styles" a network keeps for one class:

* **location** (``m₅``): only a ``k×k`` window of the last conv map open
  (:func:`window_masks`);
* **content** (``m₇``): NMF topics of the class's penultimate features
  (:func:`nmf_topics`), visualised through a topic's mask (:func:`topic_masks`);
* **ensemble**: random masks where the model's own dropout acts, with its
  own ``p`` (:func:`dropout_masks`, :func:`dropout_rates`; the paper's Caffe
  AlexNet drops fc6–7, torchvision's drops pool5 and fc6);
* **hierarchy** (``m₅₋₇``): an image's binary ReLU code (:func:`relu_codes`).

:func:`masked` runs any forward pass with such masks multiplied into the
outputs of named layers; :func:`visualize_pathway` is class visualisation
(Eq. 2, as :func:`~introspect_lab.synthesis.visualize_class`) through masks,
with notebook 05's priors by default (:data:`PATHWAY_VIS`),
and :func:`insert_object` fills only the pixels inside an image mask (Fig. 10).

Which layers play pool5, fc6 and fc7 depends on the model:
the registry's settings hold a :class:`~introspect_lab.settings.PathwayLayers`
per model (``model_settings(model).pathways``, read by :func:`pathway_layers`), and
:func:`describe_layers` prints the correspondence with computed shapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .hooks import capture, forward_hooks, frozen
from .images import sample_image
from .info import model_info
from .lazy import lazy_import
from .models import MODELS
from .settings import LUCENT, ClassVisSettings, PathwayLayers, override
from .synthesis import SynthesisResult, image_size, layer_features, synthesize
from .synthesis import objectives as O
from .synthesis import priors as R
from .synthesis.methods import ascend
from .validation import check_probability

decomposition = lazy_import("sklearn.decomposition")

__all__ = [
    "PathwayLayers",
    "PATHWAY_LAYERS",
    "pathway_layers",
    "describe_layers",
    "masked",
    "relu_codes",
    "window_masks",
    "dropout_masks",
    "dropout_rates",
    "PATHWAY_VIS",
    "CropTo",
    "visualize_pathway",
    "Topics",
    "nmf_topics",
    "topic_masks",
    "best_matches",
    "KeepOutside",
    "insert_object",
    "photo_crops",
    "descriptor",
    "window_distances",
    "window_spread",
]


# ---------------------------------------------------------------------------
# Which layers play pool5 / fc6 / fc7
# ---------------------------------------------------------------------------


#: The pathway layers of every registry model (they live in the registry's settings).
PATHWAY_LAYERS: dict[str, PathwayLayers] = {name: spec.settings.pathways for name, spec in MODELS.items()}


def pathway_layers(model: nn.Module | str) -> PathwayLayers:
    """The :class:`~introspect_lab.settings.PathwayLayers` of a registry model (or its name):
    ``model_settings(model).pathways``.
    """
    name = model if isinstance(model, str) else model_info(model).name
    if name not in MODELS or MODELS[name].settings.pathways is None:
        raise ValueError(
            f"No pathway layers for {name!r}; known models: {sorted(MODELS)}. "
            "Build an introspect_lab.settings.PathwayLayers(location=..., topic=..., dropout=..., code=..., "
            "roles=...) for your model."
        )
    return MODELS[name].settings.pathways


@torch.no_grad()
def describe_layers(model: nn.Module, size: int = 224) -> str:
    """Which layers play pool5 / fc6 / fc7, with their output shapes at ``size`` px (computed)."""
    lay = pathway_layers(model)
    names = sorted({lay.location, lay.topic, *lay.dropout, *lay.code})
    with frozen(model), capture(model, names) as cap:
        model(torch.zeros(1, 3, size, size))
    shape = {n: "×".join(str(s) for s in cap.activations[n].shape[1:]) for n in names}
    lines = [f"{model_info(model).name} at {size} px — the paper's AlexNet layers here:"]
    for role, text in lay.roles:
        layer = text.split(" ")[0]
        suffix = f"  [{shape[layer]}]" if layer in shape else ""
        lines.append(f"  {role:<6}→ {text}{suffix}")
    lines.append(f"  location windows on {lay.location} [{shape[lay.location]}]; NMF topics on {lay.topic}")
    rates = ", ".join(f"{k} (p = {p})" for k, p in dropout_rates(model).items())
    lines.append(f"  dropout masks on {rates}; binary codes m7→m5 on {', '.join(lay.code)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Masked forward passes
# ---------------------------------------------------------------------------


def _broadcast(mask: torch.Tensor, out: torch.Tensor, layer: str) -> torch.Tensor:
    """A mask for one image or per image → the shape of ``out`` (channel vectors go over positions)."""
    m = mask.to(out.dtype)
    if out.dim() == 4 and m.dim() in (1, 2) and m.shape[-1] == out.shape[1]:
        m = m.reshape(-1, out.shape[1], 1, 1)  # a channel mask, shared by every location
    elif m.dim() == out.dim() - 1:
        m = m.unsqueeze(0)
    try:
        torch.broadcast_shapes(m.shape, out.shape)
    except RuntimeError:
        raise ValueError(
            f"A mask of shape {tuple(mask.shape)} does not fit layer {layer!r}'s output {tuple(out.shape)}; "
            f"give one sample's shape {tuple(out.shape[1:])} (or broadcastable, e.g. [1, H, W] or [C]) "
            "or one mask per image."
        ) from None
    return m


@contextmanager
def masked(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Multiply the output of each named layer by its 0/1 mask inside the ``with`` block.

    ``masks[layer]`` has one image's output shape (or broadcasts to it, e.g.
    ``[1, H, W]`` for a spatial window or ``[C]`` for channels of a conv
    map), or a leading batch dimension for one mask per image. Closed units
    output 0 and pass no gradient: the "neural pathway" of seed 002, Eq. 4.
    All masks open (ones) leave every output unchanged. Hooks are removed on exit.
    """

    def make(layer: str, mask: torch.Tensor):
        def hook(module, inputs, output):
            return output * _broadcast(mask, output, layer)

        return hook

    with forward_hooks(model, {layer: make(layer, m) for layer, m in masks.items()}):
        yield model


@torch.no_grad()
def relu_codes(
    model: nn.Module, image: torch.Tensor, layers: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """An image's binary code: ``1[output > 0]`` of each layer (its ReLU masks; seed 002, Sec. 4.4).

    ``layers`` default to the model's code layers (``m₇, m₆, m₅``, deepest first).
    Returns per-image masks ``[B, ...]`` usable by :func:`masked`.
    """
    layers = list(layers or pathway_layers(model).code)
    with frozen(model), capture(model, layers) as cap:
        model(image)
    return {n: (cap.activations[n] > 0).float() for n in layers}


def window_masks(
    grid: tuple[int, int], k: int, stride: int | None = None
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Masks ``[N, 1, h, w]`` with one ``k×k`` window open, every ``stride`` cells (default ``k``), and their
    corners.
    """
    h, w = grid
    if not 1 <= k <= min(h, w):
        raise ValueError(f"k must be between 1 and {min(h, w)} for a {h}×{w} map, got {k}.")
    s = stride or k
    corners = [(t, left) for t in range(0, h - k + 1, s) for left in range(0, w - k + 1, s)]
    masks = torch.zeros(len(corners), 1, h, w)
    for i, (t, left) in enumerate(corners):
        masks[i, 0, t : t + k, left : left + k] = 1
    return masks, corners


def dropout_masks(n: int, units: int, p: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``n`` random masks ``[n, units]`` with a fraction ``p`` of the units closed (dropout's
    sub-networks).
    """
    check_probability("p", p, open_high=True)
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, units, generator=g) >= p).float()


def dropout_rates(model: nn.Module) -> dict[str, float | None]:
    """The dropout probability ``p`` of each of the model's pathway dropout layers, read from its modules.

    ``None`` for a layer that is no ``nn.Dropout`` (a stand-in on a model
    trained without dropout, such as ResNet-18). Seed 002 Sec. 4.3 (dropout
    sub-networks); torchvision's AlexNet and VGG use ``p = 0.5``, the bundled
    EfficientNet-Lite0 ``p = 0.2``.
    """
    out = {}
    for layer in pathway_layers(model).dropout:
        module = model.get_submodule(layer)
        out[layer] = float(module.p) if isinstance(module, nn.Dropout) else None
    return out


#: Class visualisation through a pathway: notebook 05's priors (:data:`~introspect_lab.settings.LUCENT`:
#: transformation robustness and the decorrelated Fourier parameterisation) at a notebook's budget,
#: 40 Adam steps at lr 0.1 instead of 256 at 0.05 (Olah et al. 2017; Mordvintsev et al. 2018).
PATHWAY_VIS: ClassVisSettings = replace(LUCENT, steps=40, lr=0.1)


@dataclass
class CropTo:
    """Centre-crop (reflect-padding first if smaller) to ``size``: the transforms hand the model the image's
    own size.

    Lucent's pad and scale enlarge the picture the network sees, which would
    change the grid of the last conv map; a window mask on that grid
    (:func:`window_masks`) must keep its shape and its place.
    """

    size: tuple[int, int]

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        h, w = self.size
        dh, dw = max(0, h - x.shape[-2]), max(0, w - x.shape[-1])
        if dh or dw:
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="reflect")
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[..., top : top + h, left : left + w]


def visualize_pathway(
    model: nn.Module,
    target,
    masks: Mapping[str, torch.Tensor],
    settings: ClassVisSettings | None = None,
    *,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Class visualisation (Eq. 2) through a pathway: ``argmax_I S_t(I)`` with the masks of :func:`masked`
    applied.

    Seed 002, Sec. 4 (Eq. 2 and 4). Masks with a batch dimension give one
    image per mask; ``target`` is then repeated for each. The settings are
    ``settings`` (default :data:`PATHWAY_VIS`, notebook 05's Lucent priors;
    ``settings=models.model_settings(model).class_vis`` for pixel ascent with L2 and
    blur) with ``overrides`` by field name (``size``, ``steps``, ``lr``, ``param``, …),
    as in :func:`~introspect_lab.synthesis.visualize_class`. After the random
    pad, scale and rotation the picture is cropped back to ``size``
    (:class:`CropTo`), so the network sees the grid the masks were made for.
    """
    cfg = override(settings or PATHWAY_VIS, **overrides)
    batch = max((m.shape[0] for m in masks.values() if m.dim() >= 2 and m.shape[0] > 1), default=1)
    targets = list(target) if isinstance(target, (list, tuple)) else [target] * batch
    obj = O.class_score(model, targets if len(targets) > 1 else targets[0])
    crop = [CropTo(image_size(cfg.size))] if cfg.pad or cfg.scale else []
    run = dict(seed=seed, callback=callback, every=every, progress=progress)
    with masked(model, masks):
        return ascend(model, obj, cfg, batch=len(targets), desc="pathway visualisation", after=crop, **run)


@torch.no_grad()
def descriptor(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Unit-length "what is drawn" vectors ``[B, C]``: the *unmasked* last conv map, averaged over positions.

    Used to compare visualisations with a statistic their (masked) objective does not use.
    """
    layer = pathway_layers(model).location
    f = layer_features(model, images, layer)[layer]
    return F.normalize(f.flatten(2).mean(2), dim=1)


@torch.no_grad()
def window_distances(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """``1 −`` cosine of the :func:`descriptor` of every pair of windows' crops, pairs ``i < j`` in order.

    ``images[i]`` was visualised with only window ``masks[i]`` (``[N, 1, h, w]``)
    open; its receptive region (the window scaled to pixels) is cropped,
    resized to the image size and described by the *unmasked* network.
    """
    n, _, h, w = images.shape
    gh, gw = masks.shape[-2:]
    crops = []
    for i in range(n):
        ys, xs = torch.nonzero(masks[i, 0], as_tuple=True)
        t, b = int(ys.min()) * h // gh, (int(ys.max()) + 1) * h // gh
        left, r = int(xs.min()) * w // gw, (int(xs.max()) + 1) * w // gw
        crops.append(
            F.interpolate(
                images[i : i + 1, :, t:b, left:r], size=(h, w), mode="bilinear", align_corners=False
            )
        )
    d = descriptor(model, torch.cat(crops))
    i, j = torch.triu_indices(n, n, 1)
    return (1.0 - (d @ d.T)[i, j]).double().numpy()


def window_spread(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    """How different the windows' templates are: the mean of :func:`window_distances`.

    Near 0: the class draws the same thing everywhere (a uniform template, the
    paper's "terrier"); larger: location-specific (its "monastery"; Wei et al., Fig. 5).
    """
    return float(window_distances(model, images, masks).mean())


# ---------------------------------------------------------------------------
# Content: NMF topics of the penultimate features (fc7)
# ---------------------------------------------------------------------------


class Topics(NamedTuple):
    """``features ≈ weights @ components`` with non-negative factors (scikit-learn NMF)."""

    components: torch.Tensor  # [K, D] the topics
    weights: torch.Tensor  # [N, K] each image's use of each topic
    error: float  # ‖X − WH‖_F / ‖X‖_F


def nmf_topics(features: torch.Tensor, k: int = 3, seed: int = 0, max_iter: int = 1000) -> Topics:
    """NMF ``X ≈ W H`` of non-negative features ``[N, D]`` (conv maps are averaged over positions).

    The fc7 features of a class lie in a convex cone, so their non-negative
    factors are "styles" of the class (seed 002, Sec. 4.2).
    """
    x = features.detach().float()
    if x.dim() == 4:
        x = x.flatten(2).mean(2)
    if x.dim() != 2:
        raise ValueError(
            f"nmf_topics needs features [N, D] (or [N, C, H, W]), got shape {tuple(features.shape)}."
        )
    if float(x.min()) < 0:
        raise ValueError("NMF needs non-negative features (outputs of a ReLU); these have negative values.")
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and {min(x.shape)} for {x.shape[0]} images, got {k}.")
    nmf = decomposition.NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=max_iter)
    w = nmf.fit_transform(x.numpy().astype(np.float64))
    h = nmf.components_
    err = float(np.linalg.norm(x.numpy() - w @ h) / max(np.linalg.norm(x.numpy()), 1e-12))
    return Topics(torch.from_numpy(h).float(), torch.from_numpy(w).float(), err)


def topic_masks(topics: Topics, threshold: float = 0.1) -> torch.Tensor:
    """Each topic's mask ``[K, D]``: units whose loading is at least ``threshold`` × the topic's largest."""
    h = topics.components
    return (h >= threshold * h.amax(1, keepdim=True)).float()


def best_matches(topics: Topics, n: int = 3) -> torch.Tensor:
    """For each topic, the ``n`` images that use it most (share of their NMF weight) → ``[K, n]`` indices."""
    w = topics.weights
    share = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return share.topk(min(n, w.shape[0]), dim=0).indices.T


# ---------------------------------------------------------------------------
# Object insertion inside a mask (Fig. 10)
# ---------------------------------------------------------------------------


class KeepOutside(R.StepOp):
    """A step operation that resets every pixel outside ``mask`` to ``original``: only masked pixels
    change.
    """

    def __init__(self, mask: torch.Tensor, original: torch.Tensor):
        self.mask = mask.bool()
        self.original = original.detach().clone()

    def after_step(self, x, grad, step):
        x.copy_(torch.where(self.mask, x, self.original))


def insert_object(
    model: nn.Module,
    image: torch.Tensor,
    mask: torch.Tensor,
    target,
    *,
    pathway: Mapping[str, torch.Tensor] | None = None,
    steps: int = 60,
    lr: float = 0.05,
    tv: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
):
    """Paint class ``target`` into ``image`` inside ``mask`` only (seed 002, Fig. 10: object insertion).

    ``image`` is a normalised ``[B, 3, H, W]`` batch, ``mask`` ``[B|1, 1, H, W]``
    (1 = may change). Maximises ``S_t(I) − tv·TV(I)`` with Adam; after every
    step the pixels outside the mask are put back, so they never change.
    ``pathway`` (e.g. ``{topic_layer: topic_mask}``) picks the style.
    """
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask must be [B, 1, H, W] with the image's size; got {tuple(mask.shape)}.")
    keep = KeepOutside(mask.expand_as(image), image)
    b = image.shape[0]
    obj = O.class_score(model, [target] * b if b > 1 else target)
    if tv:
        obj = obj - float(tv) * R.tv(2.0)
    with masked(model, dict(pathway or {})):
        return synthesize(
            model,
            obj,
            size=tuple(image.shape[-2:]),
            init=image,
            steps=steps,
            optimizer="adam",
            lr=lr,
            image_ops=[keep],
            seed=seed,
            progress=progress,
            desc="object insertion",
        )


# ---------------------------------------------------------------------------
# Images offline: crops of the bundled photos
# ---------------------------------------------------------------------------


def photo_crops(
    names: Sequence[str], n: int = 8, size: int = 128, seed: int = 0
) -> tuple[torch.Tensor, list[str]]:
    """``n`` square crops of each bundled photo (scales 1, 1.5, 2, 3 of the short side; half mirrored) in
    [0, 1].

    Returns ``[len(names)·n, 3, size, size]`` and a source string per crop.
    """
    rng = np.random.default_rng(seed)
    out, sources = [], []
    for name in names:
        photo = sample_image(name)
        for i in range(n):
            zoom = (1.0, 1.5, 2.0, 3.0)[i % 4]
            side = max(16, int(min(photo.size) / zoom))
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            crop = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            if i % 2:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            out.append(torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1))
            sources.append(f"{name} crop x={left} y={top} side={side}{' mirrored' if i % 2 else ''}")
    return torch.stack(out), sources
