"""Perturbation: change part of the image and watch the class score (occlusion).

Zeiler & Fergus (2014); lecture 004, "Saliency via Occlusion". Returns a
map over pixels ``[B,H,W]`` (see the output-shape rule in
:mod:`introspect_lab.attribution`).
"""

from __future__ import annotations

import copy
import gc
import math
import warnings

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse as fx_fuse
from tqdm.auto import tqdm

from ..config import show_progress
from ..devices import returns_to_input_device
from ..hooks import frozen
from ..images import check_batch
from .base import Target, logits_of, resolve_targets
from .compiled import NOT_TRACEABLE, agrees_with, fast_inference
from .incremental import IncrementalForward

__all__ = ["occlusion"]


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    n = math.ceil((size - window) / stride) + 1
    return [i * stride for i in range(n)]


def _inference_copy(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A faster, numerically equivalent inference copy of ``model`` for ``example``-shaped batches.

    First choice: TorchScript trace → freeze → ``optimize_for_inference``
    (BatchNorm folded into convolutions, oneDNN kernels), built once per model, weights and
    shape (:func:`~.compiled.frozen_for_inference`); second: ``torch.fx``
    BatchNorm folding with channels-last memory; last: ``model`` itself. A
    candidate is used only if it reproduces the model's output on ``example``.
    """
    net = fast_inference(model, example)
    if net is not model:
        return net
    agrees = agrees_with(model, example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = fx_fuse(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
            if agrees(net):
                return net
        except NOT_TRACEABLE:  # nor can torch.fx: the model runs as it is (same answers, slower)
            pass
    return model


def _engine(
    model: nn.Module, method: str | IncrementalForward, fuse: bool, tau: float | None
) -> IncrementalForward | None:
    """The incremental engine for ``method`` ("auto" falls back to None when the model does not trace)."""
    if isinstance(method, IncrementalForward) or method == "plain":
        return method if isinstance(method, IncrementalForward) else None
    try:
        return IncrementalForward(model, fold=fuse, cap=tau)
    except TypeError:
        if method == "incremental":
            raise
        return None


def _incremental_scores(
    engine: IncrementalForward,
    image: torch.Tensor,
    base: torch.Tensor,
    positions: list[tuple[int, int]],
    window: tuple[int, int],
    copies: int,
    new_image: bool,
) -> torch.Tensor:
    """Logits of the occluded copies: one same-size box per window (shifted inside the image at the
    border).
    """
    kh, kw = window
    H, W = image.shape[-2:]
    if new_image:
        engine.cache(image[None])
        engine.compile_tail(window, copies)
    tops = [min(r, H - kh) for r, _ in positions]
    lefts = [min(c, W - kw) for _, c in positions]
    boxes = torch.stack([image[:, t : t + kh, c : c + kw] for t, c in zip(tops, lefts)]).clone()
    for k, ((r, c), t, lc) in enumerate(zip(positions, tops, lefts)):
        boxes[k, :, r - t :, c - lc :] = base[:, r : r + kh, c : c + kw]
    return logits_of(engine(boxes, tops, lefts))


@returns_to_input_device("x")
def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    window: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    baseline: float | torch.Tensor = 0.0,
    batch_size: int | None = None,
    raw: bool = False,
    fuse: bool = True,
    method: str | IncrementalForward = "auto",
    tau: float | None = None,
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

    ``method="incremental"`` scores the copies by incremental inference
    (Nakandala et al., SIGMOD 2019; :class:`~.incremental.IncrementalForward`):
    the unoccluded activations are cached and each layer recomputes only the
    cone of units whose receptive field meets the window, ``batch_size``
    copies at a time (default 16). Same map up to float rounding. ``"plain"``
    runs every copy through the whole model (default batch 4); ``"auto"``
    (default) is incremental when there are at least 64 windows per image
    and the model traces with ``torch.fx``. ``tau`` (incremental only) turns on
    Krypton's approximate projective-field threshold: each layer recomputes at
    most a fraction ``tau`` of its map per axis, so the map is no longer exact.
    An :class:`~.incremental.IncrementalForward` built on ``model`` may be passed
    as ``method`` to read its per-layer multiply-add counters afterwards.
    """
    x = check_batch(x, "x", model)
    (kh, kw), (sh, sw) = _check_occlusion(x, window, stride, method, tau)
    H, W = x.shape[-2:]
    rows, cols = _window_starts(H, kh, sh), _window_starts(W, kw, sw)
    if method == "auto" and len(rows) * len(cols) < 64:
        method = "plain"  # too few copies to repay tracing the model
    engine = _engine(model, method, fuse, tau)
    batch_size = batch_size or (16 if engine is not None else 4)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    positions = [(r, c) for r in rows for c in cols]
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    bases = base if base.dim() == 4 and base.shape[0] == x.shape[0] else base.expand_as(x)
    B = x.shape[0]
    drops = torch.zeros(B, len(positions), dtype=x.dtype, device=x.device)
    show = show_progress() if progress is None else progress
    chunks = [(b, s) for b in range(B) for s in range(0, len(positions), batch_size)]
    n_batch = min(batch_size, len(positions))
    net = None
    with frozen(model):
        if engine is None:
            net = _inference_copy(model, x[:1].expand(n_batch, -1, -1, -1).contiguous()) if fuse else model
        with torch.inference_mode():
            logits = logits_of(model(x))
            idx = resolve_targets(model, target, logits)
            ref = logits.gather(1, idx[:, None]).squeeze(1)
            fmt = torch.channels_last if fuse else torch.contiguous_format
            for b, s in tqdm(chunks, desc="occlusion", disable=not show, leave=False):
                pos = positions[s : s + n_batch]
                if engine is not None:
                    scores = _incremental_scores(engine, x[b], bases[b], pos, (kh, kw), n_batch, s == 0)
                else:
                    scores = _plain_scores(net, x[b], bases[b], pos, (kh, kw), n_batch, fmt)
                drops[b, s : s + len(pos)] = ref[b] - scores[: len(pos), idx[b]]
    if engine is not None:
        engine.release()  # its cached activations of the last image
    if engine is not method and (engine is not None or isinstance(net, fx.GraphModule)):
        del engine, net  # a torch.fx copy of the model is a reference cycle (Graph <-> GraphModule):
        gc.collect()  # free it now, not at some later full collection (a model's worth of memory)
    grid = drops.view(B, len(rows), len(cols))
    return grid.clone() if raw else _spread(grid, rows, cols, (kh, kw), (H, W))


def _check_occlusion(x, window, stride, method, tau) -> tuple[tuple[int, int], tuple[int, int]]:
    """Window and stride as pairs, after checking them, ``method`` and ``tau``."""
    H, W = x.shape[-2:]
    kh, kw = (window, window) if isinstance(window, int) else tuple(window)
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    if not (0 < kh <= H and 0 < kw <= W):
        raise ValueError(f"window {(kh, kw)} must be positive and fit in the image {(H, W)}.")
    if not (0 < sh <= kh and 0 < sw <= kw):
        raise ValueError(
            f"stride {(sh, sw)} must be positive and at most the window {(kh, kw)} (else pixels are skipped)."
        )
    if not isinstance(method, IncrementalForward) and method not in ("auto", "plain", "incremental"):
        raise ValueError(
            f"method must be 'auto', 'plain', 'incremental' or an IncrementalForward, got {method!r}."
        )
    if tau is not None and not (0 < tau <= 1 and isinstance(method, str) and method == "incremental"):
        raise ValueError(f"tau={tau} needs method='incremental' and 0 < tau <= 1.")
    return (kh, kw), (sh, sw)


def _plain_scores(net, x, base, positions, window, n_batch: int, fmt) -> torch.Tensor:
    """Scores of copies of ``x`` [3,H,W] with each window of ``positions`` set to ``base``, in full passes."""
    kh, kw = window
    batch = x.expand(n_batch, -1, -1, -1).clone()  # fixed batch shape (the last one padded)
    for k, (r, c) in enumerate(positions):
        batch[k, :, r : r + kh, c : c + kw] = base[:, r : r + kh, c : c + kw]
    return logits_of(net(batch.contiguous(memory_format=fmt)))


def _spread(grid: torch.Tensor, rows, cols, window, size) -> torch.Tensor:
    """Each pixel's mean drop over the windows that cover it (Captum's convention): ``[B, H, W]``."""
    (kh, kw), (H, W) = window, size
    total = torch.zeros(grid.shape[0], H, W, dtype=grid.dtype, device=grid.device)
    count = torch.zeros(H, W, dtype=grid.dtype, device=grid.device)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            total[:, r : r + kh, c : c + kw] += grid[:, i, j, None, None]
            count[r : r + kh, c : c + kw] += 1
    return total / count
