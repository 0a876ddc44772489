"""Is a map right? The sanity check of Adebayo et al. (2018) and the deletion metric of Petsiuk et al. (2018).

:func:`sanity_check` randomises a copy of the model layer by layer and
compares maps with :func:`spearman`; :func:`deletion_curve` deletes the
most salient pixels first and records the class score.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import show_progress
from ..hooks import frozen
from ..images import check_batch, gaussian_blur
from ..lazy import lazy_import
from ..models import get_layer
from .base import Target, forward_eval, logits_of, resolve_targets, to_map
from .cam import cam_layer, grad_cam
from .compiled import fast_inference
from .gradients import guided_backprop, saliency

stats = lazy_import("scipy.stats")

__all__ = [
    "spearman",
    "cascade_layers",
    "randomize_layers",
    "sanity_check",
    "SanityResult",
    "deletion_curve",
    "DeletionResult",
]


def spearman(a, b) -> float:
    """Spearman rank correlation ``ρ`` of two maps (flattened), ties given average ranks.

    ``ρ = Pearson(rank(a), rank(b))`` (``scipy.stats.spearmanr``); Adebayo et
    al. (2018) compare saliency maps with it. A constant map has no ranking:
    ``ρ`` is 0 then (scipy would give NaN).
    """
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Maps must have the same size, got {a.size} and {b.size}.")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a, b).statistic)


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
    layer = cam_layer(model, size=x.shape[-1])
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
    gradient, guided backprop, Grad-CAM at :func:`~.cam.cam_layer`);
    ``layers`` defaults to :func:`cascade_layers`. The target classes are
    fixed from the trained model (``None`` → its top-1). The model passed in
    is not changed.
    """

    x = check_batch(x, "x", model)
    with torch.no_grad():
        logits = forward_eval(model, x)
    targets = resolve_targets(model, target, logits).tolist()
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


@dataclass
class DeletionResult:
    """Outcome of :func:`deletion_curve`: ``scores[B, n_steps+1]`` at ``fractions`` and ``auc[B]``.

    ``mode`` is ``"deletion"`` (lower AUC is better) or ``"insertion"`` (higher is better).
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    mode: str = "deletion"


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    maps: torch.Tensor,
    *,
    n_steps: int = 20,
    baseline: float | str | torch.Tensor = 0.0,
    mode: str = "deletion",
    blur_sigma: float = 5.0,
    score: str = "prob",
    batch_size: int = 4,
) -> DeletionResult:
    """Deletion and insertion metrics (Petsiuk et al. 2018, "RISE"): the most salient pixels first.

    Pixels are ranked by ``maps`` ``[B,H,W]`` (or ``[B,3,H,W]``, reduced by
    :func:`to_map`). ``mode="deletion"``: at fraction ``k/n_steps`` the top
    pixels are replaced by ``baseline``; a map that finds the evidence makes
    the score fall fast, so a *lower* area under the curve (mean over the
    ``n_steps + 1`` points) is better. ``mode="insertion"``: start from the
    baseline and put the top pixels back; a *higher* area is better.
    ``baseline``: a value (0 = the mean colour), an image batch, or
    ``"blur"`` (the photo Gaussian-blurred with ``blur_sigma`` px, RISE's
    canvas). Filling with a constant makes images no photo looks like, and
    the score can fall for that reason alone; blurred replacement keeps
    them closer to photos. The class score is the softmax probability
    (``score="prob"``) or the raw logit (``"logit"``). Compare with a
    random map as the floor. The copies are scored ``batch_size`` at a time
    through a frozen inference copy of the model
    (:func:`~.compiled.fast_inference`: the same scores up to float rounding).
    """
    x = check_batch(x, "x", model)
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}.")
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, an image batch or 'blur', got {baseline!r}.")
        baseline = gaussian_blur(x, float(blur_sigma))
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
    nets: dict[int, nn.Module] = {}  # one frozen inference copy per chunk size (at most two)
    with frozen(model), torch.inference_mode():
        idx = resolve_targets(model, target, logits_of(model(x)))
        for b in range(B):
            order = m[b].flatten().argsort(descending=True)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(HW, device=x.device)
            rank = rank.view(1, 1, *x.shape[-2:])
            ks = torch.as_tensor(np.round(fractions * HW), device=x.device).view(-1, 1, 1, 1)
            for s in range(0, n_steps + 1, batch_size):
                k = ks[s : s + batch_size]
                top = rank < k  # [n,1,H,W]: the k most salient pixels
                if mode == "deletion":
                    imgs = torch.where(top, base[b : b + 1], x[b : b + 1])
                else:
                    imgs = torch.where(top, x[b : b + 1], base[b : b + 1])
                imgs = imgs.contiguous(memory_format=torch.channels_last)
                if len(k) not in nets:
                    nets[len(k)] = fast_inference(model, imgs)
                logits = logits_of(nets[len(k)](imgs))
                vals = logits.softmax(1)[:, idx[b]] if score == "prob" else logits[:, idx[b]]
                out[b, s : s + len(k)] = vals.cpu().numpy()
    return DeletionResult(fractions=fractions, scores=out, auc=out.mean(1), mode=mode)
