"""One engine for every "optimise the image" method of the lectures.

Activation maximisation, DeepDream, feature inversion, texture synthesis
and style transfer are the same loop with different objectives (seeds 001,
002, 003, 004)::

    parameterisation → transforms → model (truncated) → objective + penalties → step → image ops

* **parameterisation**: the pixels themselves (``param="pixel"``) or a
  Fourier spectrum with decorrelated colours (``param="fft"``, Lucent);
* **transforms**: :mod:`introspect_lab.regularizers` jitter/scale/rotate,
  applied to a copy each step;
* **model**: only up to the deepest layer any term needs
  (:func:`introspect_lab.hooks.capture` with ``stop=True``), frozen and
  restored afterwards;
* **objective**: an :class:`~introspect_lab.objectives.Objective`, always
  *maximised*; losses enter with a minus sign;
* **step**: Adam, SGD, normalised gradient ascent (cs231n) or DeepDream's
  mean-normalised step, with an optional learning-rate schedule;
* **image ops**: clamping to the valid range, periodic blur, small-pixel
  and small-gradient clipping (seed 001).

The high-level methods (:func:`visualize_class`, :func:`visualize_channel`,
:func:`deepdream`, :func:`invert`; texture and style in
:mod:`introspect_lab.style`) only build an objective and call
:func:`synthesize` with per-model defaults from :data:`DEFAULTS`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import objectives as O
from . import regularizers as R
from .config import show_progress
from .hooks import capture, frozen, no_inplace
from .images import denormalize, load_image, normalize
from .models import model_info

__all__ = [
    "DEFAULTS",
    "defaults",
    "SynthesisResult",
    "SynthesisState",
    "NonFiniteLossError",
    "synthesize",
    "evaluate",
    "layer_features",
    "visualize_class",
    "visualize_channel",
    "deepdream",
    "invert",
    "relative_error",
]

# ---------------------------------------------------------------------------
# Per-model defaults that work (measured; see each entry)
# ---------------------------------------------------------------------------

#: Hyper-parameters per model and task. ``squeezenet1_1`` holds the cs231n
#: values (class visualisation and style transfer on SqueezeNet 1.1);
#: ``efficientnet_lite0`` holds values found by experiment on the bundled
#: model (128 px, 2-core CPU). Unknown models use ``efficientnet_lite0``'s.
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "squeezenet1_1": {
        "class": dict(size=224, steps=100, optimizer="ascent", lr=25.0, l2=1e-3, blur_every=10,
                      blur_sigma=0.5, jitter=16, init_scale=1.0, clip_pixels=0.0, clip_grads=0.0),
        "channel": dict(size=224, steps=100, optimizer="ascent", lr=25.0, l2=1e-3, blur_every=10,
                        blur_sigma=0.5, jitter=16, init_scale=1.0, clip_pixels=0.0, clip_grads=0.0),
        "deepdream": dict(size=224, layer="features.9", octaves=3, octave_scale=1.4, steps=20, lr=0.02, jitter=16),
        "invert": dict(size=192, steps=200, lr=3.0, lr_drop=(0.9, 0.1), tv=2e-2, tv_beta=2.0, alpha=6.0,
                       alpha_weight=0.0, optimizer="adam"),
        "style": dict(size=192, content_layer="features.3", style_layers=("features.1", "features.4",
                      "features.6", "features.7"), style_weights=(3e5, 1e3, 15, 3), content_weight=6e-2,
                      tv=2e-2, steps=200, lr=3.0, lr_drop=(0.9, 0.1), clamp_range=(-1.5, 1.5),
                      gram_normalization="hwc"),
        "layers": dict(channel=["features.1", "features.4", "features.7", "features.12"],
                       depth=["features.1", "features.3", "features.4", "features.6", "features.7", "features.9",
                              "features.12"],
                       dream=["features.4", "features.7", "features.10", "features.12"],
                       mid="features.7", deep="features.12"),
    },
    "efficientnet_lite0": {
        "class": dict(size=128, steps=100, optimizer="ascent", lr=25.0, l2=1e-3, blur_every=10,
                      blur_sigma=0.5, jitter=8, init_scale=1.0, clip_pixels=0.0, clip_grads=0.0),
        "channel": dict(size=128, steps=100, optimizer="ascent", lr=25.0, l2=1e-3, blur_every=10,
                        blur_sigma=0.5, jitter=8, init_scale=1.0, clip_pixels=0.0, clip_grads=0.0),
        "deepdream": dict(size=160, layer="blocks.8", octaves=3, octave_scale=1.4, steps=15, lr=0.02, jitter=8),
        "invert": dict(size=128, steps=150, lr=0.3, lr_drop=(0.8, 0.1), tv=1e-4, tv_beta=2.0, alpha=6.0,
                       alpha_weight=0.0, optimizer="adam"),
        "style": dict(size=128, content_layer="blocks.5", style_layers=("stem", "blocks.1", "blocks.3",
                      "blocks.5"), style_weights=(1.0, 1.0, 1.0, 1.0), content_weight=1e-2, tv=1e-5,
                      steps=150, lr=0.05, lr_drop=None, clamp_range=None, gram_normalization="seed"),
        "layers": dict(channel=["stem", "blocks.3", "blocks.8", "blocks.14"],
                       depth=["stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8", "blocks.12", "head"],
                       dream=["blocks.2", "blocks.6", "blocks.10", "blocks.14"],
                       mid="blocks.5", deep="blocks.12"),
    },
}  # fmt: skip


def defaults(model: nn.Module | str, task: str) -> dict[str, Any]:
    """A copy of :data:`DEFAULTS` for ``model`` (or its name) and ``task``.

    Tasks: ``"class"``, ``"channel"``, ``"deepdream"``, ``"invert"``, ``"style"``, and
    ``"layers"`` (layer names the notebooks use: ``channel``, ``depth``, ``dream``, ``mid``, ``deep``).
    Models without their own entry get the bundled model's values.
    """
    name = model if isinstance(model, str) else model_info(model).name
    table = DEFAULTS.get(name, DEFAULTS["efficientnet_lite0"])
    if task not in table:
        raise ValueError(f"Unknown task {task!r}; tasks are {sorted(table)}.")
    return dict(table[task])


# ---------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Parameterisations
# ---------------------------------------------------------------------------


def _valid_range(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (0 - m) / s, (1 - m) / s


class _Pixels:
    """The image itself, in normalised model space, is the parameter."""

    def __init__(self, init: torch.Tensor):
        self.x = init.detach().clone().float().requires_grad_(True)

    def params(self) -> list[torch.Tensor]:
        return [self.x]

    def __call__(self) -> torch.Tensor:
        return self.x

    @property
    def pixels(self) -> torch.Tensor | None:
        return self.x


# Lucent's colour decorrelation matrix (square root of ImageNet's colour covariance).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class _Fourier:
    """Lucent's FFT + decorrelated-colour parameterisation; pixels via a sigmoid to [0, 1]."""

    def __init__(self, shape, mean, std, g: torch.Generator, sd: float = 0.01, decay_power: float = 1.0):
        b, c, h, w = shape
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freqs = torch.sqrt(fx**2 + fy**2)
        self.scale = (1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power) * math.sqrt(h * w)
        self.spectrum = (torch.randn(b, c, h, w // 2 + 1, 2, generator=g) * sd).requires_grad_(True)
        self.hw = (h, w)
        self.mean, self.std = mean, std
        self.color = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

    def params(self):
        return [self.spectrum]

    def __call__(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=self.hw, norm="ortho") / 4.0
        img = torch.einsum("bchw,dc->bdhw", img, self.color)
        return normalize(torch.sigmoid(img), mean=self.mean, std=self.std)

    pixels = None


# ---------------------------------------------------------------------------
# Forward pass with truncation
# ---------------------------------------------------------------------------


_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _model_lock(model: nn.Module) -> threading.RLock:
    """One lock per model: a live widget's background run and a cell's run never share hooks."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(model), threading.RLock())


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
    _check_objective(objective)
    with ExitStack() as stack:
        stack.enter_context(_model_lock(model))
        stack.enter_context(frozen(model))
        run = _forward(stack, model, objective.layers, truncate)
        return objective.evaluate(O.Context(run(image), image=image, input=image))


def layer_features(
    model: nn.Module, image: torch.Tensor, layers: str | Sequence[str]
) -> dict[str, torch.Tensor]:
    """Detached activations of ``layers`` for ``image``, computed once with a truncated forward pass."""
    names = [layers] if isinstance(layers, str) else list(layers)
    with _model_lock(model), frozen(model), torch.no_grad(), capture(model, names, stop=True) as cap:
        cap.run(_as_batch(image))
        return {n: cap.activations[n].clone() for n in names}


# ---------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------

_OPTIMIZERS = ("adam", "sgd", "ascent", "dream")


def _check_objective(objective):
    if not isinstance(objective, O.Objective):
        raise TypeError(
            f"objective must be an Objective (e.g. objectives.class_score(model, 'tabby') - 1e-3 * l2()), "
            f"got {type(objective).__name__}."
        )


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Expected an image tensor [B, 3, H, W] (see load_image), got {type(x).__name__}.")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"Expected an image batch [B, 3, H, W], got shape {tuple(x.shape)}.")
    return x


def _size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 16 or w < 16:
        raise ValueError(f"Image size {h}×{w} is too small; use at least 16 px (e.g. size=128).")
    return int(h), int(w)


def _lr_at(step: int, lr: float, schedule) -> float:
    if schedule is None:
        return lr
    if callable(schedule):
        return lr * float(schedule(step))
    if isinstance(schedule, Mapping):
        cur = lr
        for s in sorted(schedule):
            if step >= s:
                cur = float(schedule[s])
        return cur
    if schedule == "cosine":
        return lr
    raise ValueError(
        f"lr_schedule must be None, 'cosine', a dict {{step: lr}} or a callable, got {schedule!r}."
    )


def _init_image(init, shape, mean, std, g, init_scale, model):
    b, _, h, w = shape
    if isinstance(init, torch.Tensor):
        x = _as_batch(init).float()
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x.expand(b, -1, -1, -1).clone() if x.shape[0] == 1 else x.clone()
    if init is None or init == "noise":
        return torch.randn(shape, generator=g) * init_scale
    if init == "zeros":
        return torch.zeros(shape)
    if init == "uniform":
        return normalize(torch.rand(shape, generator=g), mean=mean, std=std)
    if isinstance(init, str):
        return load_image(init, model, size=(h, w)).expand(b, -1, -1, -1).clone()
    raise ValueError(
        f"init must be 'noise', 'zeros', 'uniform', an image tensor or a file path, got {init!r}."
    )


class _NoBar:
    """Stands in for a disabled bar (tqdm.auto starts a monitor thread even when disabled)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def synthesize(
    model: nn.Module,
    objective: O.Objective,
    *,
    size: int | tuple[int, int] = 128,
    batch: int = 1,
    init: str | torch.Tensor | None = "noise",
    init_scale: float = 1.0,
    param: str = "pixel",
    steps: int = 100,
    optimizer: str = "adam",
    lr: float = 0.05,
    lr_schedule=None,
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
        An :class:`~introspect_lab.objectives.Objective` to *maximise*.
    size, batch:
        Image side (int or ``(H, W)``) and number of images.
    init:
        ``"noise"`` (``init_scale``·N(0, 1) in normalised space, cs231n),
        ``"zeros"`` (the mean colour), ``"uniform"``, an image tensor
        (e.g. the content photo) or a path.
    param:
        ``"pixel"`` or ``"fft"`` (Lucent's decorrelated Fourier
        parameterisation; no image ops or clamping needed then).
    optimizer, lr, lr_schedule:
        ``"adam"``, ``"sgd"`` (momentum 0.9), ``"ascent"`` (step
        ``lr·g/‖g‖₂``, cs231n) or ``"dream"`` (``lr·g/mean|g|``, DeepDream).
        ``lr_schedule``: ``None``, ``"cosine"``, ``{step: lr}`` (e.g.
        cs231n's ``{180: 0.1}``) or ``step → factor``.
    transforms:
        Random differentiable transforms applied before the model each step
        (:class:`~introspect_lab.regularizers.Jitter` etc.).
    image_ops:
        Step operations (:class:`~introspect_lab.regularizers.GaussianBlur`,
        ``ClipSmallPixels``, ``ClipSmallGradients``).
    clamp:
        Keep pixels in the valid range ([0, 1] before normalisation, per
        channel); or a ``(low, high)`` in normalised units (cs231n: ±1.5).
    truncate:
        Stop the forward pass after the deepest layer needed.
    seed:
        Seeds the initial noise and the random transforms (same seed, same image).
    callback, every:
        ``callback(state)`` every ``every`` steps and at the end; return
        ``True`` to stop early.

    Failure handling: a non-finite objective raises
    :class:`NonFiniteLossError` naming the likely culprit; ``KeyboardInterrupt``
    (Jupyter's stop button) returns the best image so far with a ``note``.
    The model is left exactly as it was (hooks, flags, modes).
    """
    _check_objective(objective)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of {_OPTIMIZERS}.")
    if param not in ("pixel", "fft"):
        raise ValueError(f"param must be 'pixel' or 'fft', got {param!r}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}.")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if int(batch) < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}.")
    if int(every) < 1:
        raise ValueError(f"every must be ≥ 1, got {every}.")
    if param == "fft" and (image_ops or isinstance(init, torch.Tensor)):
        raise ValueError("param='fft' works on a spectrum: use param='pixel' for image_ops or an init image.")
    steps, batch, every = int(steps), int(batch), int(every)
    info = model_info(model)
    mean, std = tuple(info.mean), tuple(info.std)
    if isinstance(init, torch.Tensor):
        init = _as_batch(init)
        if size is None:
            size = tuple(init.shape[-2:])
        if init.shape[0] > 1:
            batch = init.shape[0]
    h, w = _size(size)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    g = torch.Generator().manual_seed(int(seed))

    if param == "pixel":
        p = _Pixels(_init_image(init, (batch, 3, h, w), mean, std, g, init_scale, model))
    else:
        p = _Fourier((batch, 3, h, w), mean, std, g)
    params = p.params()
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    else:
        opt = torch.optim.SGD(params, lr=lr)
    if clamp is True and param == "pixel":
        lo, hi = _valid_range(mean, std)
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

    from tqdm.auto import tqdm

    show = show_progress() if progress is None else bool(progress)
    bar = tqdm(total=steps, desc=desc, disable=not show, leave=False) if show else _NoBar()
    try:
        with ExitStack() as stack:
            stack.enter_context(_model_lock(model))
            stack.enter_context(frozen(model))
            run = _forward(stack, model, objective.layers, truncate)
            for step in range(steps):
                cur_lr = _lr_at(step, lr, lr_schedule)
                if lr_schedule == "cosine":
                    cur_lr = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                for group in opt.param_groups:
                    group["lr"] = cur_lr
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
                        f"(lr={cur_lr:g} with optimizer '{optimizer}') is too large — try it 10× smaller; "
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
                grad = p.pixels.grad if p.pixels is not None else None
                if grad is not None:
                    if optimizer == "ascent":
                        grad.div_(grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
                    elif optimizer == "dream":
                        grad.div_(grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1))
                elif optimizer in ("ascent", "dream"):
                    for q in params:
                        q.grad.div_(q.grad.norm().clamp_min(1e-12))
                opt.step()
                if p.pixels is not None:
                    with torch.no_grad():
                        xpix = p.pixels
                        # the ops see the ascent direction (−grad of the loss)
                        ascent = -grad if grad is not None else None
                        for op in image_ops:
                            op.after_step(xpix, ascent, step)
                        if lo is not None:
                            xpix.copy_(torch.maximum(torch.minimum(xpix, hi), lo))
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
    return result(final)


# ---------------------------------------------------------------------------
# Methods built on the engine
# ---------------------------------------------------------------------------


def _merge(model, task: str, overrides: dict[str, Any]) -> dict[str, Any]:
    cfg = defaults(model, task)
    for k, v in overrides.items():
        if v is not None:
            cfg[k] = v
    return cfg


def _yosinski(cfg) -> tuple[list, list]:
    ops: list[R.StepOp] = []
    if cfg.get("blur_every") and cfg.get("blur_sigma"):
        ops.append(R.GaussianBlur(every=int(cfg["blur_every"]), sigma=float(cfg["blur_sigma"])))
    if cfg.get("clip_pixels"):
        ops.append(R.ClipSmallPixels(float(cfg["clip_pixels"])))
    if cfg.get("clip_grads"):
        ops.append(R.ClipSmallGradients(float(cfg["clip_grads"])))
    transforms = [R.Jitter(int(cfg["jitter"]))] if cfg.get("jitter") else []
    return transforms, ops


def visualize_class(
    model: nn.Module,
    target: int | str | Sequence[int | str],
    *,
    size: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    l2: float | None = None,
    blur_every: int | None = None,
    blur_sigma: float | None = None,
    jitter: int | None = None,
    clip_pixels: float | None = None,
    clip_grads: float | None = None,
    optimizer: str | None = None,
    init_scale: float | None = None,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Class visualisation: ``argmax_I S_c(I) − λ‖I‖²`` by gradient ascent (seed 001; Simonyan et al. 2014).

    With the lecture's "better regularizer": periodic Gaussian blur, small
    pixel/gradient clipping (Yosinski et al. 2015) and random jitter.
    ``target`` is a class (index or name) or one per image; pass ``l2=0,
    blur_every=0, jitter=0`` for the unregularised (noisy) version.
    Unset parameters come from :func:`defaults` ``(model, "class")``.
    """
    cfg = _merge(model, "class", dict(size=size, steps=steps, lr=lr, l2=l2, blur_every=blur_every,
                                      blur_sigma=blur_sigma, jitter=jitter, clip_pixels=clip_pixels,
                                      clip_grads=clip_grads, optimizer=optimizer, init_scale=init_scale))  # fmt: skip
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    obj = O.class_score(model, targets if len(targets) > 1 else targets[0])
    if cfg["l2"]:
        obj = obj - float(cfg["l2"]) * R.l2()
    transforms, ops = _yosinski(cfg)
    return synthesize(
        model, obj, size=cfg["size"], batch=len(targets), init="noise", init_scale=cfg["init_scale"],
        steps=cfg["steps"], optimizer=cfg["optimizer"], lr=cfg["lr"], transforms=transforms, image_ops=ops,
        seed=seed, callback=callback, every=every, progress=progress, desc="class visualisation",
    )  # fmt: skip


def visualize_channel(
    model: nn.Module,
    layer: str,
    channel: int | Sequence[int],
    *,
    size: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    l2: float | None = None,
    blur_every: int | None = None,
    blur_sigma: float | None = None,
    jitter: int | None = None,
    optimizer: str | None = None,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Per-channel feature visualisation: maximise the mean of channel ``c`` of ``layer`` (seed 003).

    Several channels give a batch, one image per channel, in one run (the
    forward pass stops at ``layer``). Early layers give colours and edges,
    deeper layers textures and parts.
    """
    chans = list(channel) if isinstance(channel, (list, tuple)) else [channel]
    cfg = _merge(model, "channel", dict(size=size, steps=steps, lr=lr, l2=l2, blur_every=blur_every,
                                        blur_sigma=blur_sigma, jitter=jitter, optimizer=optimizer))  # fmt: skip
    from .models import get_layer

    get_layer(model, layer)

    def fn(ctx):
        a = ctx[layer]
        if a.dim() < 2 or max(chans) >= a.shape[1] or min(chans) < 0:
            raise ValueError(f"Channels {chans} out of range: layer {layer!r} has {a.shape[1]} channels.")
        idx = torch.tensor(chans)
        sel = a[torch.arange(len(chans)), idx] if a.shape[0] == len(chans) else a[:, idx[0]]
        return sel.reshape(sel.shape[0], -1).mean(1).sum()

    obj = O.Objective.term(f"channel[{layer}:{chans}]", fn, [layer])
    if cfg["l2"]:
        obj = obj - float(cfg["l2"]) * R.l2()
    transforms, ops = _yosinski(cfg)
    return synthesize(
        model, obj, size=cfg["size"], batch=len(chans), init="noise", init_scale=cfg["init_scale"],
        steps=cfg["steps"], optimizer=cfg["optimizer"], lr=cfg["lr"], transforms=transforms, image_ops=ops,
        seed=seed, callback=callback, every=every, progress=progress, desc=f"channels of {layer}",
    )  # fmt: skip


def deepdream(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | None = None,
    *,
    octaves: int | None = None,
    octave_scale: float | None = None,
    steps: int | None = None,
    lr: float | None = None,
    jitter: int | None = None,
    strength: float = 1.0,
    size: int | tuple[int, int] | None = None,
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """DeepDream: amplify whatever ``layer`` sees, ``argmax_I Σ_i f_i(I)²`` (seed 001; Mordvintsev et al. 2015).

    Runs ``steps`` normalised ascent steps (``lr·g/mean|g|``) per octave,
    from the smallest octave (``image`` shrunk by ``octave_scale^(octaves−1)``)
    to full size; at each octave the *detail* added so far is upsampled onto
    the photo resized to that octave. ``strength`` scales the learning rate;
    ``size`` resizes the photo first; ``callback`` sees every octave's steps.
    """
    cfg = _merge(model, "deepdream", dict(layer=layer, octaves=octaves, octave_scale=octave_scale, steps=steps,
                                          lr=lr, jitter=jitter))  # fmt: skip
    image = _as_batch(image).float()
    if size is not None:
        image = F.interpolate(image, size=_size(size), mode="bilinear", align_corners=False, antialias=True)
    if not strength > 0:
        raise ValueError(f"strength must be > 0, got {strength}.")
    n_oct, scale = int(cfg["octaves"]), float(cfg["octave_scale"])
    if n_oct < 1 or scale <= 1:
        raise ValueError("octaves must be ≥ 1 and octave_scale > 1.")
    h, w = image.shape[-2:]
    sizes = [(max(16, round(h / scale**k)), max(16, round(w / scale**k))) for k in reversed(range(n_oct))]
    obj = O.dream(cfg["layer"])
    detail = torch.zeros_like(image)
    start = time.perf_counter()
    histories: list[float] = []
    res = None
    for i, hw in enumerate(sizes):
        base = F.interpolate(image, size=hw, mode="bilinear", align_corners=False) if hw != (h, w) else image
        d = F.interpolate(detail, size=hw, mode="bilinear", align_corners=False)
        res = synthesize(
            model, obj, size=hw, init=base + d, steps=cfg["steps"], optimizer="dream", lr=cfg["lr"] * strength,
            transforms=[R.Jitter(int(cfg["jitter"]))] if cfg["jitter"] else [], seed=None if seed is None else seed + i,
            callback=callback, every=every, progress=progress, desc=f"octave {i + 1}/{n_oct}",
        )  # fmt: skip
        histories += res.history
        detail = res.image - base
        if res.interrupted or res.note.startswith("Stopped by the callback"):
            break
    res.history = histories
    res.seconds = time.perf_counter() - start
    return res


def invert(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    *,
    size: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    tv: float | None = None,
    tv_beta: float | None = None,
    alpha: float | None = None,
    alpha_weight: float | None = None,
    init: str | torch.Tensor = "zeros",
    seed: int | None = None,
    callback=None,
    every: int = 10,
    progress: bool | None = None,
) -> SynthesisResult:
    """Feature inversion (Mahendran & Vedaldi 2015; seed 001, seed 002 Eq. 1).

    ``Î = argmin_I ‖Φ(I) − Φ₀‖²/‖Φ₀‖² + λ_α ‖I‖_α^α + λ_TV R_{V^β}(I)`` with
    ``Φ₀ = Φ(I₀)`` the features of ``image`` at ``layer``. The result's
    ``extra`` holds ``feature_error`` (the normalised loss, Eq. 1) and
    ``relative_error`` ``‖I₀ − Î‖/‖I₀‖`` (seed 002, Table 1), in normalised space.
    """
    cfg = _merge(model, "invert", dict(size=size, steps=steps, lr=lr, tv=tv, tv_beta=tv_beta, alpha=alpha,
                                       alpha_weight=alpha_weight))  # fmt: skip
    image = _as_batch(image).float()
    hw = _size(cfg["size"])
    if tuple(image.shape[-2:]) != hw:
        image = F.interpolate(image, size=hw, mode="bilinear", align_corners=False, antialias=True)
    phi0 = layer_features(model, image, layer)[layer]
    loss = O.feature_match(layer, phi0)
    if cfg["tv"]:
        loss = loss + float(cfg["tv"]) * R.tv(float(cfg["tv_beta"]))
    if cfg["alpha_weight"]:
        loss = loss + float(cfg["alpha_weight"]) * R.alpha_norm(float(cfg["alpha"]))
    sched = _lr_drop(cfg)
    res = synthesize(
        model, -loss, size=hw, batch=image.shape[0], init=init, steps=cfg["steps"], optimizer=cfg.get("optimizer", "adam"),
        lr=cfg["lr"], lr_schedule=sched, seed=seed, callback=callback, every=every, progress=progress,
        desc=f"inverting {layer}",
    )  # fmt: skip
    with torch.no_grad():
        feats = layer_features(model, res.image, layer)[layer]
        res.extra["feature_error"] = float(((feats - phi0).pow(2).sum() / phi0.pow(2).sum()).item())
        res.extra["relative_error"] = relative_error(image, res.image)
    res.extra["target"] = image
    return res


def _lr_drop(cfg) -> dict[int, float] | None:
    """``lr_drop=(fraction, factor)``: multiply lr by ``factor`` after that fraction of the steps (cs231n: 0.9, 0.1)."""
    if not cfg.get("lr_drop"):
        return None
    frac, factor = cfg["lr_drop"]
    return {max(1, int(frac * cfg["steps"])): cfg["lr"] * factor}


def relative_error(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Relative L2 distance ``‖I₀ − Î‖₂ / ‖I₀‖₂`` (seed 002, Table 1)."""
    if reference.shape != estimate.shape:
        raise ValueError(f"Shapes differ: {tuple(reference.shape)} vs {tuple(estimate.shape)}.")
    return float((reference - estimate).norm() / reference.norm().clamp_min(1e-12))
