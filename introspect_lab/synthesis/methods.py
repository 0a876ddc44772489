"""The synthesis methods of the lectures, each an objective plus :func:`~.engine.synthesize`.

:func:`visualize_class`, :func:`visualize_channel`, :func:`deepdream` and
:func:`invert` (texture and style are in :mod:`introspect_lab.texture.gatys`). Each takes
the task's settings dataclass (default: the registry's,
``models.model_settings(model).class_vis`` etc., :mod:`introspect_lab.settings`)
plus ``**overrides`` by field name (:func:`~introspect_lab.settings.override`
rejects unknown names; ``None`` leaves a field as it is).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import returns_to_input_device
from ..images import as_model_input, check_batch, denormalize
from ..info import model_info
from ..models import get_layer, model_settings
from ..settings import ClassVisSettings, DreamSettings, InversionSettings, override
from ..validation import check_channels
from . import objectives as O
from . import priors as R
from .engine import SynthesisResult, layer_features, synthesize
from .parameterisation import image_size
from .patch_prior import PatchPrior

__all__ = [
    "visualize_class",
    "visualize_channel",
    "ascend",
    "deepdream",
    "invert",
    "relative_error",
    "yosinski_priors",
]


def yosinski_priors(cfg: ClassVisSettings) -> tuple[list, list]:
    """``(transforms, image_ops)`` for ``cfg``: pad/jitter/scale/rotate, periodic blur, small-pixel/gradient
    clipping.

    Yosinski et al. (2015) as in seed 001's "better regularizer"; a zero
    field switches its piece off.
    """
    ops: list[R.StepOp] = []
    if cfg.blur_every and cfg.blur_sigma:
        ops.append(R.GaussianBlur(every=int(cfg.blur_every), sigma=float(cfg.blur_sigma)))
    if cfg.clip_pixels:
        ops.append(R.ClipSmallPixels(float(cfg.clip_pixels)))
    if cfg.clip_grads:
        ops.append(R.ClipSmallGradients(float(cfg.clip_grads)))
    transforms: list = [R.Pad(int(cfg.pad))] if cfg.pad else []
    if cfg.jitter:
        transforms.append(R.Jitter(int(cfg.jitter)))
    if cfg.scale:
        transforms.append(R.RandomScale(*cfg.scale))
    if cfg.rotate:
        transforms.append(R.RandomRotate(float(cfg.rotate)))
    if cfg.pad and cfg.jitter:  # Lucent ends with a smaller jitter after scale and rotate
        transforms.append(R.Jitter(max(1, int(cfg.jitter) // 2)))
    return transforms, ops


def visualize_class(
    model: nn.Module,
    target: int | str | Sequence[int | str],
    settings: ClassVisSettings | None = None,
    *,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Class visualisation: ``argmax_I S_c(I) − λ‖I‖²`` by gradient ascent (seed 001; Simonyan et al. 2014).

    ``target`` is a class (index or name) or one per image. The settings are
    ``settings`` (default ``models.model_settings(model).class_vis``, a
    :class:`~introspect_lab.settings.ClassVisSettings`) with ``overrides`` by
    field name; the fields that matter:

    * ``l2_weight`` (λ), ``steps``, ``lr``, ``optimizer``, ``size``, ``init_scale``;
    * the lecture's "better regularizer" (Yosinski et al. 2015): ``blur_every``,
      ``blur_sigma``, ``jitter``, ``clip_pixels``, ``clip_grads``;
    * Lucent's recipe: ``param="fft"`` (a decorrelated Fourier spectrum),
      ``pad``, ``scale``, ``rotate`` (``settings=introspect_lab.settings.LUCENT``).

    ``l2_weight=0, blur_every=0, jitter=0`` is the unregularised (noisy)
    version. An unknown name raises ``TypeError``; ``None`` leaves a field as it is.
    """
    cfg = override(settings or model_settings(model).class_vis, **overrides)
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    obj = O.class_score(model, targets if len(targets) > 1 else targets[0])
    run = dict(seed=seed, callback=callback, every=every, progress=progress)
    return ascend(model, obj, cfg, batch=len(targets), desc="class visualisation", **run)


def visualize_channel(
    model: nn.Module,
    layer: str,
    channel: int | Sequence[int],
    settings: ClassVisSettings | None = None,
    *,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Per-channel feature visualisation: maximise the mean of channel ``c`` of ``layer`` (seed 003).

    ``argmax_I (1/HW) Σ_{h,w} A_c(I)_{h,w} − λ‖I‖²``. Several channels give a
    batch, one image per channel, in one run (the forward pass stops at
    ``layer``). Early layers give colours and edges, deeper layers textures
    and parts. Settings: ``settings`` (default ``models.model_settings(model).channel_vis``)
    with ``overrides`` by field name, as in :func:`visualize_class`
    (``l2_weight``, ``steps``, ``lr``, ``size``, ``blur_every``, ``jitter``, …).
    """
    chans = list(channel) if isinstance(channel, (list, tuple)) else [channel]
    cfg = override(settings or model_settings(model).channel_vis, **overrides)
    get_layer(model, layer)

    def fn(ctx):
        a = ctx[layer]
        idx = torch.tensor(check_channels(a, chans, layer))
        sel = a[torch.arange(len(chans)), idx] if a.shape[0] == len(chans) else a[:, idx[0]]
        return sel.reshape(sel.shape[0], -1).mean(1).sum()

    obj = O.Objective.term(f"channel[{layer}:{chans}]", fn, [layer])
    run = dict(seed=seed, callback=callback, every=every, progress=progress)
    return ascend(model, obj, cfg, batch=len(chans), desc=f"channels of {layer}", **run)


def ascend(
    model: nn.Module,
    objective: O.Objective,
    cfg: ClassVisSettings,
    *,
    init: str | torch.Tensor = "noise",
    batch: int = 1,
    desc: str = "gradient ascent",
    after: Sequence = (),
    **run,
) -> SynthesisResult:
    """Gradient ascent on ``objective − λ‖I‖²`` with the priors of ``cfg`` (Yosinski et al. 2015; Lucent).

    The one loop behind :func:`visualize_class`, :func:`visualize_channel` and
    :func:`~introspect_lab.synthesis.multifaceted.multifaceted`: λ is
    ``cfg.l2_weight``, the transforms and image operations come from
    :func:`yosinski_priors`, and ``size``, ``steps``, ``optimizer``, ``lr``,
    ``param`` and ``init_scale`` from ``cfg``. ``init`` is ``"noise"`` or
    start images; ``after`` are transforms applied after ``cfg``'s (e.g. a
    crop back to size); ``run`` passes ``seed``, ``callback``, ``every`` and
    ``progress`` to :func:`~introspect_lab.synthesis.engine.synthesize`.
    """
    if cfg.l2_weight:
        objective = objective - float(cfg.l2_weight) * R.l2()
    transforms, ops = yosinski_priors(cfg)
    transforms += list(after)
    return synthesize(
        model,
        objective,
        size=cfg.size,
        batch=batch,
        init=init,
        init_scale=cfg.init_scale,
        param=cfg.param,
        steps=cfg.steps,
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        transforms=transforms,
        image_ops=ops,
        desc=desc,
        **run,
    )


@returns_to_input_device("image")
def deepdream(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | None = None,
    settings: DreamSettings | None = None,
    *,
    strength: float = 1.0,
    size: int | tuple[int, int] | None = None,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """DeepDream: amplify whatever ``layer`` sees, ``argmax_I Σ_i f_i(I)²`` (seed 001;
    Mordvintsev et al. 2015).

    Runs ``steps`` normalised ascent steps (``lr·g/mean|g|``) per octave,
    from the smallest octave (``image`` shrunk by ``octave_scale^(octaves−1)``)
    to full size; at each octave the *detail* added so far is upsampled onto
    the photo resized to that octave. ``strength`` scales the learning rate;
    ``size`` resizes the photo first; ``callback`` sees every octave's steps.
    Settings: ``settings`` (default ``models.model_settings(model).deepdream``, a
    :class:`~introspect_lab.settings.DreamSettings`) with ``overrides`` by field
    name: ``octaves``, ``octave_scale``, ``steps``, ``lr``, ``jitter``.
    """
    cfg = override(settings or model_settings(model).deepdream, layer=layer, **overrides)
    image = as_model_input(check_batch(image, "image", model), model)
    if size is not None:
        image = F.interpolate(
            image, size=image_size(size), mode="bilinear", align_corners=False, antialias=True
        )
    if not strength > 0:
        raise ValueError(f"strength must be > 0, got {strength}.")
    n_oct, scale = int(cfg.octaves), float(cfg.octave_scale)
    if n_oct < 1 or scale <= 1:
        raise ValueError("octaves must be ≥ 1 and octave_scale > 1.")
    h, w = image.shape[-2:]
    sizes = [(max(16, round(h / scale**k)), max(16, round(w / scale**k))) for k in reversed(range(n_oct))]
    obj = O.dream(cfg.layer)
    detail = torch.zeros_like(image)
    start = time.perf_counter()
    histories: list[float] = []
    res = None
    for i, hw in enumerate(sizes):
        base = F.interpolate(image, size=hw, mode="bilinear", align_corners=False) if hw != (h, w) else image
        d = F.interpolate(detail, size=hw, mode="bilinear", align_corners=False)
        res = synthesize(
            model,
            obj,
            size=hw,
            init=base + d,
            steps=cfg.steps,
            optimizer="dream",
            lr=cfg.lr * strength,
            transforms=[R.Jitter(int(cfg.jitter))] if cfg.jitter else [],
            seed=None if seed is None else seed + i,
            callback=callback,
            every=every,
            progress=progress,
            desc=f"octave {i + 1}/{n_oct}",
        )
        histories += res.history
        detail = res.image - base
        if res.interrupted or res.note.startswith("Stopped by the callback"):
            break
    res.history = histories
    res.seconds = time.perf_counter() - start
    return res


@returns_to_input_device("image")
def invert(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    settings: InversionSettings | None = None,
    *,
    prior: PatchPrior | None = None,
    prior_weight: float = 3.0,
    init: str | torch.Tensor = "zeros",
    init_scale: float = 0.1,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
    **overrides,
) -> SynthesisResult:
    """Feature inversion (Mahendran & Vedaldi 2015; seed 001; seed 002 Eq. 1 and, with ``prior``, Eq. 3).

    ``Î = argmin_I ‖Φ(I) − Φ₀‖²/‖Φ₀‖² + λ_α ‖I‖_α^α + λ_TV R_{V^β}(I) + R_γ Σ_p ‖Ĩ_p − D̃_p‖²``
    with ``Φ₀ = Φ(I₀)`` the features of ``image`` at ``layer``. The settings are
    ``settings`` (default ``models.model_settings(model).inversion``, an
    :class:`~introspect_lab.settings.InversionSettings`) with ``overrides`` by
    field name: ``λ_α`` is ``alpha_weight``, ``α`` ``alpha`` (``α = 2`` gives
    seed 002's ``R_α‖I‖²``), ``λ_TV`` ``tv_weight``, ``β`` ``tv_beta`` (``β = 2``:
    ``R_β‖∇I‖²``); also ``size``, ``steps``, ``lr``, ``lr_drop``, ``optimizer``.
    The last term is seed 002's patch prior (a
    :class:`~introspect_lab.synthesis.patch_prior.PatchPrior`, weight ``R_γ`` =
    ``prior_weight``), used when ``prior`` is given; without it this is
    Mahendran & Vedaldi's model. ``init``: ``"zeros"``, ``"noise"``
    (``init_scale``·N(0, 1) around the mean image, seed 002's "[8]+rand") or an
    image (e.g. the retrieved average, "[8]+[7]"). The result's ``extra``
    holds ``feature_error`` (Eq. 1's data term), ``relative_error``
    ``‖I₀ − Î‖/‖I₀‖`` in the model's normalised space and ``pixel_error`` in
    [0, 1] pixels (:func:`relative_error`; seed 002, Table 1).
    """
    cfg = override(settings or model_settings(model).inversion, **overrides)
    image = as_model_input(check_batch(image, "image", model), model)
    hw = image_size(cfg.size)
    if tuple(image.shape[-2:]) != hw:
        image = F.interpolate(image, size=hw, mode="bilinear", align_corners=False, antialias=True)
    phi0 = layer_features(model, image, layer)[layer]
    loss = O.feature_match(layer, phi0)
    if cfg.tv_weight:
        loss = loss + float(cfg.tv_weight) * R.tv(float(cfg.tv_beta))
    if cfg.alpha_weight:
        loss = loss + float(cfg.alpha_weight) * R.alpha_norm(float(cfg.alpha))
    if prior is not None:
        loss = loss + float(prior_weight) * prior.term()
    res = synthesize(
        model,
        -loss,
        size=hw,
        batch=image.shape[0],
        init=init,
        init_scale=init_scale,
        steps=cfg.steps,
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        lr_drop=cfg.lr_drop,
        image_ops=[prior] if prior is not None else [],
        seed=seed,
        callback=callback,
        every=every,
        progress=progress,
        desc=f"inverting {layer}" + (" with the patch prior" if prior is not None else ""),
    )
    info = model_info(model)
    with torch.no_grad():
        feats = layer_features(model, res.image, layer)[layer]
        res.extra["feature_error"] = float(((feats - phi0).pow(2).sum() / phi0.pow(2).sum()).item())
        res.extra["relative_error"] = relative_error(image, res.image)
        res.extra["pixel_error"] = relative_error(
            image, res.image, space="pixels", mean=info.mean, std=info.std
        )
    res.extra["target"] = image
    return res


def relative_error(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    *,
    space: str = "model",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> float:
    """Relative L2 distance ``‖I₀ − Î‖₂ / ‖I₀‖₂`` (seed 002, Table 1) of two normalised batches.

    ``space="model"``: in the model's normalised input space ``(x − μ)/σ``,
    with the dataset mean taken out, as in the paper's mean-subtracted Caffe
    inputs. ``space="pixels"``: in [0, 1] pixels (``mean``, ``std`` of the
    normalisation needed, values clamped), where the image's mean brightness
    makes up most of ``‖I₀‖`` and every error looks smaller.
    """
    if reference.shape != estimate.shape:
        raise ValueError(f"Shapes differ: {tuple(reference.shape)} vs {tuple(estimate.shape)}.")
    if space == "pixels":
        if mean is None or std is None:
            raise ValueError(
                "space='pixels' needs the normalisation's mean= and std= (model.lab_info.mean/std)."
            )
        reference = denormalize(reference, mean=mean, std=std).clamp(0, 1)
        estimate = denormalize(estimate, mean=mean, std=std).clamp(0, 1)
    elif space != "model":
        raise ValueError(f"space must be 'model' or 'pixels', got {space!r}.")
    return float((reference - estimate).norm() / reference.norm().clamp_min(1e-12))
