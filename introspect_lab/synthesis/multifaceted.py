"""Multifaceted feature visualisation (seed 004; Nguyen, Yosinski & Clune 2016).

One unit (a class score or a channel) often fires for several different
kinds of image: its *facets*. A single ascent from noise shows one mixture
of them. Nguyen, Yosinski & Clune ("Multifaceted Feature Visualization:
Uncovering the Different Types of Features Learned By Each Neuron in Deep
Neural Networks", ICML Visualization for Deep Learning workshop 2016):

1. take the ``top`` images of a set that activate the unit most;
2. cluster them (k-means, ``k`` clusters) by their penultimate-layer
   features ``φ(x)`` (the paper first reduces ``φ`` with t-SNE; here k-means
   runs on ``φ`` itself);
3. start the ascent ``argmax_I h(I) − λ‖I‖²`` (with the class-visualisation
   priors of :mod:`.methods`) from each cluster's *mean image*, one facet
   per cluster.

:func:`multifaceted` runs all three steps; :func:`spread` measures how much
a set of visualisations differ (mean pairwise cosine distance of ``φ``, or
mean pairwise RMS pixel distance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..datasets import ImagePool
from ..features import penultimate_layer
from ..hooks import capture, frozen
from ..images import check_batch
from ..lazy import lazy_import
from ..models import class_indices, get_layer, model_settings
from ..settings import ClassVisSettings, override
from ..validation import check_channel, check_int
from . import objectives as O
from .engine import SynthesisResult, layer_features
from .methods import ascend

cluster = lazy_import("sklearn.cluster")

__all__ = ["Facets", "unit_scores", "multifaceted", "spread"]


@dataclass
class Facets:
    """What :func:`multifaceted` returns.

    ``result.image`` holds one visualisation per facet (``[k, 3, H, W]``,
    normalised model space), ``starts`` the cluster mean images it started
    from, ``clusters[j]`` the indices (into the image set) of facet ``j``'s
    images, most activating first; facets are ordered by their best image.
    ``top`` are the ``top`` most activating indices, ``scores`` the unit's
    activation for every image of the set.
    """

    unit: str
    result: SynthesisResult
    starts: torch.Tensor
    clusters: list[np.ndarray]
    top: np.ndarray
    scores: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        """Number of images in each facet's cluster."""
        return [len(c) for c in self.clusters]

    def __repr__(self) -> str:
        return (
            f"Facets({self.unit}: {len(self.clusters)} facets of sizes {self.sizes} from the top "
            f"{len(self.top)})"
        )


def _unit(model: nn.Module, target, layer: str | None) -> tuple[str, object]:
    """``(description, objective)`` for a class (``layer=None``) or channel ``target`` of ``layer``."""
    if layer is None:
        idx = class_indices(model, target, 1)[0]
        return f"class {idx}", O.class_score(model, idx)
    get_layer(model, layer)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target < 0:
        raise ValueError(f"With layer={layer!r}, target is a channel index (an int ≥ 0), got {target!r}.")
    return f"channel {int(target)} of {layer}", O.channel(layer, int(target))


def unit_scores(
    model: nn.Module,
    images: ImagePool | torch.Tensor,
    target: int | str,
    *,
    layer: str | None = None,
    features_layer: str | None = None,
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit's activation ``[N]`` and the features ``φ`` ``[N, D]`` of every image, in one pass.

    The unit is class ``target``'s score before the softmax (``layer=None``)
    or the spatial mean of channel ``target`` of ``layer``. ``φ`` is
    ``features_layer`` (default :func:`~introspect_lab.features.penultimate_layer`),
    averaged over space if it is a feature map. ``images`` is an
    :class:`~introspect_lab.datasets.ImagePool` or a normalised batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    _unit(model, target, layer)
    feat = features_layer or penultimate_layer(model)
    n = len(images) if isinstance(images, ImagePool) else check_batch(images, "images", single=False).shape[0]
    names = [feat] if layer is None or layer == feat else [feat, layer]
    scores, feats = [], []
    with frozen(model), torch.no_grad(), capture(model, names) as cap:
        for a in range(0, n, batch_size):
            x = (
                images.batch(model, slice(a, a + batch_size))
                if isinstance(images, ImagePool)
                else images[a : a + batch_size]
            )
            out = cap.run(x)
            if layer is None:
                scores.append(out[:, class_indices(model, target, 1)[0]])
            else:
                act = cap.activations[layer]
                scores.append(act[:, check_channel(act, target, layer)].reshape(act.shape[0], -1).mean(1))
            phi = cap.activations[feat]
            feats.append(phi.flatten(2).mean(2) if phi.dim() > 2 else phi.flatten(1))
    return torch.cat(scores), torch.cat(feats)


def multifaceted(
    model: nn.Module,
    images: ImagePool | torch.Tensor,
    target: int | str,
    settings: ClassVisSettings | None = None,
    *,
    layer: str | None = None,
    k: int = 4,
    top: int = 20,
    features_layer: str | None = None,
    seed: int = 0,
    progress: bool | None = None,
    **overrides,
) -> Facets:
    """Multifaceted visualisation of one unit (Nguyen, Yosinski & Clune 2016; seed 004).

    The ``top`` images of ``images`` that activate the unit most are split
    into ``k`` clusters by k-means (scikit-learn, ``random_state=seed``) on
    their features ``φ`` (:func:`unit_scores`); from each cluster's mean
    image, gradient ascent maximises ``h(I) − λ‖I‖²`` with the priors of
    :func:`~.methods.visualize_class` (blur, jitter, clamping). The unit is
    class ``target`` (index or name) or, with ``layer=``, channel ``target``
    of that layer. The ascent's settings are ``settings`` (default
    ``models.model_settings(model).class_vis``, ``.channel_vis`` for a channel) with
    ``overrides`` by field name: ``l2_weight``, ``steps``, ``lr``, ``size``,
    ``blur_every``, ``jitter`` matter most. The model is left as it was.
    """
    for name, value, low in (("k", k, 1), ("top", top, 1), ("seed", seed, 0)):
        check_int(name, value, low)
    if top < k:
        raise ValueError(f"top ({top}) must be at least k ({k}): each facet needs an image.")
    desc, objective = _unit(model, target, layer)
    base = settings or (
        model_settings(model).class_vis if layer is None else model_settings(model).channel_vis
    )
    cfg = override(base, **overrides)
    scores, feats = unit_scores(model, images, target, layer=layer, features_layer=features_layer)
    if top > len(scores):
        raise ValueError(f"top ({top}) is larger than the number of images ({len(scores)}).")
    best = torch.argsort(scores, descending=True)[:top].numpy()
    labels = cluster.KMeans(n_clusters=int(k), n_init=10, random_state=int(seed)).fit_predict(
        feats[best].numpy()
    )
    clusters = sorted(
        (best[labels == j] for j in range(int(k))), key=lambda c: int(np.flatnonzero(best == c[0])[0])
    )
    batch = images.batch if isinstance(images, ImagePool) else None
    starts = torch.stack(
        [(batch(model, c) if batch else images[torch.as_tensor(c)]).mean(0) for c in clusters]
    )
    res = ascend(
        model,
        objective,
        cfg,
        init=starts,
        batch=len(starts),
        desc=f"facets of {desc}",
        seed=seed,
        progress=progress,
    )
    return Facets(desc, res, starts, clusters, best, scores)


def spread(model: nn.Module, images: torch.Tensor | Sequence[torch.Tensor], space: str = "features") -> float:
    """How different a set of images is: the mean over pairs ``i < j`` of a distance.

    ``space="features"``: cosine distance ``1 − cos(φ(I_i), φ(I_j))`` of the
    penultimate features (:func:`~introspect_lab.features.penultimate_layer`,
    spatially averaged); ``"pixels"``: RMS difference of the normalised
    images. Used to compare the facets with several noise starts.
    """
    x = torch.cat(list(images)) if not isinstance(images, torch.Tensor) else images
    x = check_batch(x, "images", single=False)
    if x.shape[0] < 2:
        raise ValueError(f"spread needs at least 2 images, got {x.shape[0]}.")
    if space == "features":
        layer = penultimate_layer(model)
        phi = layer_features(model, x, layer)[layer]
        phi = F.normalize(phi.flatten(2).mean(2) if phi.dim() > 2 else phi.flatten(1), dim=1)
        d = 1 - phi @ phi.T
    elif space == "pixels":
        flat = x.flatten(1)
        d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    else:
        raise ValueError(f"space must be 'features' or 'pixels', got {space!r}.")
    i, j = torch.triu_indices(len(x), len(x), 1)
    return float(d[i, j].mean())
