"""Gram matrices, texture synthesis and style transfer, on the synthesis engine (seed 001, Gatys et al.).

* :func:`style_targets`: the exemplar's Gram matrices ``G^l_ij = Σ_k F^l_ik F^l_jk`` of a layer's
  ``N_l × M_l`` features (:func:`introspect_lab.synthesis.objectives.gram`);
* :func:`texture_synthesis`: from noise, minimise ``L = Σ_l w_l E_l`` with
  ``E_l = 1/(4 N_l² M_l²) Σ_ij (G^l_ij − Ĝ^l_ij)²`` (Gatys, Ecker & Bethge 2015);
* :func:`style_transfer`: minimise ``α L_content + β L_style + γ R_{V^β}``
  with ``L_content = ½ Σ (F^l − P^l)²`` (Gatys, Ecker & Bethge 2016).

Both take the style layers and their weights under the same names
(``style_layers``, ``style_weights``) and default to the registry's
``models.settings(model).style`` (:class:`~introspect_lab.settings.StyleSettings`).
The Gram loss ``E_l`` is :func:`introspect_lab.synthesis.objectives.gram_error`.

Targets (the exemplar's Grams, the content features) are computed once
with a truncated forward pass; each step runs the model only up to the
deepest style/content layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..images import check_batch
from ..models import settings as model_settings
from ..settings import StyleSettings, override
from ..synthesis import SynthesisResult, image_size, layer_features, synthesize
from ..synthesis import objectives as O
from ..synthesis import priors as R

__all__ = ["style_targets", "style_losses", "texture_synthesis", "style_transfer"]


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


def style_targets(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The exemplar's Gram matrices ``A^l`` at ``layers`` (one truncated forward pass, no gradient)."""
    feats = layer_features(model, check_batch(image, "image", model).float(), list(layers))
    return {n: O.gram(f) for n, f in feats.items()}


def style_losses(
    model: nn.Module, image: torch.Tensor, style: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Each layer's ``E_l`` for ``image`` against Gram targets ``style`` (for reports and tests)."""
    feats = layer_features(model, check_batch(image, "image", model).float(), list(style))
    return {n: float(O.gram_error(a, style[n]).sum()) for n, a in feats.items()}


def texture_synthesis(
    model: nn.Module,
    texture: torch.Tensor,
    style_layers: Sequence[str] | None = None,
    style_weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    settings: StyleSettings | None = None,
    size: int | tuple[int, int] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    tv_weight: float | None = None,
    colour_weight: float | None = None,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Gatys texture synthesis: from noise, minimise ``Σ_l w_l E_l + λ_c L_colour + λ_TV R_{V^2}`` (seed 001).

    Seed 001's "Neural Texture Synthesis" (Gatys, Ecker & Bethge 2015).
    ``w_l`` are ``style_weights`` (1 each when ``style_layers`` is given,
    else the registry's); ``λ_c`` is ``colour_weight`` on the pixels' colour
    mean and covariance (:func:`~introspect_lab.synthesis.objectives.colour_loss`, a
    "layer 0"), ``λ_TV`` is ``tv_weight``. Unset values, including
    ``steps``/``lr``/``tv_weight``/``colour_weight`` (the settings'
    ``texture_`` fields), come
    from ``models.settings(model).style``. Lower ``style_layers`` reproduce
    fine colour statistics; adding higher layers recovers larger
    structures. ``result.extra`` holds the Gram loss of the starting noise
    (``loss_start``) and of the result (``loss_end``).
    """
    base = settings or model_settings(model).style
    cfg = override(base, size=size, texture_steps=steps, texture_lr=lr, texture_tv_weight=tv_weight,
                   texture_colour_weight=colour_weight)  # fmt: skip
    if style_layers is None:
        style_layers = cfg.style_layers
        style_weights = cfg.style_weights if style_weights is None else style_weights
    layers = list(style_layers)
    w = O.layer_weights(layers, style_weights)
    hw = image_size(cfg.size)
    texture = _resize(check_batch(texture, "texture", model).float(), hw)
    targets = style_targets(model, texture, layers)
    loss = O.style_loss(targets, w)
    if cfg.texture_colour_weight:
        loss = loss + float(cfg.texture_colour_weight) * O.colour_loss(texture)
    if cfg.texture_tv_weight:
        loss = loss + float(cfg.texture_tv_weight) * R.tv()
    res = synthesize(
        model, -loss, size=hw, init="uniform", steps=cfg.texture_steps, optimizer="adam", lr=cfg.texture_lr,
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
    settings: StyleSettings | None = None,
    content_layer: str | None = None,
    style_layers: Sequence[str] | None = None,
    style_weights: Mapping[str, float] | Sequence[float] | None = None,
    content_weight: float | None = None,
    tv_weight: float | None = None,
    colour_weight: float | None = None,
    size: int | tuple[int, int] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    init: str | torch.Tensor = "content",
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Neural style transfer: ``min_I α L_content + Σ_l w_l E_l + λ_TV R_{V^2}`` (seed 001; Gatys et al. 2016).

    ``L_content = ½ Σ (F^l − P^l)²`` at ``content_layer`` against the content
    photo (``α`` is ``content_weight``); ``E_l`` the Gram loss against the
    style image at each of ``style_layers`` (weights ``w_l``:
    ``style_weights``, 1 each when only ``style_layers`` is given);
    ``R_{V^2}`` total variation (``tv_weight``); ``colour_weight`` adds the
    style image's pixel colour statistics (:func:`~introspect_lab.synthesis.objectives.colour_loss`). Starts from the content
    photo (``init="content"``) or noise. Unset parameters come from
    ``models.settings(model).style``. ``result.extra`` has the content and
    style losses at the start and end.
    """
    base = settings or model_settings(model).style
    layers = list(base.style_layers if style_layers is None else style_layers)
    if style_weights is None:
        style_weights = base.style_weights if style_layers is None else (1.0,) * len(layers)
    w = O.layer_weights(layers, style_weights)
    cfg = override(base, content_layer=content_layer, style_layers=tuple(layers), style_weights=tuple(w.values()),
                   content_weight=content_weight, tv_weight=tv_weight, colour_weight=colour_weight, size=size,
                   steps=steps, lr=lr)  # fmt: skip
    hw = image_size(cfg.size)
    content = _resize(check_batch(content, "content", model).float(), hw)
    style = _resize(check_batch(style, "style", model).float(), hw)
    targets = style_targets(model, style, layers)
    c_layer = cfg.content_layer
    p_target = layer_features(model, content, c_layer)[c_layer]
    c_loss = O.content_loss(c_layer, p_target)
    loss = float(cfg.content_weight) * c_loss + O.style_loss(targets, w)
    if cfg.colour_weight:
        loss = loss + float(cfg.colour_weight) * O.colour_loss(style)
    if cfg.tv_weight:
        loss = loss + float(cfg.tv_weight) * R.tv()
    start = content if isinstance(init, str) and init == "content" else init
    clamp = tuple(cfg.clamp_range) if cfg.clamp_range else True
    res = synthesize(
        model, -loss, size=hw, init=start, steps=cfg.steps, optimizer="adam", lr=cfg.lr, lr_drop=cfg.lr_drop,
        clamp=clamp, seed=seed, callback=callback, every=every, progress=progress, desc="style transfer",
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
