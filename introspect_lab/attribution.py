"""Which pixels matter? Attribution maps with one call shape: ``method(model, x, target, **options)``.

* ``x`` is a normalised batch ``[B, 3, H, W]`` (as :func:`~introspect_lab.load_image` gives);
* ``target`` is a class index, a class name (``"tabby"``), a per-image list of
  either, or ``None`` for each image's top-1 class;
* maps come back as ``[B, H, W]`` (:func:`saliency`, :func:`smoothgrad`,
  :func:`occlusion`, :func:`cam`, :func:`grad_cam`) upsampled to the input size
  (``raw=True`` gives the map at its own resolution); pixel-space methods
  return ``[B, 3, H, W]`` (:func:`guided_backprop`, :func:`deconvnet`,
  :func:`guided_grad_cam`, :func:`integrated_gradients`).

Every method leaves the model exactly as it found it (parameters,
``requires_grad``, train/eval, in-place flags, hooks), also when it raises.
Sources (``/work/shared/seeds``): lecture 004 (CSE 891, "Interpretability")
for occlusion, saliency, segmentation from saliency, guided backprop, CAM and
Grad-CAM; lecture 003 (Landwehr) for saliency as the max over channels of
``|∂h/∂x|`` and the sheep/goat story; paper 002 (Wei et al.) for thresholding
plus hole filling of a saliency map. Beyond the seeds: SmoothGrad (Smilkov et
al. 2017), Integrated Gradients (Sundararajan et al. 2017), the sanity checks
of Adebayo et al. (2018) and the deletion metric of Petsiuk et al. (2018).
"""

from __future__ import annotations

import copy
import math
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import show_progress
from .hooks import capture, frozen, no_inplace
from .models import class_indices, get_layer, model_info

__all__ = [
    "gradient",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "cam",
    "grad_cam",
    "guided_backprop",
    "deconvnet",
    "guided_grad_cam",
    "saliency_to_mask",
    "last_conv_layer",
    "cascade_layers",
    "randomize_layers",
    "spearman",
    "sanity_check",
    "SanityResult",
    "deletion_curve",
    "DeletionResult",
    "to_map",
    "IntegratedGradientsWarning",
]

Target = int | str | Sequence[int | str] | torch.Tensor | None


# ---------------------------------------------------------------------------
# Input and target checks
# ---------------------------------------------------------------------------


def _check_input(model: nn.Module, x: torch.Tensor, *, warn: bool = True) -> torch.Tensor:
    """Validate a normalised batch; warn when it plainly is not normalised."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a normalised image tensor [B,3,H,W], got {type(x).__name__}. "
            "Use load_image(path_or_photo, model) to make one."
        )
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"x must have shape [B,3,H,W] (a batch of RGB images), got {tuple(x.shape)}. "
            "Use load_image(...) for one photo, torch.cat([...]) for a batch."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a float tensor, got {x.dtype}. Use load_image(...) or normalize(x / 255)."
        )
    if warn and x.numel():
        info = model_info(model)
        mean, std = torch.tensor(info.mean), torch.tensor(info.std)
        lo, hi = float(((0 - mean) / std).min()), float(((1 - mean) / std).max())
        margin = 0.5 * (hi - lo)
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo - margin or xmax > hi + margin:
            warnings.warn(
                f"x holds values in [{xmin:.3g}, {xmax:.3g}], far outside the normalised range "
                f"[{lo:.2f}, {hi:.2f}] of this model: is it a 0-255 image? Use load_image(...) "
                "or normalize(img / 255, model).",
                UserWarning,
                stacklevel=3,
            )
        elif xmin >= 0.0 and xmax <= 1.0 and x[0].std() < 0.5:
            warnings.warn(
                "x holds only values in [0, 1]: it looks like an image that was not normalised "
                "(a normalised photo has negative values). Use normalize(x, model) or load_image(...).",
                UserWarning,
                stacklevel=3,
            )
    return x


def _resolve_targets(model: nn.Module, target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Class indices ``[B]`` for ``target``, checked against the model's output size."""
    batch, n_classes = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    cats = model_info(model).categories
    if len(cats) != n_classes:
        names = (
            [target] if isinstance(target, str) else list(target) if isinstance(target, (list, tuple)) else []
        )
        if any(isinstance(t, str) for t in names):
            raise ValueError(
                f"This model has {n_classes} classes and no class names; give the target as an index 0..{n_classes - 1}."
            )
        cats = [str(i) for i in range(n_classes)]
    idx = class_indices(cats, target, batch)
    for i in idx:
        if not 0 <= i < n_classes:
            raise ValueError(f"Class index {i} is out of range: this model has classes 0..{n_classes - 1}.")
    return torch.tensor(idx, device=logits.device)


def _logits(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"The model must return class scores [B, classes]; it returned {shape}.")
    return out


def _upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """``[B,h,w]`` → ``[B,H,W]``."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"interpolate must be 'bilinear', 'nearest' or 'bicubic', got {mode!r}.")
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, **kwargs).squeeze(1)


def _finish_map(
    maps: torch.Tensor, x: torch.Tensor, *, relu: bool, raw: bool, interpolate: str
) -> torch.Tensor:
    """The last step of CAM and Grad-CAM: optional ReLU, then upsampling to the input size."""
    if relu:
        maps = maps.clamp(min=0)
    return maps if raw else _upsample(maps, tuple(x.shape[-2:]), interpolate)


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


# ---------------------------------------------------------------------------
# Modified ReLU backward rules (guided backprop, deconvnet)
# ---------------------------------------------------------------------------


class _RuleReLU(torch.autograd.Function):
    """Forward: ``clamp(z, lo, hi)`` (a ReLU or ReLU6). Backward: a modified rule."""

    @staticmethod
    def forward(ctx, z, lo, hi, rule):  # noqa: D401
        ctx.save_for_backward(z)
        ctx.lo, ctx.hi, ctx.rule = lo, hi, rule
        return z.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        grad = grad.clamp(min=0)  # both rules pass only positive signals back
        if ctx.rule == "guided":
            grad = grad * (z > ctx.lo).to(grad.dtype)
        if ctx.hi is not None:
            grad = grad * (z < ctx.hi).to(grad.dtype)  # the cap at 6 keeps its ordinary gradient
        return grad, None, None, None


def _relu_bounds(module: nn.Module) -> tuple[float, float | None] | None:
    if isinstance(module, nn.ReLU):
        return 0.0, None
    if isinstance(module, nn.ReLU6):
        return 0.0, 6.0
    return None


@contextmanager
def _modified_relus(model: nn.Module, rule: str) -> Iterator[int]:
    """Swap the backward rule of every ``nn.ReLU`` / ``nn.ReLU6`` module inside the block.

    Done with forward hooks that recompute the activation through
    :class:`_RuleReLU` (in-place flags off meanwhile); hooks and flags are
    restored on exit, also after an exception.
    """
    relus = [(m, b) for m in model.modules() if (b := _relu_bounds(m)) is not None]
    if not relus:
        raise ValueError(
            f"{rule} backprop changes the backward pass of nn.ReLU / nn.ReLU6 modules, and this model "
            "has none (functional relus, GELU or SiLU cannot be modified). Use saliency() or grad_cam() instead."
        )
    handles = []

    def make_hook(lo, hi):
        def hook(module, inputs, output):
            return _RuleReLU.apply(inputs[0], lo, hi, rule)

        return hook

    with no_inplace(model):
        try:
            for m, (lo, hi) in relus:
                handles.append(m.register_forward_hook(make_hook(lo, hi)))
            yield len(relus)
        finally:
            for h in handles:
                h.remove()


def _neuron_value(act: torch.Tensor, neuron) -> torch.Tensor:
    """One value per image of a layer output ``act`` ``[B,C,H,W]`` (or ``[B,C]``)."""
    b = act.shape[0]
    if isinstance(neuron, int):
        if not 0 <= neuron < act.shape[1]:
            raise ValueError(
                f"Channel {neuron} is out of range: the layer has channels 0..{act.shape[1] - 1}."
            )
        ch = act[:, neuron]
        if ch.dim() == 1:
            return ch
        # the channel's strongest location in each image
        return ch.reshape(b, -1).amax(1)
    if isinstance(neuron, (tuple, list)) and len(neuron) == act.dim() - 1:
        for n, size in zip(neuron, act.shape[1:]):
            if not 0 <= int(n) < size:
                raise ValueError(
                    f"Neuron {tuple(neuron)} is out of range for a layer output of shape {tuple(act.shape[1:])}."
                )
        return act[(slice(None), *[int(n) for n in neuron])]
    raise ValueError(
        f"neuron must be a channel (int) or a position (channel, row, col) for a layer output of "
        f"shape {tuple(act.shape[1:])}, got {neuron!r}."
    )


def _backprop(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    *,
    rule: str | None = None,
    layer: str | None = None,
    neuron=None,
) -> torch.Tensor:
    """``∂ objective / ∂x`` for a batch, where the objective is a class score or a neuron.

    The objective sums over the batch; in eval mode images do not interact,
    so each image gets the gradient of its own score.
    """
    if layer is not None and neuron is None:
        raise ValueError("With layer=... also give neuron= (a channel int or a (channel, row, col) tuple).")
    if neuron is not None and layer is None:
        raise ValueError("neuron= needs layer= (the name of the layer the neuron lives in).")
    if layer is not None:
        get_layer(model, layer)
    xg = x.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad():
        rules = _modified_relus(model, rule) if rule else _nullcontext()
        with rules:
            if layer is None:
                out = _logits(model(xg))
                idx = _resolve_targets(model, target, out)
                score = out.gather(1, idx[:, None]).sum()
            else:
                with capture(model, layer, detach=False, stop=True) as cap:
                    cap.run(xg)
                score = _neuron_value(cap.activations[layer], neuron).sum()
            (grad,) = torch.autograd.grad(score, xg)
    return grad.detach()


@contextmanager
def _nullcontext():
    yield


# ---------------------------------------------------------------------------
# Gradient methods
# ---------------------------------------------------------------------------


def gradient(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """The plain gradient ``∂S_c/∂x``, signed, pixel space ``[B,3,H,W]`` (Simonyan et al. 2014).

    What :func:`saliency` takes the magnitude of; shown next to
    :func:`guided_backprop` and :func:`deconvnet` to compare the backward rules.
    """
    x = _check_input(model, x)
    return _backprop(model, x, target)


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
    x = _check_input(model, x)
    grad = _backprop(model, x, target, layer=layer, neuron=neuron).abs()
    if reduce == "max":
        return grad.amax(1)
    if reduce == "mean":
        return grad.mean(1)
    if reduce == "none":
        return grad
    raise ValueError(f"reduce must be 'max', 'mean' or 'none', got {reduce!r}.")


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    n_samples: int = 25,
    noise_level: float = 0.15,
    batch_size: int = 4,
    seed: int | None = 0,
    progress: bool | None = None,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the saliency map averaged over noisy copies.

    ``M̂(x) = (1/n) Σ_{k=1..n} M(x + ε_k)``, ``ε_k ~ N(0, σ²)``, with
    ``σ = noise_level · (max x − min x)`` per image (the paper finds 10–20 %
    works best) and ``M`` the saliency of :func:`saliency`. Noisy copies run in
    chunks of ``batch_size``. Returns ``[B,H,W]``.
    """
    from tqdm.auto import tqdm

    x = _check_input(model, x)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    gen = torch.Generator(device=x.device)
    gen.manual_seed(0 if seed is None else seed)
    with torch.no_grad():
        logits = _logits(_forward_eval(model, x))
    idx = _resolve_targets(model, target, logits)
    sigma = noise_level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    total = torch.zeros(x.shape[0], *x.shape[2:], device=x.device)
    show = show_progress() if progress is None else progress
    for b in tqdm(range(x.shape[0]), desc="smoothgrad", disable=not show or x.shape[0] < 2, leave=False):
        done = 0
        while done < n_samples:
            k = min(batch_size, n_samples - done)
            noise = torch.randn((k, *x.shape[1:]), generator=gen, device=x.device) * sigma[b]
            g = _backprop(model, x[b : b + 1] + noise, [int(idx[b])] * k).abs().amax(1)
            total[b] += g.sum(0)
            done += k
    return total / n_samples


def _forward_eval(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with frozen(model):
        return model(x)


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
    progress: bool | None = None,
):
    """Integrated Gradients (Sundararajan et al. 2017), pixel space ``[B,3,H,W]``.

    ``IG_i(x) = (x_i − x'_i) ∫_0^1 ∂S_c(x' + α(x − x'))/∂x_i dα``, the integral
    by ``method`` (Gauss–Legendre nodes by default, as Captum) with ``n_steps``
    points; ``x'`` is the ``baseline`` (0 = the mean image colour in normalised
    space).

    Convergence check: IG is *complete*, ``Σ_i IG_i = S_c(x) − S_c(x')``. The
    gap ``δ = Σ_i IG_i − (S_c(x) − S_c(x'))`` is computed for every image and an
    :class:`IntegratedGradientsWarning` is raised when ``|δ| > rtol · |S_c(x) −
    S_c(x')|`` (then raise ``n_steps``). ``return_delta=True`` also returns δ ``[B]``.
    """
    from tqdm.auto import tqdm

    x = _check_input(model, x)
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2, got {n_steps}.")
    alphas, weights = _ig_alphas(n_steps, method)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    with torch.no_grad():
        out_x = _logits(_forward_eval(model, x))
        idx = _resolve_targets(model, target, out_x)
        out_b = _logits(_forward_eval(model, base.contiguous()))
    gap = (out_x.gather(1, idx[:, None]) - out_b.gather(1, idx[:, None])).squeeze(1)
    attr = torch.zeros_like(x)
    show = show_progress() if progress is None else progress
    for b in tqdm(range(x.shape[0]), desc="integrated gradients", disable=not show, leave=False):
        diff = x[b] - base[b]
        acc = torch.zeros_like(diff)
        for start in range(0, n_steps, batch_size):
            a = torch.as_tensor(alphas[start : start + batch_size], dtype=x.dtype, device=x.device)
            w = torch.as_tensor(weights[start : start + batch_size], dtype=x.dtype, device=x.device)
            path = base[b] + a.view(-1, 1, 1, 1) * diff
            g = _backprop(model, path, [int(idx[b])] * len(a))
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
    return (attr, delta) if return_delta else attr


def guided_backprop(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    neuron=None,
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
    ``(c, i, j)`` one value of the feature map.
    """
    x = _check_input(model, x)
    return _backprop(model, x, target, rule="guided", layer=layer, neuron=neuron)


def deconvnet(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    neuron=None,
) -> torch.Tensor:
    """Deconvnet backward pass (Zeiler & Fergus 2014), pixel space ``[B,3,H,W]``.

    The backward pass through a ReLU ignores the forward input and rectifies
    the signal: ``z' = max(y', 0)``. ReLU6 = a ReLU followed by a cap at 6:
    ``z' = max(y', 0)`` where ``z < 6``, else 0 (the cap keeps its ordinary
    gradient). Everything else is ordinary backprop (Springenberg et al. 2015
    show this equals the deconvnet's reconstruction). Same options and
    guarantees as :func:`guided_backprop`.
    """
    x = _check_input(model, x)
    return _backprop(model, x, target, rule="deconvnet", layer=layer, neuron=neuron)


# ---------------------------------------------------------------------------
# Occlusion
# ---------------------------------------------------------------------------


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    n = math.ceil((size - window) / stride) + 1
    return [i * stride for i in range(n)]


def _inference_copy(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A faster, numerically equivalent inference copy of ``model`` for ``example``-shaped batches.

    First choice: TorchScript trace → freeze → ``optimize_for_inference``
    (BatchNorm folded into convolutions, oneDNN kernels); second: ``torch.fx``
    BatchNorm folding with channels-last memory; last: ``model`` itself. A
    candidate is used only if it reproduces the model's output on ``example``.
    """
    with torch.no_grad():
        ref = model(example)
    scale = float(ref.abs().max()) + 1e-6

    def agrees(net) -> bool:
        with torch.no_grad():
            out = net(example.contiguous(memory_format=torch.channels_last))
        return (
            isinstance(out, torch.Tensor)
            and out.shape == ref.shape
            and float((out - ref).abs().max()) < 1e-3 * scale
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(copy.deepcopy(model).eval(), example, check_trace=False)
                net = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            if agrees(net):
                return net
        except Exception:  # not traceable: try the next option
            pass
        try:
            from torch.fx.experimental.optimization import fuse as fx_fuse

            net = fx_fuse(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
            if agrees(net):
                return net
        except Exception:
            pass
    return model


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    window: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    baseline: float | torch.Tensor = 0.0,
    batch_size: int = 4,
    raw: bool = False,
    fuse: bool = True,
    progress: bool | None = None,
) -> torch.Tensor:
    """Occlusion saliency (Zeiler & Fergus 2014; lecture 004 "Saliency via Occlusion").

    Slide a ``window`` (all three channels) over the image with ``stride``,
    replace it by ``baseline`` (0 = the mean colour in normalised space, a
    grey square), and record the drop of the class score
    ``Δ_p = S_c(x) − S_c(x with window p occluded)``. Each pixel gets the mean
    ``Δ_p`` over the windows that cover it (Captum's ``Occlusion`` convention;
    the last window in each direction is clipped at the border so every pixel
    is covered). ``raw=True`` returns the grid of ``Δ_p`` ``[B, n_rows, n_cols]``.

    Occluded copies are scored ``batch_size`` at a time under
    ``torch.inference_mode``, with a progress bar. With ``fuse=True`` they go
    through a temporary inference copy of the model (TorchScript-frozen, each
    BatchNorm folded into the convolution before it; checked to give the same
    scores, else the model is used as it is): the same function up to float
    rounding, 2–3× faster on a CPU. Returns ``[B,H,W]``.
    """
    from tqdm.auto import tqdm

    x = _check_input(model, x)
    kh, kw = (window, window) if isinstance(window, int) else tuple(window)
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    H, W = x.shape[-2:]
    if not (0 < kh <= H and 0 < kw <= W):
        raise ValueError(f"window {(kh, kw)} must be positive and fit in the image {(H, W)}.")
    if not (0 < sh <= kh and 0 < sw <= kw):
        raise ValueError(
            f"stride {(sh, sw)} must be positive and at most the window {(kh, kw)} (else pixels are skipped)."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    rows, cols = _window_starts(H, kh, sh), _window_starts(W, kw, sw)
    positions = [(r, c) for r in rows for c in cols]
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if base.dim() == 4 and base.shape[0] == x.shape[0]:
        bases = base
    else:
        bases = base.expand_as(x)
    B = x.shape[0]
    drops = torch.zeros(B, len(positions), dtype=x.dtype, device=x.device)
    show = show_progress() if progress is None else progress
    chunks = [(b, s) for b in range(B) for s in range(0, len(positions), batch_size)]
    n_batch = min(batch_size, len(positions))
    with frozen(model):
        net = _inference_copy(model, x[:1].expand(n_batch, -1, -1, -1).contiguous()) if fuse else model
        with torch.inference_mode():
            logits = _logits(model(x))
            idx = _resolve_targets(model, target, logits)
            ref = logits.gather(1, idx[:, None]).squeeze(1)
            fmt = torch.channels_last if fuse else torch.contiguous_format
            for b, s in tqdm(chunks, desc="occlusion", disable=not show, leave=False):
                pos = positions[s : s + n_batch]
                batch = x[b].expand(n_batch, -1, -1, -1).clone()  # fixed batch shape (the last one padded)
                for k, (r, c) in enumerate(pos):
                    batch[k, :, r : r + kh, c : c + kw] = bases[b, :, r : r + kh, c : c + kw]
                scores = _logits(net(batch.contiguous(memory_format=fmt)))[: len(pos), idx[b]]
                drops[b, s : s + len(pos)] = ref[b] - scores
        del net
    grid = drops.view(B, len(rows), len(cols))
    if raw:
        return grid.clone()
    total = torch.zeros(B, H, W, dtype=x.dtype, device=x.device)
    count = torch.zeros(H, W, dtype=x.dtype, device=x.device)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            total[:, r : r + kh, c : c + kw] += grid[:, i, j, None, None]
            count[r : r + kh, c : c + kw] += 1
    return total / count


# ---------------------------------------------------------------------------
# CAM and Grad-CAM
# ---------------------------------------------------------------------------


def _forward_trace(model: nn.Module, x: torch.Tensor):
    """Forward once; record 4-D outputs of every named module (in exit order) and the last Linear's input."""
    outputs: list[tuple[str, torch.Tensor]] = []
    linear: list[tuple[str, nn.Linear, torch.Tensor]] = []
    handles = []

    def out_hook(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                outputs.append((name, output.detach()))
            if isinstance(module, nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor):
                linear.append((name, module, inputs[0].detach()))

        return hook

    with no_inplace(model), frozen(model), torch.no_grad():
        try:
            for name, m in model.named_modules():
                if name:
                    handles.append(m.register_forward_hook(out_hook(name)))
            logits = _logits(model(x))
        finally:
            for h in handles:
                h.remove()
    return logits, outputs, linear


def last_conv_layer(model: nn.Module, size: int | None = None) -> str:
    """Name of the last layer whose output is a spatial feature map (``[B,C,h,w]``, ``h·w > 1``).

    Grad-CAM's usual choice (Selvaraju et al. 2017): ``"head"`` for
    EfficientNet-Lite0, ``"layer4"`` for ResNet, ``"features"`` for AlexNet/VGG.
    """
    size = size or model_info(model).input_size
    key = (size, tuple(name for name, _ in model.named_modules()))
    cached = _LAST_CONV.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    device = next(model.parameters()).device
    _, outputs, _ = _forward_trace(model, torch.zeros(1, 3, size, size, device=device))
    spatial = [name for name, out in outputs if out.shape[-1] * out.shape[-2] > 1]
    if not spatial:
        raise ValueError(
            "The model has no layer with a spatial output; Grad-CAM needs a convolutional layer."
        )
    _LAST_CONV[model] = (key, spatial[-1])
    return spatial[-1]


_LAST_CONV: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    raw: bool = False,
    relu: bool = False,
    interpolate: str = "bilinear",
) -> torch.Tensor:
    """Class activation map (Zhou et al. 2016), from the final linear layer's weights.

    For a model ending in global average pooling plus one linear layer
    (lecture 004): ``F_k = (1/HW) Σ_{h,w} f_{h,w,k}``, ``S_c = Σ_k w_{k,c} F_k``,
    so the class score splits over positions and the map is
    ``M_c(h, w) = Σ_k w_{k,c} f_{h,w,k}`` (bias left out, so
    ``mean(M_c) = S_c − b_c``). For a model whose scores are the spatial mean of
    a class-channel map (SqueezeNet's conv classifier) that map's channel
    ``c`` is the CAM.

    The structure is *checked*, not assumed: the linear layer's input must
    equal the spatial mean of a feature map of the forward pass. Any other
    model raises an error pointing to :func:`grad_cam`.

    Returns ``[B,H,W]`` upsampled (``interpolate``) to the input size, or the
    feature-map resolution with ``raw=True``; ``relu=True`` keeps only
    positive evidence.
    """
    x = _check_input(model, x)
    logits, outputs, linear = _forward_trace(model, x)
    idx = _resolve_targets(model, target, logits)
    maps = None
    if linear:
        _, fc, fc_in = linear[-1]
        for _name, out in reversed(outputs):
            if out.shape[1] == fc.in_features and out.shape[-1] * out.shape[-2] > 1 and fc_in.dim() == 2:
                if torch.allclose(out.mean((2, 3)), fc_in, rtol=1e-4, atol=1e-5):
                    w = fc.weight[idx].detach()  # [B, K]
                    maps = torch.einsum("bk,bkhw->bhw", w, out)
                break
    else:
        for _name, out in reversed(outputs):
            if out.shape[1] == logits.shape[1] and out.shape[-1] * out.shape[-2] > 1:
                if torch.allclose(out.mean((2, 3)), logits, rtol=1e-4, atol=1e-5):
                    maps = out[torch.arange(out.shape[0]), idx]
                break
    if maps is None:
        raise ValueError(
            f"cam() needs a model that ends in global average pooling followed by one linear layer "
            f"(Zhou et al. 2016), and {model_info(model).name} does not (its last linear layer does not "
            "read the spatial mean of a feature map). Use grad_cam(model, x, target, layer=...), which "
            "works at any layer of any CNN."
        )
    return _finish_map(maps, x, relu=relu, raw=raw, interpolate=interpolate)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    raw: bool = False,
    relu: bool = True,
    interpolate: str = "bilinear",
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at any named layer.

    Lecture 004: with activations ``A ∈ R^{H×W×K}`` of the chosen layer,
    ``α_k = (1/HW) Σ_{h,w} ∂S_c/∂A_{h,w,k}`` and
    ``M^c_{h,w} = ReLU(Σ_k α_k A_{h,w,k})``.

    ``layer`` defaults to :func:`last_conv_layer`. Returns ``[B,H,W]``
    upsampled to the input size (``interpolate="bilinear"`` as in the paper;
    ``"nearest"`` matches Captum's default), or ``[B,h,w]`` with ``raw=True``.
    ``relu=False`` keeps the signed map.
    """
    x = _check_input(model, x)
    if layer is None:
        layer = last_conv_layer(model, size=x.shape[-1] if x.shape[-1] == x.shape[-2] else None)
    get_layer(model, layer)
    xg = x.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad(), capture(model, layer, gradients=True) as cap:
        out = _logits(model(xg))
        idx = _resolve_targets(model, target, out)
        out.gather(1, idx[:, None]).sum().backward()
        acts, grads = cap.activations[layer], cap.gradients.get(layer)
    if grads is None or acts.dim() != 4:
        raise ValueError(
            f"Layer {layer!r} gives no spatial feature map with a gradient (output shape "
            f"{tuple(acts.shape)}); choose a convolutional layer, e.g. {last_conv_layer(model)!r}."
        )
    alpha = grads.mean((2, 3), keepdim=True)
    maps = (alpha * acts).sum(1)
    return _finish_map(maps, x, relu=relu, raw=raw, interpolate=interpolate)


def guided_grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    interpolate: str = "bilinear",
) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop × upsampled Grad-CAM.

    ``G^c = GB^c ⊙ up(M^c)`` — fine detail from :func:`guided_backprop`,
    class-discriminative location from :func:`grad_cam`. Pixel space
    ``[B,3,H,W]``. ``interpolate="nearest"`` reproduces Captum's ``GuidedGradCam``.
    """
    x = _check_input(model, x)
    gc = grad_cam(model, x, target, layer=layer, interpolate=interpolate)
    gb = _backprop(model, x, target, rule="guided")
    return gb * gc.unsqueeze(1)


# ---------------------------------------------------------------------------
# Segmentation from saliency
# ---------------------------------------------------------------------------


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
    from scipy import ndimage

    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}.")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold is a fraction of each map's maximum, in [0, 1]; got {threshold}.")
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


# ---------------------------------------------------------------------------
# Sanity check (Adebayo et al. 2018)
# ---------------------------------------------------------------------------


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as in Spearman's ρ."""
    _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inv.ravel()]


def spearman(a, b) -> float:
    """Spearman rank correlation ``ρ`` of two maps (flattened), ties given average ranks.

    ``ρ = Pearson(rank(a), rank(b))``; Adebayo et al. (2018) compare saliency
    maps with it. A constant map has no ranking: ``ρ`` is 0 then.
    """
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Maps must have the same size, got {a.size} and {b.size}.")
    ra, rb = _rank(a), _rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def cascade_layers(model: nn.Module) -> list[str]:
    """Layers with parameters, from the top (output) down, for cascading randomisation.

    Top-level modules in definition order, with containers (``Sequential``,
    ``ModuleList``) opened one level: EfficientNet-Lite0 gives ``fc, head.bn,
    head.conv, blocks.15, …, blocks.0, stem.bn, stem.conv``; ResNet-18 gives
    ``fc, layer4.1, layer4.0, …, bn1, conv1``.
    """
    units = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            for sub, grand in child.named_children():
                if any(True for _ in grand.parameters()):
                    units.append(f"{name}.{sub}")
        else:
            units.append(name)
    return units[::-1]


def randomize_layers(model: nn.Module, layers: Sequence[str], seed: int = 0) -> None:
    """Re-draw the parameters of the named layers **in place** (use on a copy).

    Every submodule with ``reset_parameters`` (conv, linear, batch norm) is
    re-initialised with PyTorch's default initialisation; BatchNorm running
    statistics are reset too. Adebayo et al. (2018) re-initialise weights
    "to a truncated normal"; the default initialisations serve the same
    purpose: weights with no trace of training.
    """
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        for name in layers:
            for m in get_layer(model, name).modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
    finally:
        torch.random.set_rng_state(gen_state)


def _default_sanity_methods(model: nn.Module, x: torch.Tensor) -> dict[str, Callable]:
    layer = last_conv_layer(model, size=x.shape[-1])
    return {
        "gradient": lambda m, xx, t: saliency(m, xx, t),
        "guided backprop": lambda m, xx, t: to_map(guided_backprop(m, xx, t)),
        f"Grad-CAM ({layer})": lambda m, xx, t: grad_cam(m, xx, t, layer=layer),
    }


@dataclass
class SanityResult:
    """Outcome of :func:`sanity_check`.

    ``steps[0]`` is ``"trained"``, then each randomised layer in cascade order.
    ``correlation[method]`` is ``[n_steps, B]``: Spearman ρ between the trained
    map and the map after that step (1.0 at step 0). ``maps[method]`` is
    ``[n_steps, B, H, W]``.
    """

    steps: list[str]
    correlation: dict[str, np.ndarray]
    maps: dict[str, torch.Tensor] = field(repr=False)

    def final(self) -> dict[str, float]:
        """Mean ρ over the images after full randomisation, per method."""
        return {k: float(v[-1].mean()) for k, v in self.correlation.items()}


def sanity_check(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    methods: dict[str, Callable] | None = None,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 0,
    progress: bool | None = None,
) -> SanityResult:
    """Model-parameter randomisation test of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".

    Cascading randomisation: starting from the top (the classifier), layer
    after layer of a **copy** of the model gets fresh random weights
    (:func:`randomize_layers`), and each method's map is recomputed after
    every step. A map that depends on what the network learned must change;
    the similarity to the trained model's map is Spearman's rank correlation
    ``ρ`` (of ``|map|`` with ``absolute=True``, the paper's "absolute value"
    variant). The paper finds gradients and Grad-CAM decorrelate while guided
    backprop stays almost unchanged: it behaves like an edge detector.

    ``methods`` maps a name to ``f(model, x, target) -> [B,H,W]`` (default:
    gradient, guided backprop, Grad-CAM at :func:`last_conv_layer`);
    ``layers`` defaults to :func:`cascade_layers`. The target classes are
    fixed from the trained model (``None`` → its top-1). The model passed in
    is not changed.
    """

    x = _check_input(model, x)
    with torch.no_grad():
        logits = _logits(_forward_eval(model, x))
    targets = _resolve_targets(model, target, logits).tolist()
    methods = methods or _default_sanity_methods(model, x)
    layers = list(layers) if layers is not None else cascade_layers(model)
    for name in layers:
        get_layer(model, name)
    work = copy.deepcopy(model)
    steps = ["trained", *layers]
    with _flush_denormal():
        corr, stacked = _run_cascade(work, x, targets, methods, steps, absolute, seed, progress)
    del work
    return SanityResult(steps=steps, correlation=corr, maps=stacked)


@contextmanager
def _flush_denormal() -> Iterator[None]:
    """Flush denormal floats to zero in the block (random deep nets produce them; they are ~50× slower).

    PyTorch's default (off) is restored on exit.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _run_cascade(work, x, targets, methods, steps, absolute, seed, progress):
    from tqdm.auto import tqdm

    maps: dict[str, list[torch.Tensor]] = {k: [] for k in methods}
    show = show_progress() if progress is None else progress
    for i, step in enumerate(tqdm(steps, desc="sanity check", disable=not show, leave=False)):
        if i > 0:
            randomize_layers(work, [step], seed=seed + i)
        for name, fn in methods.items():
            m = to_map(fn(work, x, targets)).detach()
            maps[name].append(m.abs() if absolute else m)
    stacked = {k: torch.stack(v) for k, v in maps.items()}
    corr = {
        k: np.array([[spearman(v[0, b], v[s, b]) for b in range(x.shape[0])] for s in range(len(steps))])
        for k, v in stacked.items()
    }
    return corr, stacked


# ---------------------------------------------------------------------------
# Deletion metric (Petsiuk et al. 2018)
# ---------------------------------------------------------------------------


@dataclass
class DeletionResult:
    """Outcome of :func:`deletion_curve`: ``scores[B, n_steps+1]`` at ``fractions`` and ``auc[B]``."""

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    maps: torch.Tensor,
    *,
    n_steps: int = 20,
    baseline: float | torch.Tensor = 0.0,
    score: str = "prob",
    batch_size: int = 21,
) -> DeletionResult:
    """Deletion metric (Petsiuk et al. 2018, "RISE"): delete the most salient pixels first.

    Pixels are ranked by ``maps`` ``[B,H,W]`` (or ``[B,3,H,W]``, reduced by
    :func:`to_map`); at fraction ``k/n_steps`` the top pixels are replaced by
    ``baseline`` (0 = mean colour), and the class score is recorded
    (``score="prob"`` softmax probability, ``"logit"`` raw score). A map that
    finds the evidence makes the score fall fast: a lower area under the
    curve (mean over the ``n_steps + 1`` points) is better. Compare with a
    random map as the floor.
    """
    x = _check_input(model, x)
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}.")
    if score not in ("prob", "logit"):
        raise ValueError(f"score must be 'prob' or 'logit', got {score!r}.")
    m = to_map(maps.detach()).to(x.device)
    if m.shape[0] != x.shape[0] or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"maps {tuple(m.shape)} must match the batch {tuple(x.shape)} (one [H,W] map per image)."
        )
    B, HW = x.shape[0], x.shape[-1] * x.shape[-2]
    fractions = np.linspace(0, 1, n_steps + 1)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    out = np.zeros((B, n_steps + 1))
    with frozen(model), torch.inference_mode():
        idx = _resolve_targets(model, target, _logits(model(x)))
        for b in range(B):
            order = m[b].flatten().argsort(descending=True)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(HW, device=x.device)
            rank = rank.view(1, 1, *x.shape[-2:])
            ks = torch.as_tensor(np.round(fractions * HW), device=x.device).view(-1, 1, 1, 1)
            for s in range(0, n_steps + 1, batch_size):
                k = ks[s : s + batch_size]
                deleted = rank < k  # [n,1,H,W]
                imgs = torch.where(deleted, base[b : b + 1], x[b : b + 1])
                logits = _logits(model(imgs))
                vals = logits.softmax(1)[:, idx[b]] if score == "prob" else logits[:, idx[b]]
                out[b, s : s + len(k)] = vals.cpu().numpy()
    return DeletionResult(fractions=fractions, scores=out, auc=out.mean(1))
