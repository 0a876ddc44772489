"""Gradient methods: saliency, SmoothGrad, integrated gradients, guided backprop, deconvnet.

Every method has the call shape ``method(model, x, target, **options)`` and
follows the package's output-shape rule (see :mod:`introspect_lab.attribution`):
a method returns ``[B,3,H,W]`` when it scores each input value and
``[B,H,W]`` when it scores each pixel; ``reduce=`` converts.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import fresh_seed, show_progress
from ..devices import returns_to_input_device
from ..fastpath import ChannelsLast, batchnorm_folded
from ..hooks import frozen
from ..images import check_batch
from .backprop import backprop
from .base import Target, forward_eval, reduce_channels, resolve_targets

__all__ = [
    "gradient",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "guided_backprop",
    "deconvnet",
    "IntegratedGradientsWarning",
]


@returns_to_input_device("x")
def gradient(
    model: nn.Module, x: torch.Tensor, target: Target = None, *, reduce: str = "none"
) -> torch.Tensor:
    """The plain gradient ``∂S_c/∂x``, signed, pixel space ``[B,3,H,W]`` (Simonyan et al. 2014).

    What :func:`saliency` takes the magnitude of; shown next to
    :func:`guided_backprop` and :func:`deconvnet` to compare the backward rules.
    ``reduce="max"``/``"mean"`` gives ``[B,H,W]`` (``max_c``/``mean_c`` of ``|∂S_c/∂x_c|``).
    """
    x = check_batch(x, "x", model)
    return reduce_channels(backprop(model, x, target), reduce)


@returns_to_input_device("x")
def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    neuron=None,
    reduce: str = "max",
) -> torch.Tensor:
    """Gradient saliency (Simonyan et al. 2014): ``M_ij = max_c |∂S_c/∂x_{c,i,j}|``.

    Lecture 004 ("compute gradient of (unnormalized) class score with respect
    to image pixels, take absolute value and max over RGB channels") and
    lecture 003 (``M_{r,s} = max_t |∂h_θ(x)/∂x_{r,s,t}|``). ``S_c`` is the
    logit, not the softmax probability.

    Parameters
    ----------
    target:
        Class index, name, per-image list, or ``None`` (top-1 of each image).
    layer, neuron:
        Instead of a class score, differentiate one neuron of a layer
        (``neuron=c`` for the channel's strongest location, or ``(c, i, j)``).
    reduce:
        ``"max"`` over colour channels (default, as the seeds), ``"mean"``, or
        ``"none"`` for the raw ``|∂S_c/∂x|`` of shape ``[B,3,H,W]``.

    Returns ``[B,H,W]`` (or ``[B,3,H,W]`` with ``reduce="none"``).
    """
    x = check_batch(x, "x", model)
    return reduce_channels(backprop(model, x, target, layer=layer, neuron=neuron).abs(), reduce)


@returns_to_input_device("x")
def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    method: Callable[..., torch.Tensor] = saliency,
    n_samples: int = 25,
    noise_level: float = 0.15,
    batch_size: int = 4,
    seed: int | None = 0,
    progress: bool | None = None,
    **options,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): any gradient method averaged over noisy copies of the image.

    ``M̂(x) = (1/n) Σ_{k=1..n} M(x + ε_k)``, ``ε_k ~ N(0, σ²)``, with
    ``σ = noise_level · (max x − min x)`` per image (the paper finds 10–20 %
    works best). ``M`` is ``method`` (default :func:`saliency`; any method
    with the call shape ``method(model, x, target, **options)``, e.g.
    :func:`guided_backprop` or :func:`integrated_gradients`), the idea of
    Captum's ``NoiseTunnel``. The output has ``method``'s shape.

    The noise for an image depends only on ``seed`` (default 0: the same
    map every call; ``None``: fresh random noise), never on the image's
    position in the batch or on ``batch_size`` (noisy copies are run in
    chunks of ``batch_size``). The target is fixed from the clean image.
    """
    x = check_batch(x, "x", model)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if not callable(method):
        raise TypeError(f"method must be an attribution function such as saliency, got {method!r}.")
    with torch.no_grad():
        idx = resolve_targets(model, target, forward_eval(model, x))
    if seed is None:
        seed = fresh_seed()
    sigma = noise_level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    show = show_progress() if progress is None else progress
    maps = []
    for b in tqdm(range(x.shape[0]), desc="smoothgrad", disable=not show or x.shape[0] < 2, leave=False):
        gen = torch.Generator(device=x.device).manual_seed(int(seed))  # same noise whatever the position
        noise = torch.randn((n_samples, *x.shape[1:]), generator=gen, device=x.device) * sigma[b]
        total = None
        for start in range(0, n_samples, batch_size):
            noisy = x[b : b + 1] + noise[start : start + batch_size]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # noisy copies may leave the usual range
                m = method(model, noisy, [int(idx[b])] * noisy.shape[0], **options)
            total = m.sum(0) if total is None else total + m.sum(0)
        maps.append(total / n_samples)
    return torch.stack(maps)


class IntegratedGradientsWarning(UserWarning):
    """The integral in :func:`integrated_gradients` has not converged (raise ``n_steps``)."""


def _ig_alphas(n_steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        alphas = np.linspace(0, 1, n_steps)
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[0] = w[-1] = 0.5 / (n_steps - 1)
        return alphas, w
    if method == "riemann_middle":
        return (np.arange(n_steps) + 0.5) / n_steps, np.full(n_steps, 1.0 / n_steps)
    raise ValueError(
        f"method must be 'gausslegendre', 'riemann_trapezoid' or 'riemann_middle', got {method!r}."
    )


@returns_to_input_device("x")
def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    baseline: float | torch.Tensor = 0.0,
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int = 4,
    rtol: float = 0.05,
    return_delta: bool = False,
    reduce: str = "none",
    progress: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients (Sundararajan et al. 2017), pixel space ``[B,3,H,W]``.

    ``IG_i(x) = (x_i − x'_i) ∫_0^1 ∂S_c(x' + α(x − x'))/∂x_i dα``, the integral
    by ``method`` (Gauss–Legendre nodes by default, as Captum) with ``n_steps``
    points; ``x'`` is the ``baseline`` (0 = the mean image colour in normalised
    space).

    Convergence check: IG is *complete*, ``Σ_i IG_i = S_c(x) − S_c(x')``. The
    gap ``δ = Σ_i IG_i − (S_c(x) − S_c(x'))`` is computed for every image and an
    :class:`IntegratedGradientsWarning` is raised when ``|δ| > rtol · |S_c(x) −
    S_c(x')|`` (then raise ``n_steps``).

    Returns the attributions; with ``return_delta=True`` (the one option that
    changes the return type, as Captum's) always the pair ``(attributions,
    δ [B])``. ``reduce`` as in :func:`gradient`.

    The path points run ``batch_size`` at a time through a copy of the model
    with its BatchNorms folded into its convolutions
    (:func:`~introspect_lab.fastpath.batchnorm_folded`), as channels-last
    batches (:class:`~introspect_lab.fastpath.ChannelsLast`): the same
    gradients up to float rounding, in about 0.6× the time (Lite0, three
    photos at 224 px, 80 points, one core).
    """
    x = check_batch(x, "x", model)
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2, got {n_steps}.")
    alphas, weights = _ig_alphas(n_steps, method)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    with torch.no_grad():
        out_x = forward_eval(model, x)
        idx = resolve_targets(model, target, out_x)
        out_b = forward_eval(model, base.contiguous())
    gap = (out_x.gather(1, idx[:, None]) - out_b.gather(1, idx[:, None])).squeeze(1)
    attr = torch.zeros_like(x)
    with frozen(model):  # n_steps passes per image: through a copy with its BatchNorms folded
        grad = ChannelsLast(functools.partial(backprop, batchnorm_folded(model)))
    show = show_progress() if progress is None else progress
    for b in tqdm(range(x.shape[0]), desc="integrated gradients", disable=not show, leave=False):
        diff = x[b] - base[b]
        acc = torch.zeros_like(diff)
        for start in range(0, n_steps, batch_size):
            a = torch.as_tensor(alphas[start : start + batch_size], dtype=x.dtype, device=x.device)
            w = torch.as_tensor(weights[start : start + batch_size], dtype=x.dtype, device=x.device)
            path = base[b] + a.view(-1, 1, 1, 1) * diff
            g = grad(path, [int(idx[b])] * len(a))
            acc += (g * w.view(-1, 1, 1, 1)).sum(0)
        attr[b] = acc * diff
    delta = attr.flatten(1).sum(1) - gap
    bad = delta.abs() > rtol * gap.abs().clamp_min(1e-6)
    if bool(bad.any()):
        worst = float((delta.abs() / gap.abs().clamp_min(1e-6)).max())
        warnings.warn(
            f"Integrated gradients has not converged: the attributions miss S_c(x) − S_c(baseline) by "
            f"up to {100 * worst:.1f} % (rtol {100 * rtol:.0f} %). Raise n_steps (now {n_steps}).",
            IntegratedGradientsWarning,
            stacklevel=2,
        )
    attr = reduce_channels(attr, reduce)
    return (attr, delta) if return_delta else attr


@returns_to_input_device("x")
def guided_backprop(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    neuron=None,
    reduce: str = "none",
) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015), pixel space ``[B,3,H,W]``.

    Lecture 004's rule: for ``y = ReLU(z)`` the backward pass sends
    ``z' = y'`` if ``z > 0`` and ``y' > 0``, else 0 — the ordinary ReLU mask
    *and* a ReLU applied to the error signal. As the lecture says, this
    "isn't really the gradient of anything".

    **ReLU6** (``min(max(z, 0), 6)``, everywhere in EfficientNet-Lite0) is
    treated as a ReLU followed by a cap at 6: the ReLU gets the guided rule,
    the cap keeps its ordinary gradient, so ``z' = y'`` only where
    ``0 < z < 6`` and ``y' > 0``. (Captum's ``GuidedBackprop`` modifies only
    ``nn.ReLU`` modules and leaves ``ReLU6`` with its plain gradient; the tests
    compare with Captum on a copy of the model whose ReLU6 modules are
    rewritten as ``nn.ReLU`` followed by ``min(·, 6)``, where both rules agree.)

    Works with in-place ReLUs (torchvision models) and whole batches; every
    ``nn.ReLU``/``nn.ReLU6`` module is modified through temporary forward
    hooks, removed on exit. Functional relus (``F.relu``) are not modified.

    ``layer=..., neuron=...`` backpropagates from one neuron of a layer
    instead of a class score (lecture 004, "find part of the image a neuron
    responds to"): ``neuron=c`` is channel ``c`` at its strongest location,
    ``(c, i, j)`` one value of the feature map. ``reduce`` as in :func:`gradient`.
    """
    x = check_batch(x, "x", model)
    return reduce_channels(backprop(model, x, target, rule="guided", layer=layer, neuron=neuron), reduce)


@returns_to_input_device("x")
def deconvnet(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    neuron=None,
    reduce: str = "none",
) -> torch.Tensor:
    """Deconvnet backward pass (Zeiler & Fergus 2014), pixel space ``[B,3,H,W]``.

    The backward pass through a ReLU ignores the forward input and rectifies
    the signal: ``z' = max(y', 0)``. ReLU6 = a ReLU followed by a cap at 6:
    ``z' = max(y', 0)`` where ``z < 6``, else 0 (the cap keeps its ordinary
    gradient). Everything else is ordinary backprop (Springenberg et al. 2015
    show this equals the deconvnet's reconstruction). Same options and
    guarantees as :func:`guided_backprop`.
    """
    x = check_batch(x, "x", model)
    return reduce_channels(backprop(model, x, target, rule="deconvnet", layer=layer, neuron=neuron), reduce)
