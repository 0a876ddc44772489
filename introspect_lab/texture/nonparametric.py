"""Non-parametric texture synthesis by neighbourhood matching (Efros & Leung 1999), in scanline order.

Seed 004, "Texture Synthesis: Nearest Neighbor": *generate pixels one at a
time in scanline order; form the neighbourhood of already generated pixels
and copy the nearest neighbour from the input.*

For each output pixel ``p`` (row by row, left to right), let ``N(p)`` be the
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

__all__ = ["NonParametricResult", "efros_leung"]


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


def efros_leung(
    exemplar,
    size: int | tuple[int, int],
    *,
    window: int = 11,
    tolerance: float = 0.1,
    seed: int | None = None,
    progress: bool | None = None,
) -> NonParametricResult:
    """Grow a texture pixel by pixel in scanline order by copying exemplar pixels (Efros & Leung 1999).

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
    seed:
        Random seed (``None``: a fresh random texture each call).

    Returns
    -------
    NonParametricResult
        The image, the exemplar position each pixel was copied from, the time.
    """
    ex = _as_array(exemplar)
    if not (isinstance(window, int) and window >= 3 and window % 2 == 1):
        raise ValueError(f"window must be an odd int >= 3, got {window!r}.")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size!r}.")
    half = window // 2
    ex_h, ex_w, _ = ex.shape
    if ex_h < window + 1 or ex_w < window + 1:
        raise ValueError(
            f"The exemplar ({ex_h}×{ex_w}) must be larger than the window ({window}); "
            "use a smaller window or a larger exemplar."
        )
    rng = np.random.default_rng(seed)
    start = time.perf_counter()

    # Every exemplar window, flattened: [n_candidates, w*w*3], and its centre pixel.
    windows = sliding_window_view(ex, (window, window), axis=(0, 1))  # [H-w+1, W-w+1, 3, w, w]
    cand_h, cand_w = windows.shape[:2]
    cand = windows.transpose(0, 1, 3, 4, 2).reshape(cand_h * cand_w, -1)
    cand_sq = cand**2
    centres = np.stack(np.meshgrid(np.arange(cand_h), np.arange(cand_w), indexing="ij"), -1).reshape(-1, 2)
    centres = centres + half
    gauss = np.repeat(_gaussian(window).reshape(-1), 3)

    canvas = np.zeros((out_h + 2 * half, out_w + 2 * half, 3), np.float32)
    known = np.zeros((out_h + 2 * half, out_w + 2 * half), bool)
    source = np.zeros((out_h, out_w, 2), np.int64)
    first = centres[rng.integers(len(centres))]
    rows = tqdm(
        range(out_h), desc="Efros–Leung", disable=not (show_progress() if progress is None else progress)
    )
    for i in rows:
        for j in range(out_w):
            if i == 0 and j == 0:
                pick = first
            else:
                nb = canvas[i : i + window, j : j + window].reshape(-1)
                mask = np.repeat(known[i : i + window, j : j + window].reshape(-1), 3)
                w = gauss * mask
                # Σ w (c − n)² = Σ w c² − 2 Σ w c n + Σ w n², for all candidates at once.
                d = cand_sq @ w - 2.0 * (cand @ (w * nb)) + float((w * nb * nb).sum())
                d /= w.sum()
                best = d.min()
                # A small absolute slack absorbs rounding when the best match is exact (d = 0).
                ok = np.flatnonzero(d <= best * (1.0 + tolerance) + 1e-6)
                pick = centres[ok[rng.integers(len(ok))]]
            canvas[i + half, j + half] = ex[pick[0], pick[1]]
            known[i + half, j + half] = True
            source[i, j] = pick
    image = canvas[half : half + out_h, half : half + out_w].copy()
    return NonParametricResult(image=image, source=source, seconds=time.perf_counter() - start)
