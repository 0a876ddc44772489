"""Gram matrices, texture synthesis and style transfer, on the synthesis engine (seed 001, Gatys et al.).

* :func:`style_targets`: the exemplar's Gram matrices ``G^l_ij = Σ_k F^l_ik F^l_jk`` of a layer's
  ``N_l × M_l`` features (:func:`introspect_lab.synthesis.objectives.gram`);
* :func:`texture_synthesis`: from noise, minimise ``L = Σ_l w_l E_l`` with
  ``E_l = 1/(4 N_l² M_l²) Σ_ij (G^l_ij − Ĝ^l_ij)²`` (Gatys, Ecker & Bethge 2015);
* :func:`style_transfer`: minimise ``α L_content + β L_style + γ R_{V^β}``
  with ``L_content = ½ Σ (F^l − P^l)²`` (Gatys, Ecker & Bethge 2016).

Both take their settings dataclass plus overrides by field name, with the
style layers and their weights under the same names (``style_layers``,
``style_weights``), defaulting to the registry's ``models.model_settings(model).texture``
and ``.style`` (:class:`~introspect_lab.settings.TextureSettings`,
:class:`~introspect_lab.settings.StyleSettings`).
The Gram loss ``E_l`` is :func:`introspect_lab.synthesis.objectives.gram_error`.

Targets (the exemplar's Grams, the content features) are computed once
with a truncated forward pass; each step runs the model only up to the
deepest style/content layer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..config import fresh_seed, show_progress
from ..devices import returns_to_input_device
from ..images import as_model_input, check_batch, normalize
from ..info import model_info
from ..models import model_settings
from ..settings import StyleSettings, TextureSettings, override
from ..synthesis import SynthesisResult, image_size, layer_features, synthesize
from ..synthesis import objectives as O
from ..synthesis import priors as R
from ..synthesis.engine import model_forward
from .networks import texture_settings

__all__ = ["style_targets", "style_losses", "texture_synthesis", "style_transfer"]


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


def style_targets(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The exemplar's Gram matrices ``A^l`` at ``layers`` (one truncated forward pass, no gradient)."""
    feats = layer_features(model, as_model_input(check_batch(image, "image", model), model), list(layers))
    return {n: O.gram(f) for n, f in feats.items()}


def style_losses(
    model: nn.Module, image: torch.Tensor, style: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Each layer's ``E_l`` for ``image`` against Gram targets ``style`` (for reports and tests)."""
    feats = layer_features(model, as_model_input(check_batch(image, "image", model), model), list(style))
    return {n: float(O.gram_error(a, style[n]).sum()) for n, a in feats.items()}


def _with_layer_weights(base, overrides: dict) -> dict:
    """``overrides`` with ``style_layers``/``style_weights`` resolved: layers given without weights get 1.

    ``style_weights`` may be a mapping ``{layer: w}`` or a list in layer order
    (:func:`~introspect_lab.synthesis.objectives.layer_weights`).
    """
    layers, weights = overrides.get("style_layers"), overrides.get("style_weights")
    if weights is None:
        weights = base.style_weights if layers is None else None
    layers = list(base.style_layers if layers is None else layers)
    w = O.layer_weights(layers, weights)
    return {**overrides, "style_layers": tuple(layers), "style_weights": tuple(w.values())}


@returns_to_input_device("texture")
def texture_synthesis(
    model: nn.Module,
    texture: torch.Tensor,
    settings: TextureSettings | None = None,
    *,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Gatys texture synthesis: from noise, minimise ``Σ_l w_l E_l + λ_c L_colour + λ_TV R_{V^2}`` (seed 001).

    Seed 001's "Neural Texture Synthesis" (Gatys, Ecker & Bethge 2015).
    Settings: ``settings`` (default ``models.model_settings(model).texture``, a
    :class:`~introspect_lab.settings.TextureSettings`) with ``overrides`` by
    field name: ``style_layers`` and ``style_weights`` (``w_l``; 1 each when
    only the layers are given), ``colour_weight`` (``λ_c``, the pixels' colour
    mean and covariance, :func:`~introspect_lab.synthesis.objectives.colour_loss`,
    a "layer 0"), ``tv_weight`` (``λ_TV``), ``size``, ``steps``, ``lr``. Lower
    ``style_layers`` reproduce fine colour statistics; adding higher layers
    recovers larger structures. ``result.extra`` holds the Gram loss of the
    starting noise (``loss_start``) and of the result (``loss_end``).

    Any network works: the default settings are
    :func:`~introspect_lab.texture.networks.texture_settings` (the registry's
    for a classifier; L-BFGS with relative layer errors for the random
    networks of :mod:`~introspect_lab.texture.networks`). With
    ``optimizer="lbfgs"`` the loss is ``Σ_l w_l E_l / Ê_l + λ_c L_colour +
    λ_TV R_{V^2}``, ``Ê_l`` the exemplar's own Gram energy and ``R_{V^2}``
    wrapping around (``circular=True``: the shallow network pads circularly,
    and the last row and column are smoothed like the rest), minimised by
    ``torch.optim.LBFGS`` (strong-Wolfe line search) from U(0, 1) noise, and
    ``loss_start``/``loss_end`` are that whole loss (``extra["evaluations"]``
    counts the forward passes); it takes no ``callback``.
    """
    base = settings or texture_settings(model)
    cfg = override(base, **_with_layer_weights(base, overrides))
    layers = list(cfg.style_layers)
    w = dict(zip(layers, cfg.style_weights))
    hw = image_size(cfg.size)
    texture = _resize(as_model_input(check_batch(texture, "texture", model), model), hw)
    if cfg.optimizer == "lbfgs":
        if callback is not None:
            raise ValueError("optimizer='lbfgs' takes no callback; use optimizer='adam' for a live view.")
        if texture.shape[0] != 1:
            raise ValueError(
                f"optimizer='lbfgs' makes one texture at a time, got {texture.shape[0]} exemplars; "
                "loop over them, or use optimizer='adam' for a batch."
            )
        return _lbfgs_synthesis(model, texture, cfg, seed, progress)
    targets = style_targets(model, texture, layers)
    loss = O.style_loss(targets, w)
    if cfg.colour_weight:
        loss = loss + float(cfg.colour_weight) * O.colour_loss(texture)
    if cfg.tv_weight:
        loss = loss + float(cfg.tv_weight) * R.tv()
    res = synthesize(
        model,
        -loss,
        size=hw,
        init="uniform",
        steps=cfg.steps,
        optimizer="adam",
        lr=cfg.lr,
        seed=seed,
        callback=callback,
        every=every,
        progress=progress,
        desc="texture synthesis",
    )
    # the Gram terms alone (weighted, as style_loss adds them) at the starting noise; the history's
    # first value also holds the colour and TV terms
    res.extra["loss_start"] = -sum(res.terms[f"gram[{n}]"][0] for n in layers if w[n] != 0)
    end = style_losses(model, res.image, targets)
    res.extra["loss_end"] = sum(w[n] * v for n, v in end.items())
    res.extra["layers"] = layers
    return res


def _lbfgs_synthesis(
    model: nn.Module, texture: torch.Tensor, cfg: TextureSettings, seed: int | None, progress: bool | None
) -> SynthesisResult:
    """:func:`texture_synthesis` with L-BFGS and relative layer errors (Gatys et al. 2015's optimiser)."""
    layers, w = list(cfg.style_layers), dict(zip(cfg.style_layers, cfg.style_weights))
    feats = layer_features(model, texture, layers)
    grams = {n: O.gram(f) for n, f in feats.items()}
    energy = {n: float(O.gram_error(feats[n] * 0, grams[n]).sum()) for n in layers}
    colour = O.colour_loss(texture)
    lo, hi = (normalize(torch.full_like(texture[:1, :, :1, :1], v), model) for v in (0.0, 1.0))
    seed = fresh_seed() if seed is None else int(seed)
    noise = torch.rand(1, 3, *texture.shape[-2:], generator=torch.Generator().manual_seed(seed))
    x = normalize(noise.to(texture), model).requires_grad_(True)
    t0 = time.perf_counter()
    with model_forward(model, frozenset(layers)) as run:

        def loss_fn() -> torch.Tensor:
            acts = run(x)
            total = sum(w[n] * O.gram_error(acts[n], grams[n]).sum() / energy[n] for n in layers)
            total = total + cfg.colour_weight * colour(O.Context({}, image=x, input=x))
            return total + cfg.tv_weight * R.total_variation(x, circular=True)

        with torch.no_grad():
            start = float(loss_fn())
        evals = _run_lbfgs(x, loss_fn, cfg, progress)
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
            end = float(loss_fn())
    image = x.detach()
    info = model_info(model)
    return SynthesisResult(
        image=image,
        best_image=image,
        best_value=-end,
        history=[-start, -end],
        terms={},
        steps_done=cfg.steps,
        seconds=time.perf_counter() - t0,
        mean=tuple(info.mean),
        std=tuple(info.std),
        extra={"loss_start": start, "loss_end": end, "evaluations": evals, "layers": layers, "seed": seed},
    )


def _run_lbfgs(x: torch.Tensor, loss_fn, cfg: TextureSettings, progress: bool | None) -> int:
    """``cfg.steps`` L-BFGS iterations on ``x`` (at most ⌈1.25·steps⌉ evaluations); returns their count."""
    opt = torch.optim.LBFGS(
        [x],
        lr=cfg.lr,
        max_iter=cfg.steps,
        max_eval=int(1.25 * cfg.steps + 0.999),
        history_size=20,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    evals = 0
    show = show_progress() if progress is None else bool(progress)
    bar = tqdm(
        total=opt.defaults["max_eval"], desc="texture synthesis (L-BFGS)", disable=not show, leave=False
    )

    def closure() -> torch.Tensor:
        nonlocal evals
        evals += 1
        bar.update(1)
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    with bar:
        opt.step(closure)
    return evals


@returns_to_input_device("content")
def style_transfer(
    model: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    settings: StyleSettings | None = None,
    *,
    init: str | torch.Tensor = "content",
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Neural style transfer: ``min_I α L_content + Σ_l w_l E_l + λ_TV R_{V^2}`` (seed 001, Gatys et
    al. 2016).

    ``L_content = ½ Σ (F^l − P^l)²`` at the content layer against the content
    photo; ``E_l`` the Gram loss against the style image at each style layer;
    ``R_{V^2}`` total variation. Starts from the content photo
    (``init="content"``) or noise. Settings: ``settings`` (default
    ``models.model_settings(model).style``, a :class:`~introspect_lab.settings.StyleSettings`)
    with ``overrides`` by field name: ``content_layer``, ``content_weight``
    (``α``), ``style_layers`` and ``style_weights`` (``w_l``; 1 each when only
    the layers are given), ``tv_weight`` (``λ_TV``), ``colour_weight`` (the
    style image's pixel colour statistics,
    :func:`~introspect_lab.synthesis.objectives.colour_loss`), ``size``,
    ``steps``, ``lr``, ``lr_drop``, ``clamp_range``. ``result.extra`` has the
    content and style losses at the start and end.
    """
    base = settings or model_settings(model).style
    cfg = override(base, **_with_layer_weights(base, overrides))
    layers = list(cfg.style_layers)
    w = dict(zip(layers, cfg.style_weights))
    hw = image_size(cfg.size)
    content = _resize(as_model_input(check_batch(content, "content", model), model), hw)
    style = _resize(as_model_input(check_batch(style, "style", model), model), hw)
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
        model,
        -loss,
        size=hw,
        init=start,
        steps=cfg.steps,
        optimizer="adam",
        lr=cfg.lr,
        lr_drop=cfg.lr_drop,
        clamp=clamp,
        seed=seed,
        callback=callback,
        every=every,
        progress=progress,
        desc="style transfer",
    )

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
