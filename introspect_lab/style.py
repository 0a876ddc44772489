"""Gram matrices, texture synthesis and style transfer, on the synthesis engine (seed 001, Gatys et al.).

* :func:`gram_matrix`: ``G^l_ij = Σ_k F^l_ik F^l_jk`` of a layer's ``N_l × M_l`` features;
* :func:`texture_synthesis`: from noise, minimise ``L = Σ_l w_l E_l`` with
  ``E_l = 1/(4 N_l² M_l²) Σ_ij (G^l_ij − Ĝ^l_ij)²`` (Gatys, Ecker & Bethge 2015);
* :func:`style_transfer`: minimise ``α L_content + β L_style + γ R_{V^β}``
  with ``L_content = ½ Σ (F^l − P^l)²`` (Gatys, Ecker & Bethge 2016).

Targets (the exemplar's Grams, the content features) are computed once
with a truncated forward pass; each step runs the model only up to the
deepest style/content layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import objectives as O
from . import regularizers as R
from .synthesis import SynthesisResult, _as_batch, _lr_drop, _merge, _size, layer_features, synthesize

__all__ = ["gram_matrix", "style_targets", "style_losses", "texture_synthesis", "style_transfer"]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``G = F Fᵀ`` with ``F`` the ``[N, H·W]`` reshaped features, per image: ``[B, N, N]`` (seed 001).

    Unnormalised, as in the seed; the loss :func:`~introspect_lab.objectives.gram_loss`
    applies ``1/(4 N² M²)``.
    """
    return O.gram(features)


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


def style_targets(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The exemplar's Gram matrices ``A^l`` at ``layers`` (one truncated forward pass, no gradient)."""
    feats = layer_features(model, _as_batch(image).float(), list(layers))
    return {n: gram_matrix(f) for n, f in feats.items()}


def style_losses(
    model: nn.Module, image: torch.Tensor, style: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Each layer's ``E_l`` for ``image`` against Gram targets ``style`` (for reports and tests)."""
    feats = layer_features(model, _as_batch(image).float(), list(style))
    out = {}
    for n, a in feats.items():
        nl, ml = a.shape[1], a.shape[2] * a.shape[3]
        out[n] = float((gram_matrix(a) - style[n]).pow(2).sum() / (4.0 * nl**2 * ml**2))
    return out


def _weights(layers: Sequence[str], weights) -> dict[str, float]:
    if weights is None:
        return dict.fromkeys(layers, 1.0)
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(layers)
        if unknown:
            raise ValueError(
                f"Weights for layers {sorted(unknown)} that are not style layers {list(layers)}."
            )
        return {n: float(weights.get(n, 0.0)) for n in layers}
    weights = list(weights)
    if len(weights) != len(layers):
        raise ValueError(f"Got {len(weights)} style weights for {len(layers)} style layers {list(layers)}.")
    return {n: float(w) for n, w in zip(layers, weights)}


def texture_synthesis(
    model: nn.Module,
    texture: torch.Tensor,
    layers: Sequence[str] | None = None,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    size: int | tuple[int, int] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    tv: float = 0.0,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Gatys texture synthesis: from noise, minimise ``Σ_l w_l E_l`` (seed 001, "Neural Texture Synthesis").

    Lower ``layers`` reproduce fine colour statistics; adding higher layers
    recovers larger structures. ``result.extra`` holds the Gram loss of the
    starting noise (``loss_start``) and of the result (``loss_end``).
    """
    cfg = _merge(model, "style", dict(size=size, steps=steps, lr=lr))
    layers = list(layers or cfg["style_layers"])
    w = _weights(layers, weights)
    hw = _size(cfg["size"])
    texture = _resize(_as_batch(texture).float(), hw)
    targets = style_targets(model, texture, layers)
    loss = O.style_loss(targets, w)
    if tv:
        loss = loss + float(tv) * R.tv()
    res = synthesize(
        model, -loss, size=hw, init="uniform", steps=cfg["steps"], optimizer="adam", lr=cfg["lr"],
        seed=seed, callback=callback, every=every, progress=progress, desc="texture synthesis",
    )  # fmt: skip
    res.extra["loss_start"] = -res.history[0]
    end = style_losses(model, res.image, targets)
    res.extra["loss_end"] = sum(w[n] * v for n, v in end.items())
    res.extra["layers"] = layers
    return res


def style_transfer(
    model: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    content_layer: str | None = None,
    style_layers: Sequence[str] | None = None,
    style_weights: Mapping[str, float] | Sequence[float] | None = None,
    content_weight: float | None = None,
    tv: float | None = None,
    size: int | tuple[int, int] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    init: str | torch.Tensor = "content",
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Neural style transfer: ``min_I α L_content + Σ_l w_l E_l + γ R_{V^β}`` (seed 001; Gatys et al. 2016).

    ``L_content = ½ Σ (F^l − P^l)²`` at ``content_layer`` against the content
    photo, ``E_l`` the Gram loss against the style image at each style layer
    (per-layer ``style_weights``), ``R_{V^β}`` total variation (β = 2).
    Starts from the content photo (``init="content"``) or noise.
    ``result.extra`` has the content and style losses at the start and end.
    """
    cfg = _merge(model, "style", dict(content_layer=content_layer, style_layers=style_layers,
                                      style_weights=style_weights, content_weight=content_weight, tv=tv,
                                      size=size, steps=steps, lr=lr))  # fmt: skip
    hw = _size(cfg["size"])
    content = _resize(_as_batch(content).float(), hw)
    style = _resize(_as_batch(style).float(), hw)
    layers = list(cfg["style_layers"])
    w = _weights(layers, cfg["style_weights"])
    targets = style_targets(model, style, layers)
    c_layer = cfg["content_layer"]
    p_target = layer_features(model, content, c_layer)[c_layer]
    c_loss = O.content_loss(c_layer, p_target)
    loss = float(cfg["content_weight"]) * c_loss + O.style_loss(targets, w)
    if cfg["tv"]:
        loss = loss + float(cfg["tv"]) * R.tv()
    start = content if isinstance(init, str) and init == "content" else init
    clamp = tuple(cfg["clamp_range"]) if cfg.get("clamp_range") else True
    res = synthesize(
        model, -loss, size=hw, init=start, steps=cfg["steps"], optimizer="adam", lr=cfg["lr"],
        lr_schedule=_lr_drop(cfg), clamp=clamp, seed=seed, callback=callback, every=every, progress=progress,
        desc="style transfer",
    )  # fmt: skip

    def losses(img):
        f = layer_features(model, img, c_layer)[c_layer]
        return 0.5 * float((f - p_target).pow(2).sum()), sum(
            w[n] * v for n, v in style_losses(model, img, targets).items()
        )

    init_img = res.extra.get("init")
    with torch.no_grad():
        first = content if init_img is None else init_img
        res.extra["content_start"], res.extra["style_start"] = losses(first)
        res.extra["content_end"], res.extra["style_end"] = losses(res.image)
    res.extra["content"] = content
    res.extra["style"] = style
    return res
