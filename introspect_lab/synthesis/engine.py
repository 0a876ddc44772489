"""The engine: one loop behind every "optimise the image" method.

    parameterisation → transforms → model (truncated) → objective + penalties → step → image ops

:func:`synthesize` runs it; :func:`evaluate` gives an objective's value for
one image; :func:`layer_features` computes targets once. The model runs
only up to the deepest layer any term needs (:func:`introspect_lab.hooks.capture`
with ``stop=True``), frozen, with its BatchNorms folded into its convolutions
(:func:`introspect_lab.fastpath.batchnorm_folded`, a private copy), and is restored afterwards.
The steps of the loop live in :mod:`.steps`, its record and diagnostics in :mod:`.record`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import fresh_seed, show_progress
from ..fastpath import batchnorm_folded
from ..hooks import capture, frozen, no_inplace
from ..images import check_batch, device_dtype
from ..models import model_info
from ..settings import override
from . import objectives as O
from . import priors as R
from . import steps as S
from .parameterisation import Fourier, Pixels, image_size, initial_image
from .record import (
    DivergenceWarning,
    NonFiniteLossError,
    Record,
    SynthesisResult,
    SynthesisState,
    check_finite,
    warn_if_diverged,
)

__all__ = [
    "SynthesisSettings",
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


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


#: How often (in steps) the loop reads back whether the objective is still finite. Each read waits
#: for the device; the record keeps the best image before a non-finite step either way.
_CHECK_EVERY = 10


def model_lock(model: nn.Module) -> threading.RLock:
    """One lock per model: a live widget's background run and a cell's run never share hooks.

    The table holds the models weakly, so it does not grow with every model ever used.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextmanager
def model_forward(model: nn.Module, layers: frozenset[str], truncate: bool = True) -> Iterator[Callable]:
    """The model locked and frozen, with hooks on ``layers``: yields ``x -> activations`` (with ``"logits"``).

    ``truncate`` stops the forward pass after the deepest layer (unless the
    logits are needed). Everything is undone on exit.
    """
    need_logits = O.LOGITS in layers
    named = sorted(layers - {O.LOGITS, O.INPUT})
    with ExitStack() as stack:
        stack.enter_context(model_lock(model))
        stack.enter_context(frozen(model))
        net = batchnorm_folded(model, keep=named)
        if named:
            cap = stack.enter_context(capture(net, named, detach=False, stop=truncate and not need_logits))

            def run(x):
                out = cap.run(x)
                acts = dict(cap.activations)
                if need_logits:
                    acts[O.LOGITS] = out
                return acts

            yield run
        elif need_logits:
            stack.enter_context(no_inplace(net))
            yield lambda x: {O.LOGITS: net(x)}
        else:
            yield lambda x: {}


def evaluate(model: nn.Module, objective: O.Objective, image: torch.Tensor, *, truncate: bool = True):
    """The objective's value for ``image`` (differentiable w.r.t. ``image``), and its terms.

    ``truncate=False`` runs the whole model; the value and the gradient are
    the same (tested), only slower. The model is left as it was.
    """
    check_objective(objective)
    image = check_batch(image, "image")
    with model_forward(model, objective.layers, truncate) as run:
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


def check_objective(objective) -> None:
    """Raise a clear error unless ``objective`` is
    an :class:`~introspect_lab.synthesis.objectives.Objective`.
    """
    if not isinstance(objective, O.Objective):
        raise TypeError(
            f"objective must be an Objective (e.g. objectives.class_score(model, 'tabby') - 1e-3 * l2()), "
            f"got {type(objective).__name__}."
        )


@dataclass(frozen=True)
class SynthesisSettings:
    """The loop's settings: what image it starts from, how it steps, and what it does to the image.

    Every field can be given to :func:`synthesize` by name
    (``synthesize(model, objective, steps=50)``).

    ``size``, ``batch``: image side (int or ``(H, W)``; ``None``: the ``init``
    image's size, else 128) and number of images. ``init``: ``"noise"``
    (``init_scale``·N(0, 1) in normalised space, cs231n), ``"zeros"`` (the
    mean colour), ``"uniform"``, an image tensor (e.g. the content photo;
    resized to ``size``; a batch of them sets ``batch``) or a path.
    ``param``: ``"pixel"`` or ``"fft"`` (Lucent's decorrelated Fourier
    parameterisation; no image ops or clamping needed then).
    ``steps``: number of steps; or one per image (image ``b`` stops changing
    after ``steps[b]`` steps, so one batch holds several optimisations).
    ``optimizer``: ``"adam"``, ``"sgd"`` (momentum 0.9), ``"ascent"`` (step
    ``lr·g/‖g‖₂``, cs231n) or ``"dream"`` (``lr·g/mean|g|``, DeepDream).
    ``lr``: one rate, or one per image (each image's step is scaled by its
    own rate; a ``{step: lr}`` schedule needs one rate). ``lr_schedule``:
    ``None``, ``"cosine"``, ``{step: lr}`` (e.g. cs231n's ``{180: 0.1}``) or
    ``step → factor``; ``lr_drop=(fraction, factor)`` multiplies the rate by
    ``factor`` after that fraction of the steps (cs231n: ``(0.9, 0.1)``). All
    run as ``torch.optim.lr_scheduler`` schedulers.
    ``transforms``: random differentiable transforms applied before the model
    each step (:class:`~introspect_lab.synthesis.priors.Jitter` etc.).
    ``image_ops``: step operations after each step
    (:class:`~introspect_lab.synthesis.priors.GaussianBlur`, ``ClipSmallPixels``,
    ``ClipSmallGradients``). ``clamp``: keep pixels in the valid range ([0, 1]
    before normalisation, per channel); or a ``(low, high)`` in normalised
    units (cs231n: ±1.5). ``truncate``: stop the forward pass after the deepest
    layer needed (same value and gradient, faster).
    """

    size: int | tuple[int, int] | None = None
    batch: int = 1
    init: str | torch.Tensor = "noise"
    init_scale: float = 1.0
    param: str = "pixel"
    steps: int | Sequence[int] = 100
    optimizer: str = "adam"
    lr: float | Sequence[float] = 0.05
    lr_schedule: str | Mapping[int, float] | Callable[[int], float] | None = None
    lr_drop: tuple[float, float] | None = None
    transforms: Sequence[Callable] = ()
    image_ops: Sequence[R.StepOp] = ()
    clamp: bool | tuple[float, float] = True
    truncate: bool = True


def synthesize(
    model: nn.Module,
    objective: O.Objective,
    settings: SynthesisSettings | None = None,
    *,
    seed: int | None = None,
    callback: Callable[[SynthesisState], bool | None] | None = None,
    every: int = 10,
    progress: bool | None = None,
    desc: str = "synthesize",
    **overrides,
) -> SynthesisResult:
    """Maximise ``objective`` over an image; the single loop behind every synthesis method.

    Each step: ``I = param()``; ``x = transforms(I)``; activations of the
    layers the objective names (the forward pass stops after the deepest
    one); ``J = objective(I, activations)``; a step on ``−J``; then the
    image operations (clamping to the valid pixel range, blur, clipping).

    ``objective`` is an :class:`~introspect_lab.synthesis.objectives.Objective`
    to *maximise*. The settings are ``settings`` (default
    :class:`SynthesisSettings`) with ``overrides`` by field name
    (:func:`~introspect_lab.settings.override`): ``size``, ``batch``, ``init``,
    ``init_scale``, ``param``, ``steps``, ``optimizer``, ``lr``,
    ``lr_schedule``, ``lr_drop``, ``transforms``, ``image_ops``, ``clamp``,
    ``truncate``. ``seed`` seeds the initial noise and the random transforms
    (same seed, same image); ``None`` draws a fresh seed (kept in
    ``result.extra["seed"]``). ``callback(state)`` runs every ``every`` steps
    and at the end; it returns ``True`` to stop early. ``progress`` shows a
    bar titled ``desc``.

    Failure handling: a non-finite objective raises
    :class:`NonFiniteLossError` naming the likely culprit; ``KeyboardInterrupt``
    (Jupyter's stop button) returns the best image so far with a ``note``.
    The model is left exactly as it was (hooks, flags, modes).
    """
    check_objective(objective)
    cfg = override(settings or SynthesisSettings(), **overrides)
    _check_arguments(model, cfg, every)
    info = model_info(model)
    batch, init = int(cfg.batch), cfg.init
    size = 128 if cfg.size is None else cfg.size
    if isinstance(init, torch.Tensor):
        init = check_batch(init, "init", channels=None)
        size = tuple(init.shape[-2:]) if cfg.size is None else cfg.size
        batch = init.shape[0] if init.shape[0] > 1 else batch
    steps, image_steps = S.per_image_steps(cfg.steps, batch)
    lr, lrs = S.per_image_rates(cfg.lr, batch, split=cfg.lr_drop is not None and image_steps is not None)
    if lrs is not None and isinstance(cfg.lr_schedule, Mapping):
        raise ValueError("A {step: lr} schedule needs one learning rate; give lr as one number.")
    if cfg.param == "fft" and (lrs is not None or image_steps is not None):
        raise ValueError("Per-image learning rates or steps need param='pixel'.")
    seed = fresh_seed() if seed is None else int(seed)
    g = torch.Generator().manual_seed(seed)
    p = _parameterisation(model, cfg.param, init, cfg.init_scale, (batch, image_size(size)), g, lrs)
    opt = S.make_optimizer(p.params(), cfg.optimizer, lr, lrs)
    scheduler = S.make_scheduler(opt, lr, cfg.lr_schedule, cfg.lr_drop, steps, image_steps)
    limits = S.clamp_range(cfg.clamp, cfg.param, info.mean, info.std)
    with torch.no_grad():
        record = Record(p().detach().clone(), info.mean, info.std, seed)
    rate = S.rate_text(lr, lrs, cfg.optimizer)
    show = show_progress() if progress is None else bool(progress)
    note = ""
    try:
        with (
            model_forward(model, objective.layers, cfg.truncate) as run,
            tqdm(total=steps, desc=desc, disable=not show, leave=False) as bar,
        ):
            for step in range(steps):
                img = p()
                x = _transform(img, cfg.transforms, g)
                value, parts = objective.evaluate(O.Context(run(x), image=img, input=x))
                record.add(img, value, parts)
                if _read_back_due(step, steps, callback, every):
                    check_finite(record, steps, rate, objective)
                before = p.pixels.detach().clone() if image_steps else None
                S.optimiser_step(p, opt, value, cfg.optimizer, scheduler)
                S.image_step(p, cfg.image_ops, limits, step)
                if image_steps:
                    S.keep_finished(p, before, image_steps, step)
                bar.update(1)
                if _callback_stops(callback, every, step, steps, p, record):
                    note = f"Stopped by the callback after step {step + 1} of {steps}."
                    break
    except KeyboardInterrupt:
        return record.interrupted(steps)
    warn_if_diverged(record.history, rate)
    with torch.no_grad():
        return record.result(p().detach().clone(), note=note)


def _check_arguments(model, cfg: SynthesisSettings, every: int) -> None:
    """Clear errors for settings of :func:`synthesize` that cannot work."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if cfg.optimizer not in S.OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {cfg.optimizer!r}; choose one of {S.OPTIMIZERS}.")
    if cfg.param not in ("pixel", "fft"):
        raise ValueError(f"param must be 'pixel' or 'fft', got {cfg.param!r}.")
    if int(cfg.batch) < 1:
        raise ValueError(f"batch must be ≥ 1, got {cfg.batch}.")
    if int(every) < 1:
        raise ValueError(f"every must be ≥ 1, got {every}.")
    if cfg.param == "fft" and (cfg.image_ops or isinstance(cfg.init, torch.Tensor)):
        raise ValueError("param='fft' works on a spectrum: use param='pixel' for image_ops or an init image.")


def _parameterisation(model, param: str, init, init_scale: float, shape, g, lrs) -> Pixels | Fourier:
    """The starting image as pixels (one parameter per image with per-image rates) or a spectrum."""
    batch, (h, w) = shape
    info = model_info(model)
    device, dtype = device_dtype(model)
    if param == "fft":
        return Fourier(
            (batch, 3, h, w), info.mean, info.std, g, like=torch.empty(0, device=device, dtype=dtype)
        )
    channels = init.shape[1] if isinstance(init, torch.Tensor) else 3
    x0 = initial_image(init, (batch, channels, h, w), info.mean, info.std, g, init_scale, model)
    return Pixels(x0.to(device=device, dtype=dtype), per_image=lrs is not None)


def _transform(image: torch.Tensor, transforms: Sequence[Callable], g: torch.Generator) -> torch.Tensor:
    """The random transforms (jitter, scale, rotate, …) in order: what the model sees this step."""
    for t in transforms:
        image = t(image, g)
    return image


def _read_back_due(step: int, steps: int, callback, every: int) -> bool:
    """Whether to read the record back from the device after ``step`` (each read waits for it).

    Every ``_CHECK_EVERY`` steps, at each callback and at the end.
    """
    done = step + 1
    return not done % _CHECK_EVERY or done == steps or (callback is not None and not done % every)


def _callback_stops(callback, every: int, step: int, steps: int, p, record: Record) -> bool:
    """Call ``callback`` every ``every`` steps and at the end; True when it asks to stop."""
    if callback is None or ((step + 1) % every and step + 1 != steps):
        return False
    state = SynthesisState(step + 1, steps, p().detach().clone(), record.history[-1], record.last_terms)
    return callback(state) is True
