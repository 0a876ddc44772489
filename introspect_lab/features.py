"""Filters, activations and feature space: what a trained network computes, layer by layer.

The tools of the "interpreting weights / visualising activations / feature space" part of
the lectures (seed 001, HKUST "Topics on CNN": first-layer filters, PCA/t-SNE of FC7;
seed 003, Landwehr: per-channel activations through depth; seed 004, CSE 891
"Interpretability": nearest neighbours, dimensionality reduction, activation grids,
maximally activating patches):

* :func:`first_layer_filters`, :func:`first_conv`, :func:`conv_weights` — the weights
  themselves;
* :func:`extract_features` — activations of any named layer for a batch or a pool, in
  mini-batches with a progress bar; :func:`activation_maps` for one image;
* :func:`nearest_neighbors` — L2 neighbours ``argmin_i ‖f(x_q) − f(x_i)‖₂``;
* :func:`embed` — PCA or t-SNE to 2-D (scikit-learn);
* :func:`receptive_field` (layer arithmetic) and :func:`measure_receptive_field`
  (gradients) — which input pixels an activation can see;
* :func:`top_patches` — maximally activating patches (seed 004, which credits
  Springenberg et al. 2015; the idea goes back to Girshick et al. 2014 and Zeiler &
  Fergus 2014): the input regions under the top activations of one channel.

Every function leaves the model as it found it (hooks removed, in-place flags, eval mode
and ``requires_grad`` restored), also when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import config
from .datasets import ImagePool
from .fastpath import ChannelsLast
from .hooks import capture, frozen
from .images import check_batch, to_display
from .lazy import lazy_import
from .models import MODELS, WeightsUnavailableError, get_layer, is_cached, load_model, model_info
from .names import unknown_name_error
from .receptive import ReceptiveField, measure_receptive_field, receptive_field

decomposition = lazy_import("sklearn.decomposition")
manifold = lazy_import("sklearn.manifold")

__all__ = [
    "first_conv",
    "first_layer_filters",
    "filters_for_display",
    "conv_weights",
    "extract_features",
    "activation_maps",
    "penultimate_layer",
    "Neighbors",
    "nearest_neighbors",
    "embed",
    "ReceptiveField",
    "receptive_field",
    "measure_receptive_field",
    "Patch",
    "ChannelMaxima",
    "channel_maxima",
    "top_patches",
]


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``Conv2d`` that reads the RGB image (``in_channels == 3``): ``(name, module)``.

    AlexNet's ``features.0`` (64×3×11×11), ResNet-18's ``conv1`` (64×3×7×7),
    SqueezeNet 1.1's ``features.0`` (64×3×3×3), the bundled model's ``stem.conv`` (32×3×3×3).
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise ValueError(
        f"{type(model).__name__} has no Conv2d with 3 input channels; it does not read RGB images."
    )


def filters_for_display(weight: torch.Tensor) -> np.ndarray:
    """First-layer filters as RGB tiles ``[N, kh, kw, 3]`` in [0, 1], each filter scaled on its own.

    Tile ``n`` is ``(w_n − min w_n) / (max w_n − min w_n)`` (HKUST lecture, seed 001,
    "Interpreting weights": each filter is normalised separately so its pattern, not its
    magnitude, is visible). A constant filter becomes mid-grey.
    """
    w = torch.as_tensor(weight).detach().float().cpu()
    if w.dim() != 4 or w.shape[1] != 3:
        raise ValueError(
            f"RGB filter tiles need a weight of shape [N, 3, kh, kw]; got {tuple(w.shape)}. "
            "For deeper layers use conv_weights() and show each input channel in grayscale."
        )
    flat = w.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1, 1)
    span = hi - lo
    out = torch.where(span > 0, (w - lo) / span.clamp_min(1e-12), torch.full_like(w, 0.5))
    return out.permute(0, 2, 3, 1).numpy()


def conv_weights(model: nn.Module, layer: str) -> torch.Tensor:
    """The weight ``[C_out, C_in/groups, kh, kw]`` of a named convolution (or of the first conv inside
    ``layer``).

    Deeper filters act on the previous layer's channels, not on colours, so they are
    shown one input channel at a time in grayscale (seed 001: only first-layer filters
    can be read as images).
    """
    module = get_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        convs = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"Layer {layer!r} ({type(module).__name__}) contains no Conv2d.")
        module = convs[0][1]
    return module.weight.detach().clone()


def first_layer_filters(
    names: Sequence[str] = ("alexnet", "resnet18", "squeezenet1_1", "efficientnet_lite0"),
    verbose: bool = True,
) -> dict[str, torch.Tensor]:
    """First-layer filter banks ``{model name: weight [N, 3, k, k]}`` of the models that can be had.

    A classic model is used when its weights are cached (``models.is_cached``) or, when
    ``INTROSPECT_LAB_OFFLINE`` is not set, downloadable. After the first failed download
    no other download is tried (no network means none will work). Skipped models are
    printed with the reason, never dropped silently. The bundled model is always there.
    """
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    network_failed = False
    for name in names:
        if name not in MODELS:
            raise unknown_name_error("model", name, list(MODELS))
        if not is_cached(name):
            if config.is_offline():
                skipped.append(f"{name} (weights not cached; INTROSPECT_LAB_OFFLINE is set)")
                continue
            if network_failed:
                skipped.append(f"{name} (weights not cached; no network)")
                continue
        try:
            model = load_model(name, verbose=False)
        except WeightsUnavailableError:
            network_failed = True
            skipped.append(f"{name} (weights not cached; the download failed)")
            continue
        _, conv = first_conv(model)
        out[name] = conv.weight.detach().clone()
        del model
    if verbose:
        shown = ", ".join(f"{n} {'×'.join(map(str, w.shape))}" for n, w in out.items())
        print(f"First-layer filters shown: {shown}.")
        if skipped:
            print(
                f"Skipped: {'; '.join(skipped)}. Fetch them with `introspect-lab fetch` on a networked "
                "machine."
            )
    return out


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

PENULTIMATE = {
    "efficientnet_lite0": "flatten",
    "resnet18": "avgpool",
    "alexnet": "classifier.5",
    "vgg16": "classifier.4",
    "vgg19": "classifier.4",
    "squeezenet1_1": "features.12",
}


def penultimate_layer(model: nn.Module) -> str:
    """Name of the layer whose output is the image descriptor before the classifier (``FC7`` in AlexNet
    terms).

    ``flatten`` (1280-d) for the bundled model, ``avgpool`` for ResNet-18, ``classifier.5``
    (fc7 after ReLU) for AlexNet, ``classifier.4`` for VGG, ``features.12`` for SqueezeNet
    (average it spatially with ``reduce="mean"``).
    """
    name = model_info(model).name
    if name not in PENULTIMATE:
        raise ValueError(
            f"No known penultimate layer for {name}; pass layer=... explicitly (see list_layers(model))."
        )
    return PENULTIMATE[name]


def _batches(
    model: nn.Module, images, layer: str, batch_size: int, progress: bool | None, desc: str
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start index, activations of layer)`` per mini-batch, forward truncated at ``layer``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(images, ImagePool):
        n = len(images)

        def get(a: int, b: int) -> torch.Tensor:
            return images.batch(model, slice(a, b))
    else:
        check_batch(images, "images", single=False)
        n = images.shape[0]

        def get(a: int, b: int) -> torch.Tensor:
            return images[a:b]

    get_layer(model, layer)  # unknown names fail here, before any work
    device = next(model.parameters()).device
    show = config.show_progress() if progress is None else progress
    with frozen(model), torch.no_grad(), capture(model, layer, stop=True) as cap:
        run = ChannelsLast(cap.run)  # faster convolutions on a CPU; the activations may come channels-last
        for start in tqdm(range(0, n, batch_size), desc=desc, disable=not show or n <= batch_size):
            run(get(start, start + batch_size).to(device))
            yield start, cap.activations[layer]


def _reduce(act: torch.Tensor, reduce: str | None) -> torch.Tensor:
    if reduce is None:
        return act
    if reduce == "flatten":
        return act.flatten(1)
    if act.dim() < 3:
        return act
    if reduce == "mean":
        return act.flatten(2).mean(2)
    if reduce == "max":
        return act.flatten(2).amax(2)
    raise ValueError(f"reduce must be None, 'flatten', 'mean' or 'max', got {reduce!r}.")


def extract_features(
    model: nn.Module,
    images,
    layer: str | None = None,
    *,
    batch_size: int = 16,
    reduce: str | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """Activations of ``layer`` for every image: ``[N, ...]`` (``[N, C, H, W]`` for a conv layer).

    Parameters
    ----------
    images:
        A normalised batch ``[N, 3, H, W]`` or an :class:`~introspect_lab.datasets.ImagePool`
        (normalised for ``model`` batch by batch).
    layer:
        Any name from ``list_layers(model)``; default :func:`penultimate_layer` (the
        "FC7" descriptor that seed 001 embeds with t-SNE).
    batch_size:
        Images per forward pass. The result does not depend on it (eval mode: BatchNorm
        uses its running statistics).
    reduce:
        ``None`` (keep the shape), ``"flatten"`` (``[N, C·H·W]``), ``"mean"`` / ``"max"``
        (spatial average / max → ``[N, C]``).

    The forward pass stops after ``layer``; no gradients are kept.
    """
    layer = layer or penultimate_layer(model)
    if reduce not in (None, "flatten", "mean", "max"):
        raise ValueError(f"reduce must be None, 'flatten', 'mean' or 'max', got {reduce!r}.")
    with closing(_batches(model, images, layer, batch_size, progress, f"Features at {layer}")) as batches:
        parts = [
            _reduce(act, reduce).cpu().clone(memory_format=torch.contiguous_format) for _, act in batches
        ]
    if not parts:
        raise ValueError("No images to extract features from (the batch is empty).")
    return torch.cat(parts, 0)


def activation_maps(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The feature maps ``[C, H, W]`` of one image at a conv layer (seed 004, "Visualizing activations").

    ``x`` is a normalised ``[1, 3, H, W]`` image. E.g. AlexNet conv5 gives 128×13×13 in the
    lecture; the bundled model's ``blocks.4`` gives 40×(H/8)×(W/8).
    """
    check_batch(x, "x", single=False)
    if x.shape[0] != 1:
        raise ValueError(f"activation_maps() takes one image [1, 3, H, W]; got a batch of {x.shape[0]}.")
    act = extract_features(model, x, layer, progress=False)[0]
    if act.dim() != 3:
        raise ValueError(
            f"Layer {layer!r} outputs shape {tuple(act.shape)}, not C×H×W feature maps; pick a conv layer."
        )
    return act


# ---------------------------------------------------------------------------
# Nearest neighbours and embeddings
# ---------------------------------------------------------------------------


class Neighbors(NamedTuple):
    """``indices[q]`` and ``distances[q]`` of the ``k`` nearest items to query ``q``, closest first."""

    indices: torch.Tensor
    distances: torch.Tensor


def nearest_neighbors(features: torch.Tensor, queries, k: int = 5) -> Neighbors:
    """The ``k`` nearest neighbours in L2 distance, ``d(a, b) = ‖a − b‖₂`` on flattened vectors.

    Seed 004 ("Nearest neighbours"): compare images by their features at a layer instead of
    their pixels. ``features`` is ``[N, ...]``. ``queries`` is an index or a list of indices
    into ``features`` (each query is then excluded from its own neighbours) or a tensor
    ``[Q, ...]`` of outside queries. Pixel-space neighbours: pass the images themselves.
    Ties are broken by the lower index.
    """
    feats = torch.as_tensor(features).detach().float().flatten(1)
    n = feats.shape[0]
    exclude = None
    if isinstance(queries, (int, np.integer)) and not isinstance(queries, bool):
        queries = [int(queries)]
    if isinstance(queries, (list, tuple, range, np.ndarray)):
        idx = [int(i) for i in queries]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ValueError(f"Query indices {bad} are out of range for {n} items.")
        exclude = torch.tensor(idx)
        q = feats[exclude]
    elif isinstance(queries, torch.Tensor):
        q = (
            queries.detach().float().reshape(queries.shape[0], -1)
            if queries.dim() > 1
            else queries.view(1, -1)
        )
        if q.shape[1] != feats.shape[1]:
            raise ValueError(f"Queries have {q.shape[1]} values each, the features {feats.shape[1]}.")
    else:
        raise TypeError(
            f"queries must be an index, a list of indices or a tensor, got {type(queries).__name__}."
        )
    avail = n - (1 if exclude is not None else 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= avail:
        raise ValueError(f"k must be an integer in 1..{avail}, got {k!r}.")
    dist = torch.cdist(q.double(), feats.double(), compute_mode="donot_use_mm_for_euclid_dist")
    if exclude is not None:
        dist[torch.arange(len(exclude)), exclude] = float("inf")
    # Stable sort: equal distances keep index order.
    order = torch.sort(dist, dim=1, stable=True).indices[:, :k]
    return Neighbors(order, dist.gather(1, order).float())


def embed(
    features: torch.Tensor,
    method: str = "pca",
    *,
    n_components: int = 2,
    perplexity: float = 30.0,
    random_state: int = 0,
) -> np.ndarray:
    """Project features to ``n_components`` dimensions with PCA or t-SNE (scikit-learn):
    ``[N, n_components]``.

    PCA keeps the directions of largest variance (a linear map). t-SNE (van der Maaten &
    Hinton 2008) keeps neighbourhoods: it matches the symmetrised similarities
    ``p_ij = (p_j|i + p_i|j) / 2N``, with ``p_j|i ∝ exp(−‖x_i − x_j‖² / 2σ_i²)`` normalised
    over ``j ≠ i`` and σ_i set by the perplexity, with a heavy-tailed
    ``q_ij ∝ (1 + ‖y_i − y_j‖²)⁻¹`` in 2-D, the FC7 maps of seed 001. As is standard, t-SNE runs on the first
    50 PCA components. ``perplexity`` (≈ effective neighbours) must be below the number of points.
    """
    x = torch.as_tensor(features).detach().double().flatten(1).cpu().numpy()
    n = x.shape[0]
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}.")
    if n < 3:
        raise ValueError(f"Need at least 3 points to embed, got {n}.")
    if method == "pca":
        return decomposition.PCA(n_components=n_components, random_state=random_state).fit_transform(x)
    if not 0 < perplexity < n:
        raise ValueError(
            f"perplexity must be in (0, {n}) for {n} points, got {perplexity}; try {max(2, n // 4)}."
        )
    x = decomposition.PCA(n_components=min(50, n, x.shape[1]), random_state=random_state).fit_transform(x)
    tsne = manifold.TSNE(
        n_components=n_components, perplexity=perplexity, init="pca", random_state=random_state
    )
    return tsne.fit_transform(x)


# ---------------------------------------------------------------------------
# Maximally activating patches
# ---------------------------------------------------------------------------


@dataclass
class Patch:
    """One maximally activating patch: image ``index`` in the pool, the unit ``position``
    ``(i, j)`` in the feature map, its ``value``, the input ``box`` ``(top, left, bottom,
    right)`` (end-exclusive) and the ``crop`` of the image there (H×W×3 in [0, 1])."""

    index: int
    channel: int
    position: tuple[int, int]
    value: float
    box: tuple[int, int, int, int]
    crop: np.ndarray

    def __repr__(self) -> str:
        return (
            f"Patch(image {self.index}, channel {self.channel}, at {self.position}, value {self.value:.3g}, "
            f"box {self.box})"
        )


class ChannelMaxima(NamedTuple):
    """Per image and channel, the strongest unit of a layer: ``values[n, c]`` and its ``positions[n, c]``
    ``(i, j)``.
    """

    layer: str
    values: torch.Tensor  # [N, C]
    positions: torch.Tensor  # [N, C, 2]
    map_size: tuple[int, int]


def channel_maxima(
    model: nn.Module, images, layer: str, *, batch_size: int = 16, progress: bool | None = None
) -> ChannelMaxima:
    """One pass over the pool: ``max_{i,j} A_c(i, j)`` and its argmax for every image and channel of
    ``layer``.

    The statistic behind :func:`top_patches`; compute it once and pass it as ``maxima=`` to
    look at many channels of the same layer without running the pool again.
    """
    vals: list[torch.Tensor] = []
    args: list[torch.Tensor] = []
    shape: list[int] = []
    with closing(_batches(model, images, layer, batch_size, progress, f"Maxima at {layer}")) as batches:
        for _, act in batches:
            if act.dim() != 4:
                raise ValueError(f"Layer {layer!r} outputs shape {tuple(act.shape)}; pick a conv layer.")
            val, arg = act.flatten(2).max(2)  # per image and channel: the strongest unit
            vals.append(val.cpu())
            args.append(arg.cpu())
            shape[:] = act.shape
    if not vals:
        raise ValueError("No images in the pool.")
    arg = torch.cat(args)
    width = shape[3]
    positions = torch.stack([arg // width, arg % width], dim=-1)
    return ChannelMaxima(layer, torch.cat(vals), positions, (shape[2], shape[3]))


def top_patches(
    model: nn.Module,
    images,
    layer: str,
    channels: int | Sequence[int],
    *,
    k: int = 9,
    batch_size: int = 16,
    progress: bool | None = None,
    maxima: ChannelMaxima | None = None,
) -> list[Patch] | dict[int, list[Patch]]:
    """Maximally activating patches of one channel (or several) of ``layer`` over a pool of images.

    Seed 004, "Maximally activating patches", which credits Springenberg et al. 2015
    ("Striving for Simplicity"); the idea goes back to Girshick et al. 2014 (R-CNN) and
    Zeiler & Fergus 2014: run every image, record channel ``c``'s map ``A_c``, take the strongest unit
    of each image, ``(i*, j*) = argmax A_c``, keep the ``k`` images with the largest values,
    and crop the input under that unit's receptive field, computed from the layer
    arithmetic (:func:`receptive_field`; the tests check it against gradients). One patch
    per image, strongest first.

    ``images`` is a normalised batch ``[N, 3, H, W]`` or an ImagePool. ``maxima`` reuses a
    :func:`channel_maxima` pass over the same images and layer. Returns a list of
    :class:`Patch` for an int ``channels``, else ``{channel: [Patch, ...]}``.
    """
    single = isinstance(channels, (int, np.integer)) and not isinstance(channels, bool)
    chans = [int(channels)] if single else [int(c) for c in channels]
    if not chans:
        raise ValueError("Give at least one channel.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    get_layer(model, layer)
    if maxima is None:
        maxima = channel_maxima(model, images, layer, batch_size=batch_size, progress=progress)
    elif maxima.layer != layer:
        raise ValueError(f"maxima were computed for {maxima.layer!r}, not {layer!r}.")
    n, n_channels = maxima.values.shape
    bad = [c for c in chans if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"Channels {bad} do not exist: {layer!r} has channels 0..{n_channels - 1}.")
    if k > n:
        raise ValueError(f"k={k} is more than the {n} images in the pool.")
    if isinstance(images, ImagePool):
        size = (images.size, images.size)

        def crop(idx: int, box) -> np.ndarray:
            t, left, b, r = box
            return images.float01([idx])[0, :, t:b, left:r].permute(1, 2, 0).numpy()
    else:
        size = (images.shape[2], images.shape[3])

        def crop(idx: int, box) -> np.ndarray:
            t, left, b, r = box
            return to_display(images[idx : idx + 1, :, t:b, left:r], model)

    rf = receptive_field(model, layer, size)
    result: dict[int, list[Patch]] = {}
    for c in chans:
        order = torch.sort(maxima.values[:, c], descending=True, stable=True).indices[:k]
        patches = []
        for idx in order.tolist():
            pos = (int(maxima.positions[idx, c, 0]), int(maxima.positions[idx, c, 1]))
            box = rf.box(*pos)
            patches.append(Patch(idx, c, pos, float(maxima.values[idx, c]), box, crop(idx, box)))
        result[c] = patches
    return result[chans[0]] if single else result
