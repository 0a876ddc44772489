"""The steps of the synthesis loop: the optimiser's step and the image operations after it.

:func:`~.engine.synthesize` calls these in order, once per step::

    optimiser_step(p, opt, value, optimizer, scheduler)  # a step on −J (normalised for ascent/dream)
    image_step(p, image_ops, clamp_range, step)     # blur/clip (Yosinski et al.), clamp to valid pixels
    keep_finished(p, before, image_steps, step)     # images whose own step count is done stay put

and builds the optimiser and its learning-rate schedule with :func:`make_optimizer`
and :func:`make_scheduler` (``torch.optim``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
import torch

from .parameterisation import valid_range

__all__ = [
    "OPTIMIZERS",
    "per_image_rates",
    "per_image_steps",
    "rate_text",
    "make_optimizer",
    "make_scheduler",
    "clamp_range",
    "optimiser_step",
    "image_step",
    "keep_finished",
]

#: The optimisers of :func:`~.engine.synthesize`.
OPTIMIZERS = ("adam", "sgd", "ascent", "dream")


def per_image_rates(lr, batch: int, split: bool = False) -> tuple[float, list[float] | None]:
    """``(rate, per-image rates or None)`` from one learning rate or one per image.

    Equal rates are one rate; different ones become one parameter group per image. ``split``:
    one group per image even for equal rates (each image then drops its rate after its own
    steps, see :func:`make_scheduler`).
    """
    if isinstance(lr, (torch.Tensor, np.ndarray)):
        lr = lr.tolist()
    many = isinstance(lr, Sequence)
    rates = list(lr) if many else [lr]
    if not all(isinstance(v, Real) and v > 0 and math.isfinite(v) for v in rates):
        raise ValueError(f"lr must be a positive number (or one per image), got {lr!r}.")
    if many and len(rates) != batch:
        raise ValueError(f"Got {len(rates)} learning rates for {batch} images; give one, or one per image.")
    rates = [float(v) for v in rates]
    if len(set(rates)) == 1 and not split:
        return rates[0], None
    return max(rates), rates if many else rates * batch


def per_image_steps(steps, batch: int) -> tuple[int, list[int] | None]:
    """``(steps of the loop, per-image steps or None)`` from one count or one per image."""
    many = isinstance(steps, (Sequence, np.ndarray))
    counts = [int(v) for v in steps] if many else [int(steps)]
    if min(counts, default=0) < 1:
        raise ValueError(f"steps must be ≥ 1 (or one such count per image), got {steps!r}.")
    if many and len(counts) != batch:
        raise ValueError(f"Got {len(counts)} step counts for {batch} images; give one, or one per image.")
    if len(set(counts)) == 1:
        return counts[0], None
    return max(counts), counts


def rate_text(lr: float, lrs: list[float] | None, optimizer: str) -> str:
    """The learning rate for a message: ``"lr=0.05 with optimizer 'adam'"`` (or the per-image range)."""
    rate = f"{lr:g}" if lrs is None else f"{min(lrs):g}…{max(lrs):g} per image"
    return f"lr={rate} with optimizer '{optimizer}'"


def make_optimizer(params: Sequence[torch.Tensor], optimizer: str, lr: float, lrs: list[float] | None = None):
    """The ``torch.optim`` optimiser: Adam, SGD with momentum 0.9, or plain SGD for ``ascent``/``dream``.

    ``lrs``: one rate per parameter (one parameter group each, see :class:`~.parameterisation.Pixels`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}.")
    groups = [{"params": [q], "lr": r} for q, r in zip(params, lrs)] if lrs is not None else list(params)
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    return torch.optim.SGD(groups, lr=lr)


def make_scheduler(opt, lr: float, schedule, lr_drop, steps: int, image_steps: Sequence[int] | None = None):
    """The ``torch.optim.lr_scheduler`` for ``lr_schedule``/``lr_drop`` (``None``: constant ``lr``).

    With per-image ``image_steps`` and one parameter group per image, ``lr_drop`` drops each
    image's rate after its own fraction of its own steps.
    """
    if schedule is not None and lr_drop is not None:
        raise ValueError("Give lr_schedule or lr_drop, not both.")
    if lr_drop is not None:
        frac, factor = lr_drop
        if image_steps is not None and len(opt.param_groups) == len(image_steps):
            at = [max(1, int(frac * n)) for n in image_steps]
            return torch.optim.lr_scheduler.LambdaLR(
                opt, [lambda k, m=m: factor if k >= m else 1.0 for m in at]
            )
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(frac * steps))], gamma=factor)
    if schedule is None:
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if isinstance(schedule, Mapping):
        points = sorted((int(s), float(v)) for s, v in schedule.items())

        def factor(step: int) -> float:
            cur = lr
            for s, v in points:
                if step >= s:
                    cur = v
            return cur / lr

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if callable(schedule):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: float(schedule(step)))
    raise ValueError(
        f"lr_schedule must be None, 'cosine', a dict {{step: lr}} or a callable, got {schedule!r}."
    )


def clamp_range(clamp, param: str, mean, std) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` for the pixels: the valid range (``clamp=True``), a given pair, or ``None``."""
    if clamp is True and param == "pixel":
        return valid_range(mean, std)
    if isinstance(clamp, tuple):
        return torch.tensor(float(clamp[0])), torch.tensor(float(clamp[1]))
    return None


def optimiser_step(p, opt, value: torch.Tensor, optimizer: str, scheduler=None) -> None:
    """One step on ``−value``; ``ascent`` divides each image's gradient by its L2 norm, ``dream`` by its mean
    |g|.

    The spectrum of the Fourier parameterisation is normalised as a whole.
    """
    opt.zero_grad(set_to_none=True)
    (-value).backward()
    if optimizer in ("ascent", "dream"):
        for q in p.params():
            g = q.grad
            if p.pixels is None:
                g.div_(g.norm().clamp_min(1e-12))
            elif optimizer == "ascent":
                g.div_(g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
            else:
                g.div_(g.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
    opt.step()
    if scheduler is not None:
        scheduler.step()


@torch.no_grad()
def image_step(p, image_ops: Sequence, limits: tuple[torch.Tensor, torch.Tensor] | None, step: int) -> None:
    """The image operations, then the clamp to ``limits``, on the pixels in place.

    The operations see the ascent direction (−gradient of the loss). Nothing
    to do for the Fourier parameterisation (its pixels come from a sigmoid).
    """
    x = p.pixels
    if x is None:
        return
    if image_ops:
        grad = p.grad
        ascent = -grad if grad is not None else None
        for op in image_ops:
            op.after_step(x, ascent, step)
    if limits is not None:
        lo, hi = limits
        x.copy_(torch.maximum(torch.minimum(x, hi), lo))


@torch.no_grad()
def keep_finished(p, before: torch.Tensor, image_steps: Sequence[int], step: int) -> None:
    """Images whose own steps are done (``step ≥ steps_b``) keep their pixels from ``before`` this step."""
    done = torch.tensor([step >= n for n in image_steps])
    if done.any():
        p.pixels[done] = before[done]
