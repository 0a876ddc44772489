"""Non-parametric texture synthesis by neighbourhood matching (Efros & Leung 1999).

Seed 004, "Texture Synthesis: Nearest Neighbor": *generate pixels one at a
time in scanline order; form the neighbourhood of already generated pixels
and copy the nearest neighbour from the input.* Scanline order is Wei &
Levoy's (2000); Efros & Leung grow the texture outward from a 3×3 seed
taken from the exemplar, filling first the pixels with the most known
neighbours ("onion-peel" order). Both are here (``order=``).

For each output pixel ``p``, let ``N(p)`` be the
``w × w`` window around it, of which only the already generated pixels are
known (mask ``m``). Every position ``q`` of the exemplar whose window fits in
the exemplar is a candidate, scored by the Gaussian-weighted sum of squared
differences over the known pixels::

    d(p, q) = Σ_k g_k m_k ‖N(p)_k − E(q)_k‖² / Σ_k g_k m_k,   g = Gaussian(σ = w / 6.4)

and the pixel is copied from a candidate drawn uniformly among those with
``d ≤ (1 + ε) · d_min`` (Efros & Leung's ε = 0.1). No network is involved:
the method copies pixels, so it can only make what the exemplar contains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from tqdm.auto import tqdm

from ..config import show_progress
from ..lazy import lazy_import

ndimage = lazy_import("scipy.ndimage")

__all__ = ["NonParametricResult", "efros_leung", "verbatim_fraction"]


@dataclass
class NonParametricResult:
    """What :func:`efros_leung` made.

    ``image`` is ``[H, W, 3]`` in [0, 1]; ``source[i, j]`` is the exemplar
    position ``(row, col)`` that output pixel ``(i, j)`` was copied from, so
    ``image[i, j] == exemplar[source[i, j]]`` exactly; ``seconds`` is the
    wall time.
    """

    image: np.ndarray
    source: np.ndarray
    seconds: float


def _as_array(exemplar) -> np.ndarray:
    """An exemplar as a float32 ``[H, W, 3]`` array in [0, 1]."""
    if isinstance(exemplar, Image.Image):
        arr = np.asarray(exemplar.convert("RGB"), dtype=np.float32) / 255.0
    elif isinstance(exemplar, torch.Tensor):
        t = exemplar.detach().cpu().float()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(
                f"exemplar: expected a [3,H,W] tensor in [0,1], got shape {tuple(exemplar.shape)}."
            )
        arr = t.permute(1, 2, 0).numpy()
    else:
        arr = np.asarray(exemplar, dtype=np.float32)
        if arr.dtype.kind in "ui" or arr.max(initial=0) > 1.0:
            arr = arr / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(f"exemplar: expected an [H,W] or [H,W,3] image, got shape {arr.shape}.")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if not np.isfinite(arr).all():
        raise ValueError("exemplar contains NaN or inf values; pass a finite image in [0, 1].")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _gaussian(window: int) -> np.ndarray:
    sigma = window / 6.4
    r = np.arange(window) - window // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _onion_order(out_h: int, out_w: int, window: int, seed_at: tuple[int, int]):
    """Yield output pixels outward from a filled 3×3 seed, most known neighbours first, layer by layer."""
    known = np.zeros((out_h, out_w), bool)
    r, c = seed_at
    known[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    while not known.all():
        ring = ndimage.binary_dilation(known) & ~known
        count = ndimage.uniform_filter(known.astype(np.float32), size=window, mode="constant")
        ys, xs = np.nonzero(ring)
        for k in np.argsort(-count[ys, xs], kind="stable"):
            yield int(ys[k]), int(xs[k])
        known |= ring


def verbatim_fraction(source: np.ndarray) -> float:
    """Share of horizontally adjacent output pixels copied from adjacent exemplar pixels (copied verbatim)."""
    step = source[:, 1:] - source[:, :-1]
    return float(((step[..., 0] == 0) & (step[..., 1] == 1)).mean())


def efros_leung(
    exemplar,
    size: int | tuple[int, int],
    *,
    window: int = 11,
    tolerance: float = 0.1,
    order: str = "scanline",
    seed: int | None = None,
    progress: bool | None = None,
) -> NonParametricResult:
    """Grow a texture pixel by pixel by copying exemplar pixels (Efros & Leung 1999).

    Parameters
    ----------
    exemplar:
        The sample texture: a PIL image, an ``[H, W(, 3)]`` array (uint8 or
        float in [0, 1]) or a ``[3, H, W]`` tensor in [0, 1]. Keep it small
        (e.g. 64 px): each output pixel is compared with every exemplar window.
    size:
        Output size, ``n`` or ``(height, width)``.
    window:
        Odd neighbourhood width ``w``; it should cover the texture's largest
        regular element (seed 004; Efros & Leung, "the only free parameter").
    tolerance:
        ``ε``: candidates within ``(1 + ε) · d_min`` are drawn uniformly.
    order:
        ``"scanline"`` (row by row from one random exemplar pixel; Wei & Levoy
        2000, as seed 004 describes it) or ``"onion"`` (outward from a 3×3
        exemplar seed at the centre, as Efros & Leung).
    seed:
        Random seed (``None``: a fresh random texture each call).

    Returns
    -------
    NonParametricResult
        The image, the exemplar position each pixel was copied from, the time.
    """
    ex = _as_array(exemplar)
    out_h, out_w = _check_efros_leung(ex, size, window, tolerance, order)
    half = window // 2
    ex_h, ex_w, _ = ex.shape
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    cand, centres = _candidates(ex, window)
    cand_sq = cand**2
    # In scanline order, away from the borders, the known pixels of a window are its first `prefix`
    # values (the rows above and the pixels to the left): their candidate columns, kept contiguous.
    prefix = (half * window + half) * 3
    both = np.ascontiguousarray(np.concatenate([cand_sq[:, :prefix], cand[:, :prefix]], 1))
    gauss = np.repeat(_gaussian(window).reshape(-1), 3)

    canvas = np.zeros((out_h + 2 * half, out_w + 2 * half, 3), np.float32)
    known = np.zeros((out_h + 2 * half, out_w + 2 * half), bool)
    source = np.zeros((out_h, out_w, 2), np.int64)
    first = centres[rng.integers(len(centres))]

    def put(i: int, j: int, pick) -> None:
        canvas[i + half, j + half] = ex[pick[0], pick[1]]
        known[i + half, j + half] = True
        source[i, j] = pick

    def match(i: int, j: int):
        w = gauss * np.repeat(known[i : i + window, j : j + window].reshape(-1), 3)
        # Only the window up to its last known pixel matters: read that many candidate columns.
        n = int(np.flatnonzero(w)[-1]) + 1
        w, nb = w[:n], canvas[i : i + window, j : j + window].reshape(-1)[:n]
        # Σ w (c − n)² = Σ w c² − 2 Σ w c n + Σ w n², for all candidates at once.
        if n == prefix:
            d = both @ np.concatenate([w, -2.0 * w * nb])
        else:
            d = cand_sq[:, :n] @ w - 2.0 * (cand[:, :n] @ (w * nb))
        d = (d + float((w * nb * nb).sum())) / w.sum()
        # A small absolute slack absorbs rounding when the best match is exact (d = 0).
        ok = np.flatnonzero(d <= d.min() * (1.0 + tolerance) + 1e-6)
        return centres[ok[rng.integers(len(ok))]]

    if order == "scanline":
        put(0, 0, first)
        todo = ((i, j) for i in range(out_h) for j in range(out_w) if i or j)
    else:  # a 3×3 seed from the exemplar at the centre, then outward
        ci, cj = out_h // 2, out_w // 2
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if 0 <= ci + di < out_h and 0 <= cj + dj < out_w:
                    p = (min(max(first[0] + di, 0), ex_h - 1), min(max(first[1] + dj, 0), ex_w - 1))
                    put(ci + di, cj + dj, p)
        todo = _onion_order(out_h, out_w, window, (ci, cj))
    n_todo = out_h * out_w - int(known.sum())
    for i, j in tqdm(
        todo,
        total=n_todo,
        desc="Efros–Leung",
        disable=not (show_progress() if progress is None else progress),
    ):
        put(i, j, match(i, j))
    image = canvas[half : half + out_h, half : half + out_w].copy()
    return NonParametricResult(image=image, source=source, seconds=time.perf_counter() - start)


def _check_efros_leung(ex: np.ndarray, size, window, tolerance, order) -> tuple[int, int]:
    """The output size ``(height, width)``, after checking every parameter against the exemplar."""
    if not (isinstance(window, int) and window >= 3 and window % 2 == 1):
        raise ValueError(f"window must be an odd int >= 3, got {window!r}.")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
    if order not in ("scanline", "onion"):
        raise ValueError(f"order must be 'scanline' or 'onion', got {order!r}.")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size!r}.")
    ex_h, ex_w, _ = ex.shape
    if ex_h < window + 1 or ex_w < window + 1:
        raise ValueError(
            f"The exemplar ({ex_h}×{ex_w}) must be larger than the window ({window}); "
            "use a smaller window or a larger exemplar."
        )
    return out_h, out_w


def _candidates(ex: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every exemplar window flattened, ``[n, w·w·3]``, and the exemplar position of its centre ``[n, 2]``."""
    windows = sliding_window_view(ex, (window, window), axis=(0, 1))  # [H-w+1, W-w+1, 3, w, w]
    cand_h, cand_w = windows.shape[:2]
    cand = windows.transpose(0, 1, 3, 4, 2).reshape(cand_h * cand_w, -1)
    centres = np.stack(np.meshgrid(np.arange(cand_h), np.arange(cand_w), indexing="ij"), -1).reshape(-1, 2)
    return cand, centres + window // 2
