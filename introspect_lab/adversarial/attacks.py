"""Attacks: fooling images, FGSM and PGD, with budgets in pixel units of [0, 1] (see the package
docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..attribution.base import Target, resolve_targets
from ..devices import returns_to_input_device
from ..fastpath import ChannelsLast, batchnorm_folded
from ..hooks import frozen
from ..images import check_batch, denormalize, normalize
from ..models import model_info
from ..validation import check_eps

# ---------------------------------------------------------------------------
# Checks shared by the attacks
# ---------------------------------------------------------------------------


def _pixel_fn(model: nn.Module, steps: int = 1):
    """``f(p) = model(normalize(p))``: the model as a function of pixels in [0, 1].

    Call it with ``model`` frozen. The batches go in channels-last memory (:class:`ChannelsLast`)
    and, for an attack of several steps, through a copy of ``model`` with its BatchNorms folded
    (:func:`batchnorm_folded`): the same function up to float rounding, faster on a CPU.
    """
    info = model_info(model)
    net = ChannelsLast(batchnorm_folded(model) if steps > 1 else model)

    def f(p: torch.Tensor) -> torch.Tensor:
        return net(normalize(p, mean=info.mean, std=info.std))

    return f


def _to_pixels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    info = model_info(model)
    return denormalize(x, mean=info.mean, std=info.std).clamp(0, 1)


def _to_model(model: nn.Module, p: torch.Tensor) -> torch.Tensor:
    info = model_info(model)
    return normalize(p, mean=info.mean, std=info.std)


def _chunks(p: torch.Tensor) -> list[slice]:
    """Slices of the batch with at most about two 224 px images' worth of pixels each.

    Backpropagating to the input keeps every activation of the forward pass;
    for EfficientNet-Lite0 that is about 150 MB per 224 px image, so large
    batches are differentiated a few images at a time (memory stays flat).
    """
    per = max(1, (2 * 224 * 224) // max(1, p.shape[-1] * p.shape[-2]))
    return [slice(a, a + per) for a in range(0, p.shape[0], per)]


def _loss_grad(f, p: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image cross-entropy at ``p`` and its gradient with respect to ``p``."""
    losses, grads = [], []
    for s in _chunks(p):
        q = p[s].detach().requires_grad_(True)
        with torch.enable_grad():  # an attack called inside ``torch.no_grad()`` still has its gradient
            loss = F.cross_entropy(f(q), y[s], reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), q)
        losses.append(loss.detach())
        grads.append(grad)
    return torch.cat(losses), torch.cat(grads)


def _score_grad(f, p: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at ``p`` and the gradient of each image's score ``s_y`` with respect to ``p``."""
    logits, grads = [], []
    for s in _chunks(p):
        q = p[s].detach().requires_grad_(True)
        with torch.enable_grad():
            out = f(q)
            (grad,) = torch.autograd.grad(out.gather(1, y[s][:, None]).sum(), q)
        logits.append(out.detach())
        grads.append(grad)
    return torch.cat(logits), torch.cat(grads)


# ---------------------------------------------------------------------------
# FGSM and PGD
# ---------------------------------------------------------------------------


@returns_to_input_device("x")
def fgsm(model: nn.Module, x: torch.Tensor, target: Target = None, *, eps: float, targeted: bool = False):
    """Fast gradient sign method (Goodfellow et al. 2015; seed 004, "fast gradient sign method").

    In pixel space ``p = denormalize(x)`` with ``J = CE(f(p), y)``:

    * untargeted (``y`` = true class, default the model's prediction):
      ``p' = clamp(p + ε · sign(∇_p J), 0, 1)`` — push the true class down;
    * targeted (``y`` = the class you want):
      ``p' = clamp(p − ε · sign(∇_p J), 0, 1)`` — pull the target class up.

    ``eps`` is the L∞ budget in pixel units of [0, 1] (``2/255`` = two grey
    levels). Returns the adversarial batch in the model's normalised space.
    """
    x = check_batch(x, "x", model)
    eps = check_eps(eps)
    return fgsm_family(model, x, target, targeted=targeted)(eps)


def fgsm_family(
    model: nn.Module, x: torch.Tensor, target: Target = None, *, targeted: bool = False
) -> Callable[[float], torch.Tensor]:
    """FGSM's attacked batch as a function of ε, from one gradient: ``eps ↦ fgsm(model, x, target, eps=eps)``.

    The step direction ``±sign(∇_p J)`` does not depend on ε (Goodfellow et
    al. 2015), so an ε sweep needs one backward pass, not one per ε. The
    returned batches are normalised and on the model's device; see
    :func:`fgsm` for ``target`` and ``targeted``.
    """
    x = check_batch(x, "x", model)
    with frozen(model):
        f = _pixel_fn(model)
        p = _to_pixels(model, x)
        with torch.no_grad():
            y = resolve_targets(model, target, f(p))
        _, grad = _loss_grad(f, p, y)
    direction = (-1.0 if targeted else 1.0) * grad.sign()

    def attacked(eps: float) -> torch.Tensor:
        eps = check_eps(eps)
        return _to_model(model, (p + eps * direction).clamp(0, 1)).detach()

    return attacked


@returns_to_input_device("x")
def pgd(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    eps: float,
    step: float | None = None,
    steps: int = 10,
    targeted: bool = False,
    random_start: bool = True,
    keep_best: bool = False,
    seed: int | None = 0,
    progress: bool | None = None,
) -> torch.Tensor:
    """Projected gradient descent in the L∞ ball (Madry et al. 2018; the inner max of seed 001).

    Repeat ``steps`` times, in pixel space, from ``p₀`` (the image, or a
    uniform random point of the ball when ``random_start``):

    ``p ← Π_{B∞(p₀, ε) ∩ [0,1]} ( p ± step · sign(∇_p CE(f(p), y)) )``

    (``+`` untargeted, ``−`` targeted), where ``Π`` clips each pixel to
    ``[p₀ − ε, p₀ + ε]`` and to ``[0, 1]``: the budget is exact.

    * ``keep_best=False`` (default): Madry et al.'s plain PGD — random start,
      fixed step, the **last** iterate is returned. It can end below FGSM on
      some images.
    * ``keep_best=True``: a later, stronger variant (as in evaluation attacks
      such as Croce & Hein 2020's APGD, which keep the best point found): each
      image keeps the iterate with the highest loss seen, with FGSM's single
      step of size ``ε`` as one more candidate — so it is never weaker than
      :func:`fgsm` *by construction*.

    ``step`` defaults to ``min(ε, 2.5 · ε / steps)``: a heuristic of later code
    (the steps can travel 2.5 ε in all, enough to cross the ball from any
    start), not the paper's, which used fixed steps — 0.01 × 40 steps at
    ε = 0.3 on MNIST, 2/255 × 7 steps at ε = 8/255 on CIFAR-10. For 10 steps
    the two agree (α = ε/4). ``step`` may not exceed ``ε``.
    """
    x = check_batch(x, "x", model)
    eps = check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    step = min(eps, 2.5 * eps / steps) if step is None else step
    step = check_eps(step, "step")
    if step > eps:
        raise ValueError(
            f"step={step:g} is larger than eps={eps:g}: one step would leave the ε-ball. "
            f"Use step ≤ eps, e.g. the default step=min(eps, 2.5*eps/steps)={min(eps, 2.5 * eps / steps):g}."
        )
    sign = -1.0 if targeted else 1.0
    show = config.show_progress() if progress is None else progress
    with frozen(model):
        f = _pixel_fn(model, steps)
        p0 = _to_pixels(model, x)
        with torch.no_grad():
            y = resolve_targets(model, target, f(p0))
        lo, hi = (p0 - eps).clamp(min=0), (p0 + eps).clamp(max=1)
        best = best_score = None
        if keep_best:  # FGSM as the first candidate
            _, grad = _loss_grad(f, p0, y)
            best = (p0 + sign * eps * grad.sign()).clamp(0, 1)
            with torch.no_grad():
                best_score = sign * F.cross_entropy(f(best), y, reduction="none")
        p = p0.clone()
        if random_start and eps > 0:
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            noise = torch.rand(p0.shape, generator=gen).to(p0) * 2 - 1
            p = torch.min(torch.max(p0 + eps * noise, lo), hi)
        for _ in tqdm(range(steps), desc="PGD", disable=not show):
            loss, grad = _loss_grad(f, p, y)
            if keep_best:  # the loss at the current point comes with its gradient: no extra pass
                best, best_score = _keep_better(best, best_score, p, sign * loss)
            p = torch.min(torch.max(p + sign * step * grad.sign(), lo), hi).detach()
        if keep_best:
            with torch.no_grad():
                last = sign * F.cross_entropy(f(p), y, reduction="none")
            p, _ = _keep_better(best, best_score, p, last)
    return _to_model(model, p).detach()


def _keep_better(best, best_score, p, score):
    """Per image, ``p`` where ``score`` beats ``best_score``, else ``best``."""
    better = score > best_score
    best = torch.where(better.view(-1, 1, 1, 1), p, best)
    return best, torch.where(better, score, best_score)


@returns_to_input_device("x")
def quantize(model: nn.Module, x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Round a normalised batch to what an 8-bit image can store: ``p ← round(p · 255) / 255`` in pixels.

    Any change smaller than half a grey level disappears: a perturbation
    below 0.5/255 of an 8-bit image is erased, one of 1/255 survives. The
    result is in the model's normalised space.
    """
    x = check_batch(x, "x", model)
    return _to_model(model, torch.round(_to_pixels(model, x) * levels) / levels).detach()


@returns_to_input_device("x")
def random_sign(model: nn.Module, x: torch.Tensor, *, eps: float, seed: int = 0) -> torch.Tensor:
    """The control for an attack of budget ``eps``: ``clamp(p + ε · s, 0, 1)`` with random signs ``s = ±1``.

    Same L∞ size as FGSM, but a direction that knows nothing of the
    network (Goodfellow et al. 2015 compare the two). Normalised in, normalised out.
    """
    x = check_batch(x, "x", model)
    eps = check_eps(eps)
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
    return _to_model(model, (_to_pixels(model, x) + eps * s).clamp(0, 1)).detach()


# ---------------------------------------------------------------------------
# Fooling images (gradient ascent on a class score)
# ---------------------------------------------------------------------------


@dataclass
class FoolingResult:
    """What :func:`fool` returns.

    ``x``: the fooled batch (normalised); ``steps[i]``: steps image ``i``
    needed (``-1`` if it was not fooled within the budget); ``fooled[i]``:
    whether the model now predicts the target; ``target``: the class indices;
    ``linf``: the perturbation's L∞ size in grey levels (0–255).
    """

    x: torch.Tensor
    target: list[int]
    steps: list[int]
    fooled: list[bool]
    linf: list[float] = field(default_factory=list)


@returns_to_input_device("x")
def fool(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    *,
    lr: float = 0.5,
    max_steps: int = 100,
    margin: float = 0.0,
    progress: bool | None = None,
) -> FoolingResult:
    """Fooling image: ascend the target class score until the model predicts it (seeds 001 and 004).

    The recipe of Szegedy et al. (2014) as taught in cs231n: in pixel space,

    ``p ← clamp(p + lr · g / ‖g‖₂, 0, 1)``,   ``g = ∇_p s_target(p)``

    (``s`` the unnormalised class score), stopping each image as soon as its
    top-1 class is the target (and, with ``margin > 0``, leads the runner-up
    by that many logits). ``lr`` is the L2 length of one step in [0, 1] pixel
    units (0.5 ≈ a change of 0.5/√(3·H·W) per pixel on average).
    """
    x = check_batch(x, "x", model)
    if not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number (the L2 step in [0, 1] pixel units), got {lr!r}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
    show = config.show_progress() if progress is None else progress
    with frozen(model):
        f = _pixel_fn(model, max_steps)
        p0 = _to_pixels(model, x)
        with torch.no_grad():
            y = resolve_targets(model, target, f(p0))
        p = p0.clone()
        steps = torch.full((p.shape[0],), -1, dtype=torch.long)

        def reached(logits: torch.Tensor) -> torch.Tensor:
            top2 = logits.topk(2, dim=1)
            runner = torch.where(top2.indices[:, 0] == y, top2.values[:, 1], top2.values[:, 0])
            return (logits.argmax(1) == y) & (logits.gather(1, y[:, None])[:, 0] - runner >= margin)

        for k in tqdm(range(max_steps + 1), desc="Fooling", disable=not show):
            logits, g = _score_grad(f, p, y)
            done = reached(logits)
            steps[done & (steps < 0)] = k
            active = steps < 0
            if not bool(active.any()) or k == max_steps:
                break
            norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            update = lr * g / norm * active.view(-1, 1, 1, 1)
            p = (p + update).clamp(0, 1).detach()
    adv = _to_model(model, p).detach()
    linf = ((p - p0).abs().flatten(1).amax(1) * 255).tolist()
    return FoolingResult(adv, y.tolist(), steps.tolist(), [s >= 0 for s in steps.tolist()], linf)


def linf_pixels(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L∞ distance per image in grey levels: ``255 · max |denorm(x_adv) − denorm(x)|`` → ``[B]``."""
    return (_to_pixels(model, x_adv) - _to_pixels(model, x)).abs().flatten(1).amax(1) * 255
