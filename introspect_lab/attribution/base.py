"""The steps every attribution method shares: targets, logits, upsampling, channel reduction, masks.

Used by :mod:`.gradients`, :mod:`.perturbation`, :mod:`.cam` and
:mod:`.evaluation`; the public ones (:func:`to_map`,
:func:`saliency_to_mask`) are re-exported by :mod:`introspect_lab.attribution`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import frozen
from ..lazy import lazy_import
from ..models import class_indices, model_info
from ..validation import check_probability

ndimage = lazy_import("scipy.ndimage")

__all__ = ["to_map", "reduce_channels", "saliency_to_mask"]

Target = int | str | Sequence[int | str] | torch.Tensor | None

REDUCTIONS = ("none", "max", "mean")


def resolve_targets(model: nn.Module, target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Class indices ``[B]`` for ``target``, checked against the model's output size.

    ``target`` is ``None`` (the model's prediction), a class index or name for
    every image, or one per image (a list, tensor or numpy array).
    """
    batch, n_classes = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    if hasattr(target, "tolist") and not isinstance(target, torch.Tensor):  # numpy arrays and scalars
        target = target.tolist()
    cats = model_info(model).categories
    if len(cats) != n_classes:
        names = (
            [target] if isinstance(target, str) else list(target) if isinstance(target, (list, tuple)) else []
        )
        if any(isinstance(t, str) for t in names):
            raise ValueError(
                f"This model has {n_classes} classes and no class names; give the target as an index "
                f"0..{n_classes - 1}."
            )
        cats = [str(i) for i in range(n_classes)]
    idx = class_indices(cats, target, batch)
    for i in idx:
        if not 0 <= i < n_classes:
            raise ValueError(f"Class index {i} is out of range: this model has classes 0..{n_classes - 1}.")
    return torch.tensor(idx, device=logits.device)


def logits_of(out) -> torch.Tensor:
    """The class scores ``[B, classes]`` of a model output (the first element of a tuple)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"The model must return class scores [B, classes]; it returned {shape}.")
    return out


def forward_eval(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's class scores for ``x`` in eval mode (flags restored afterwards)."""
    with frozen(model):
        return logits_of(model(x))


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """``[B,h,w]`` → ``[B,H,W]`` by ``mode`` interpolation (``align_corners=False``)."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"interpolate must be 'bilinear', 'nearest' or 'bicubic', got {mode!r}.")
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, **kwargs).squeeze(1)


def finish_map(
    maps: torch.Tensor, x: torch.Tensor, *, relu: bool, raw: bool, interpolate: str
) -> torch.Tensor:
    """The last step of CAM and Grad-CAM: optional ReLU, then upsampling to the input size."""
    if relu:
        maps = maps.clamp(min=0)
    return maps if raw else upsample(maps, tuple(x.shape[-2:]), interpolate)


def to_map(attr: torch.Tensor) -> torch.Tensor:
    """A pixel-space attribution ``[B,3,H,W]`` as a map ``[B,H,W]``: max over channels of ``|a|``.

    Lecture 003's aggregation for saliency, ``M_{r,s} = max_t |a_{r,s,t}|``;
    maps that are already ``[B,H,W]`` pass through.
    """
    if attr.dim() == 4:
        return attr.abs().amax(1)
    if attr.dim() == 3:
        return attr
    raise ValueError(f"Expected an attribution [B,3,H,W] or a map [B,H,W], got {tuple(attr.shape)}.")


def reduce_channels(attr: torch.Tensor, reduce: str) -> torch.Tensor:
    """``[B,3,H,W]`` → ``[B,H,W]`` by ``reduce``: ``"max"`` = ``max_c |a_c|`` (lecture 003),
    ``"mean"`` = ``mean_c |a_c|``; ``"none"`` returns ``attr`` unchanged.
    """
    if reduce == "none":
        return attr
    if reduce == "max":
        return attr.abs().amax(1)
    if reduce == "mean":
        return attr.abs().mean(1)
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}.")


def saliency_to_mask(
    maps: torch.Tensor,
    *,
    quantile: float = 0.9,
    threshold: float | None = None,
    sigma: float = 2.0,
    fill_holes: bool = True,
    largest: bool = True,
) -> torch.Tensor:
    """A binary object mask from a saliency map: smoothing, a threshold, hole filling.

    Paper 002 (Wei et al., Sec. 5): "a simple thresholding and hole filling
    to find the support of its key part"; lecture 004's "segmentation from
    saliency maps". Steps per image: Gaussian smoothing (``sigma`` px), keep
    pixels above ``threshold`` (a fraction of the map's maximum) or, by
    default, above the ``quantile`` of the map, optionally keep the largest
    connected region, fill holes (``scipy.ndimage.binary_fill_holes``).

    ``maps`` is ``[B,H,W]`` (or ``[B,3,H,W]``, reduced by :func:`to_map`).
    Returns a bool tensor ``[B,H,W]``. (GrabCut, which the lecture uses on top,
    needs OpenCV and is not included.)
    """
    check_probability("quantile", quantile, open_low=True, open_high=True)
    if threshold is not None:
        check_probability("threshold (a fraction of each map's maximum)", threshold)
    maps = to_map(maps.detach()).float().cpu().numpy()
    masks = []
    for m in maps:
        if sigma > 0:
            m = ndimage.gaussian_filter(m, sigma)
        cut = threshold * m.max() if threshold is not None else np.quantile(m, quantile)
        mask = m > cut
        if largest and mask.any():
            labels, n = ndimage.label(mask)
            if n > 1:
                sizes = ndimage.sum(mask, labels, range(1, n + 1))
                mask = labels == (1 + int(np.argmax(sizes)))
        if fill_holes:
            mask = ndimage.binary_fill_holes(mask)
        masks.append(mask)
    return torch.from_numpy(np.stack(masks))
