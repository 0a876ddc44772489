"""Perturbation: change part of the image and watch the class score (occlusion).

Zeiler & Fergus (2014); lecture 004, "Saliency via Occlusion". Returns a
map over pixels ``[B,H,W]`` (see the output-shape rule in
:mod:`introspect_lab.attribution`).
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fx_fuse
from tqdm.auto import tqdm

from ..config import show_progress
from ..hooks import frozen
from ..images import check_batch
from .base import Target, logits_of, resolve_targets

__all__ = ["occlusion"]

#: What TorchScript tracing and torch.fx raise on a model they cannot compile
#: (data-dependent control flow, non-tensor outputs, unsupported modules);
#: ``torch.fx.proxy.TraceError`` is a ``ValueError``.
_NOT_TRACEABLE = (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError)


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
        except _NOT_TRACEABLE:  # TorchScript cannot trace this model: try torch.fx next
            pass
        try:
            net = fx_fuse(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
            if agrees(net):
                return net
        except _NOT_TRACEABLE:  # nor can torch.fx: the model runs as it is (same answers, slower)
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
    x = check_batch(x, "x", model)
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
            logits = logits_of(model(x))
            idx = resolve_targets(model, target, logits)
            ref = logits.gather(1, idx[:, None]).squeeze(1)
            fmt = torch.channels_last if fuse else torch.contiguous_format
            for b, s in tqdm(chunks, desc="occlusion", disable=not show, leave=False):
                pos = positions[s : s + n_batch]
                batch = x[b].expand(n_batch, -1, -1, -1).clone()  # fixed batch shape (the last one padded)
                for k, (r, c) in enumerate(pos):
                    batch[k, :, r : r + kh, c : c + kw] = bases[b, :, r : r + kh, c : c + kw]
                scores = logits_of(net(batch.contiguous(memory_format=fmt)))[: len(pos), idx[b]]
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
