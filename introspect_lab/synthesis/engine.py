"""The engine: one loop behind every "optimise the image" method.

    parameterisation → transforms → model (truncated) → objective + penalties → step → image ops

:func:`synthesize` runs it; :func:`evaluate` gives an objective's value for
one image; :func:`layer_features` computes targets once. The model runs
only up to the deepest layer any term needs (:func:`introspect_lab.hooks.capture`
with ``stop=True``), frozen, and is restored afterwards.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import show_progress
from ..hooks import capture, frozen, no_inplace
from ..images import check_batch, denormalize
from ..models import model_info
from . import objectives as O
from . import priors as R
from .parameterisation import Fourier, Pixels, image_size, initial_image, valid_range

__all__ = [
    "SynthesisResult",
    "SynthesisState",
    "NonFiniteLossError",
    "DivergenceWarning",
    "synthesize",
    "evaluate",
    "layer_features",
    "model_lock",
    "check_objective",
]


class NonFiniteLossError(FloatingPointError):
    """The objective became NaN/inf; ``.result`` holds the best image reached before."""

    def __init__(self, message: str, result: SynthesisResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class SynthesisState:
    """Passed to a ``callback`` every ``every`` steps: the image so far and the objective."""

    step: int
    steps: int
    image: torch.Tensor
    value: float
    terms: dict[str, float]


@dataclass
class SynthesisResult:
    """What :func:`synthesize` returns.

    ``image`` is the final image (normalised model space, ``[B, 3, H, W]``;
    after an interruption it is the best one), ``best_image`` the one with
    the highest objective, ``history`` the objective per step and
    ``terms`` each weighted term per step. ``note`` says why a run ended
    early (``interrupted`` is True after Ctrl-C / Jupyter's stop button).
    """

    image: torch.Tensor
    best_image: torch.Tensor
    best_value: float
    history: list[float]
    terms: dict[str, list[float]]
    steps_done: int
    interrupted: bool = False
    note: str = ""
    seconds: float = 0.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_display(self, best: bool = False) -> np.ndarray:
        """The image(s) as H×W×3 (or B×H×W×3) floats in [0, 1] for ``plt.imshow``."""
        x = (self.best_image if best else self.image).detach()
        img = denormalize(x, mean=self.mean, std=self.std).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        return img[0] if img.shape[0] == 1 else img

    def __repr__(self) -> str:
        shape = "×".join(str(s) for s in self.image.shape)
        end = f", note={self.note!r}" if self.note else ""
        return (
            f"SynthesisResult(image {shape}, steps={self.steps_done}, best={self.best_value:.4g}, "
            f"{self.seconds:.1f} s{end})"
        )


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """One lock per model: a live widget's background run and a cell's run never share hooks.

    The table holds the models weakly, so it does not grow with every model ever used.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def _forward(stack: ExitStack, model: nn.Module, layers: frozenset[str], truncate: bool):
    """Enter what the forward pass needs on ``stack``; return ``x -> activations`` (with ``"logits"``)."""
    need_logits = O.LOGITS in layers
    named = sorted(layers - {O.LOGITS, O.INPUT})
    if named:
        cap = stack.enter_context(capture(model, named, detach=False, stop=truncate and not need_logits))

        def run(x):
            out = cap.run(x)
            acts = dict(cap.activations)
            if need_logits:
                acts[O.LOGITS] = out
            return acts

        return run
    if need_logits:
        stack.enter_context(no_inplace(model))
        return lambda x: {O.LOGITS: model(x)}
    return lambda x: {}


def evaluate(model: nn.Module, objective: O.Objective, image: torch.Tensor, *, truncate: bool = True):
    """The objective's value for ``image`` (differentiable w.r.t. ``image``), and its terms.

    ``truncate=False`` runs the whole model; the value and the gradient are
    the same (tested), only slower. The model is left as it was.
    """
    check_objective(objective)
    image = check_batch(image, "image")
    with ExitStack() as stack:
        stack.enter_context(model_lock(model))
        stack.enter_context(frozen(model))
        run = _forward(stack, model, objective.layers, truncate)
        return objective.evaluate(O.Context(run(image), image=image, input=image))


def layer_features(
    model: nn.Module, image: torch.Tensor, layers: str | Sequence[str]
) -> dict[str, torch.Tensor]:
    """Detached activations of ``layers`` for ``image``, computed once with a truncated forward pass.

    Used for the targets of inversion, content and style losses (computed
    once, before the loop).
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    with model_lock(model), frozen(model), torch.no_grad(), capture(model, names, stop=True) as cap:
        cap.run(check_batch(image, "image"))
        return {n: cap.activations[n].clone() for n in names}


_OPTIMIZERS = ("adam", "sgd", "ascent", "dream")


def check_objective(objective) -> None:
    """Raise a clear error unless ``objective`` is an :class:`~introspect_lab.synthesis.objectives.Objective`."""
    if not isinstance(objective, O.Objective):
        raise TypeError(
            f"objective must be an Objective (e.g. objectives.class_score(model, 'tabby') - 1e-3 * l2()), "
            f"got {type(objective).__name__}."
        )


def _scheduler(opt, lr: float, schedule, lr_drop, steps: int, image_steps=None):
    """The ``torch.optim.lr_scheduler`` for ``lr_schedule``/``lr_drop`` (per-image steps: each its own drop)."""
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


def synthesize(
    model: nn.Module,
    objective: O.Objective,
    *,
    size: int | tuple[int, int] = 128,
    batch: int = 1,
    init: str | torch.Tensor | None = "noise",
    init_scale: float = 1.0,
    param: str = "pixel",
    steps: int | Sequence[int] = 100,
    optimizer: str = "adam",
    lr: float | Sequence[float] = 0.05,
    lr_schedule=None,
    lr_drop: tuple[float, float] | None = None,
    transforms: Sequence[Callable] = (),
    image_ops: Sequence[R.StepOp] = (),
    clamp: bool | tuple[float, float] = True,
    truncate: bool = True,
    seed: int | None = None,
    callback: Callable[[SynthesisState], bool | None] | None = None,
    every: int = 10,
    progress: bool | None = None,
    desc: str = "synthesize",
) -> SynthesisResult:
    """Maximise ``objective`` over an image; the single loop behind every synthesis method.

    Each step: ``I = param()``; ``x = transforms(I)``; activations of the
    layers the objective names (the forward pass stops after the deepest
    one); ``J = objective(I, activations)``; a step on ``−J``; then the
    image operations (clamping to the valid pixel range, blur, clipping).

    Parameters
    ----------
    objective:
        An :class:`~introspect_lab.synthesis.objectives.Objective` to *maximise*.
    size, batch:
        Image side (int or ``(H, W)``) and number of images.
    init:
        ``"noise"`` (``init_scale``·N(0, 1) in normalised space, cs231n),
        ``"zeros"`` (the mean colour), ``"uniform"``, an image tensor
        (e.g. the content photo) or a path.
    param:
        ``"pixel"`` or ``"fft"`` (Lucent's decorrelated Fourier
        parameterisation; no image ops or clamping needed then).
    steps:
        Number of steps; or one per image (image ``b`` stops changing after
        ``steps[b]`` steps, so one batch holds several optimisations).
    optimizer, lr, lr_schedule:
        ``lr`` is one rate, or one per image (each image's step is scaled
        by its own rate; a ``{step: lr}`` schedule needs one rate).
        ``"adam"``, ``"sgd"`` (momentum 0.9), ``"ascent"`` (step
        ``lr·g/‖g‖₂``, cs231n) or ``"dream"`` (``lr·g/mean|g|``, DeepDream).
        ``lr_schedule``: ``None``, ``"cosine"``, ``{step: lr}`` (e.g.
        cs231n's ``{180: 0.1}``) or ``step → factor``; ``lr_drop=(fraction,
        factor)`` multiplies the rate by ``factor`` after that fraction of the
        steps (cs231n: ``(0.9, 0.1)``). All run as ``torch.optim.lr_scheduler``
        schedulers (cosine annealing, ``LambdaLR``, ``MultiStepLR``).
    transforms:
        Random differentiable transforms applied before the model each step
        (:class:`~introspect_lab.synthesis.priors.Jitter` etc.).
    image_ops:
        Step operations (:class:`~introspect_lab.synthesis.priors.GaussianBlur`,
        ``ClipSmallPixels``, ``ClipSmallGradients``).
    clamp:
        Keep pixels in the valid range ([0, 1] before normalisation, per
        channel); or a ``(low, high)`` in normalised units (cs231n: ±1.5).
    truncate:
        Stop the forward pass after the deepest layer needed.
    seed:
        Seeds the initial noise and the random transforms (same seed, same
        image); ``None`` draws a fresh seed (kept in ``result.extra["seed"]``).
    callback, every:
        ``callback(state)`` every ``every`` steps and at the end; return
        ``True`` to stop early.

    Failure handling: a non-finite objective raises
    :class:`NonFiniteLossError` naming the likely culprit; ``KeyboardInterrupt``
    (Jupyter's stop button) returns the best image so far with a ``note``.
    The model is left exactly as it was (hooks, flags, modes).
    """
    check_objective(objective)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of {_OPTIMIZERS}.")
    if param not in ("pixel", "fft"):
        raise ValueError(f"param must be 'pixel' or 'fft', got {param!r}.")
    if int(batch) < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}.")
    if int(every) < 1:
        raise ValueError(f"every must be ≥ 1, got {every}.")
    if param == "fft" and (image_ops or isinstance(init, torch.Tensor)):
        raise ValueError("param='fft' works on a spectrum: use param='pixel' for image_ops or an init image.")
    batch, every = int(batch), int(every)
    info = model_info(model)
    mean, std = tuple(info.mean), tuple(info.std)
    if isinstance(init, torch.Tensor):
        init = check_batch(init, "init", channels=None)
        if size is None:
            size = tuple(init.shape[-2:])
        if init.shape[0] > 1:
            batch = init.shape[0]
    lr, lrs = _per_image_rates(lr, batch)
    steps, image_steps = _per_image_steps(steps, batch)
    if lr_drop is not None and image_steps is not None and lrs is None:
        lrs = [lr] * batch  # one group per image, so each drops after its own steps
    if lrs is not None and isinstance(lr_schedule, Mapping):
        raise ValueError("A {step: lr} schedule needs one learning rate; give lr as one number.")
    if param == "fft" and (lrs is not None or image_steps is not None):
        raise ValueError("Per-image learning rates or steps need param='pixel'.")
    h, w = image_size(size)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    g = torch.Generator().manual_seed(int(seed))

    if param == "pixel":
        channels = init.shape[1] if isinstance(init, torch.Tensor) else 3
        x0 = initial_image(init, (batch, channels, h, w), mean, std, g, init_scale, model)
        p = Pixels(x0, per_image=lrs is not None)
    else:
        p = Fourier((batch, 3, h, w), mean, std, g)
    params = p.params()
    groups = [{"params": [q], "lr": r} for q, r in zip(params, lrs)] if lrs is not None else params
    if optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9)
    else:
        opt = torch.optim.SGD(groups, lr=lr)
    scheduler = _scheduler(opt, lr, lr_schedule, lr_drop, steps, image_steps)
    if clamp is True and param == "pixel":
        lo, hi = valid_range(mean, std)
    elif isinstance(clamp, tuple):
        lo, hi = torch.tensor(float(clamp[0])), torch.tensor(float(clamp[1]))
    else:
        lo = hi = None

    history: list[float] = []
    terms: dict[str, list[float]] = {}
    with torch.no_grad():
        init_image = p().detach().clone()
    best_value, best_image, best_step = -math.inf, init_image, 0
    interrupted, note, step = False, "", 0
    last_terms: dict[str, float] = {}
    start = time.perf_counter()

    def result(final: torch.Tensor) -> SynthesisResult:
        return SynthesisResult(
            image=final,
            best_image=best_image,
            best_value=best_value,
            history=history,
            terms=terms,
            steps_done=len(history),
            interrupted=interrupted,
            note=note,
            seconds=time.perf_counter() - start,
            mean=mean,
            std=std,
            extra={"seed": seed, "init": init_image},
        )

    show = show_progress() if progress is None else bool(progress)
    bar = tqdm(total=steps, desc=desc, disable=not show, leave=False)
    try:
        with ExitStack() as stack:
            stack.enter_context(model_lock(model))
            stack.enter_context(frozen(model))
            run = _forward(stack, model, objective.layers, truncate)
            for step in range(steps):
                cur_lr = opt.param_groups[0]["lr"]
                opt.zero_grad(set_to_none=True)
                img = p()
                x = img
                for t in transforms:
                    x = t(x, g)
                value, parts = objective.evaluate(O.Context(run(x), image=img, input=x))
                v = float(value.detach())
                if not math.isfinite(v):
                    bad = [k for k, val in parts.items() if not math.isfinite(val)] or list(parts)
                    weights = ", ".join(f"{n}: {wt:g}" for n, wt in zip(objective.names, objective.weights))
                    last = ", ".join(f"{k}={val:.3g}" for k, val in last_terms.items()) or "none yet"
                    msg = (
                        f"The objective became non-finite ({v}) at step {step + 1} of {steps}; "
                        f"non-finite term(s): {', '.join(bad)}. Likely culprits: the learning rate "
                        f"(lr={_rate_text(cur_lr, lrs)} with optimizer '{optimizer}') is too large — try it 10× smaller; "
                        f"or a term's weight is too large (weights: {weights}; last finite terms: {last}). "
                        "The best image reached before is in the error's .result."
                    )
                    note = msg
                    raise NonFiniteLossError(msg, result(best_image))
                history.append(v)
                for k, val in parts.items():
                    terms.setdefault(k, []).append(val)
                last_terms = parts
                if v > best_value:
                    best_value, best_image, best_step = v, img.detach().clone(), step
                (-value).backward()
                for q in params:
                    if p.pixels is None and optimizer in ("ascent", "dream"):
                        q.grad.div_(q.grad.norm().clamp_min(1e-12))
                    elif optimizer == "ascent":
                        q.grad.div_(q.grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
                    elif optimizer == "dream":
                        q.grad.div_(q.grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
                grad = p.grad if p.pixels is not None else None
                before = p.pixels.detach().clone() if image_steps else None
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                if p.pixels is not None:
                    with torch.no_grad():
                        xpix = p.pixels
                        # the ops see the ascent direction (−grad of the loss)
                        ascent = -grad if grad is not None else None
                        for op in image_ops:
                            op.after_step(xpix, ascent, step)
                        if lo is not None:
                            xpix.copy_(torch.maximum(torch.minimum(xpix, hi), lo))
                if image_steps is not None:
                    _keep_finished(p.pixels, before, image_steps, step)
                bar.update(1)
                if callback is not None and ((step + 1) % every == 0 or step + 1 == steps):
                    state = SynthesisState(step + 1, steps, p().detach().clone(), v, dict(parts))
                    if callback(state) is True:
                        note = f"Stopped by the callback after step {step + 1} of {steps}."
                        break
    except KeyboardInterrupt:
        interrupted = True
        note = (
            f"Interrupted after {len(history)} of {steps} steps: returning the best image so far "
            f"(step {best_step + 1}, objective {best_value:.4g})."
        )
        print(note)
        return result(best_image)
    finally:
        bar.close()
    with torch.no_grad():
        final = p().detach().clone()
    _warn_if_diverged(history, _rate_text(lr, lrs), optimizer)
    return result(final)


def _per_image_rates(lr, batch: int) -> tuple[float, list[float] | None]:
    """``(rate, per-image rates or None)``: equal rates are one rate; else one parameter group per image."""
    if isinstance(lr, (torch.Tensor, np.ndarray)):
        lr = lr.tolist()
    many = isinstance(lr, Sequence)
    rates = list(lr) if many else [lr]
    if not all(isinstance(v, Real) and v > 0 and math.isfinite(v) for v in rates):
        raise ValueError(f"lr must be a positive number (or one per image), got {lr!r}.")
    rates = [float(v) for v in rates]
    if many and len(rates) != batch:
        raise ValueError(f"Got {len(rates)} learning rates for {batch} images; give one, or one per image.")
    if len(set(rates)) == 1:
        return rates[0], None
    return max(rates), rates


def _per_image_steps(steps, batch: int) -> tuple[int, list[int] | None]:
    """``(steps of the loop, per-image steps or None)``: one count, or one per image."""
    many = isinstance(steps, (Sequence, np.ndarray))
    counts = [int(v) for v in steps] if many else [int(steps)]
    if min(counts, default=0) < 1:
        raise ValueError(f"steps must be ≥ 1 (or one such count per image), got {steps!r}.")
    if many and len(counts) != batch:
        raise ValueError(f"Got {len(counts)} step counts for {batch} images; give one, or one per image.")
    if len(set(counts)) == 1:
        return counts[0], None
    return max(counts), counts


def _rate_text(lr: float, lrs: list[float] | None) -> str:
    """The learning rate for a message: one number, or the range of the per-image rates."""
    if lrs is None:
        return f"{lr:g}"
    return f"{min(lrs):g}…{max(lrs):g} per image"


@torch.no_grad()
def _keep_finished(pixels: torch.Tensor, before: torch.Tensor, image_steps: Sequence[int], step: int) -> None:
    """Images whose steps are done (``step ≥ steps_b``) keep their pixels from before this step."""
    done = torch.tensor([step >= n for n in image_steps])
    if done.any():
        pixels[done] = before[done]


class DivergenceWarning(UserWarning):
    """The optimisation moved away from its goal: the objective ended far below where it started."""


def _warn_if_diverged(history: Sequence[float], lr: str, optimizer: str) -> None:
    """Warn when the start was the best point and the objective fell by more than its own size.

    A learning rate far too large throws the image to the edge of the valid range at the
    first step, where the objective stays: it never comes back above its starting value.
    """
    if len(history) < 3:
        return
    start, end = history[0], history[-1]
    if max(history) <= start and end < start - max(abs(start), 1e-8):
        warnings.warn(
            f"The optimisation diverged: the objective fell from {start:.4g} to {end:.4g} and never rose "
            f"above its start. The learning rate (lr={lr}, optimizer '{optimizer}') is probably far too "
            "large: try it 10× smaller.",
            DivergenceWarning,
            stacklevel=3,
        )
