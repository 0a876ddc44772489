"""How a synthesised picture *looks*: descriptors that no synthesis loss uses.

A falling Gram loss does not show that a texture looks like its exemplar:
on networks other than VGG the loss is easily satisfied by high-frequency
colour noise. These descriptors judge the picture itself, from pixels only:

* :func:`colourfulness`: Hasler & Süsstrunk (2003),
  ``C = √(σ_rg² + σ_yb²) + 0.3 √(μ_rg² + μ_yb²)`` with ``rg = R − G`` and
  ``yb = ½(R + G) − B`` on 0–255 values (0 for a grey picture; about 33
  "moderately", 59 "quite", 82+ "highly" colourful);
* :func:`radial_spectrum` / :func:`structure_scale`: the radially averaged
  power spectrum of the grey picture (van der Schaaf & van Hateren 1996)
  and its power-weighted mean period in pixels — the scale of structure
  (noise has a period of 2–3 px, bricks of several px);
* :func:`high_frequency_share`: the share of that power at periods under
  4 px (above 0.25 cycles/px), where pixel noise and jagged edges live;
* :func:`orientation_spectrum`: how the power divides over orientations
  (rows of bricks concentrate it; grass and gravel spread it evenly), the
  oriented-energy statistics of texture descriptors (Bergen & Adelson 1988);
* :func:`regularity`: the highest autocorrelation of the grey picture away
  from zero shift: near 1 for a periodic texture (rows of bricks), near 0
  for a stochastic one (gravel); the regular/stochastic axis of texture
  synthesis (Lin et al. 2006, "Quantitative evaluation of near regular
  texture synthesis algorithms");
* :func:`grey_histogram_distance`: the Wasserstein-1 distance between the
  grey-level distributions (mean absolute difference of their quantiles);
* :func:`look_distance` and :func:`lineup`: a combined distance, and the
  line-up test: set each result beside every exemplar and check that the
  nearest exemplar is its own.

All functions take ``H×W×3`` arrays in ``[0, 1]`` (e.g.
``result.to_display()`` or :func:`introspect_lab.images.to_display`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "colourfulness",
    "grey",
    "radial_spectrum",
    "structure_scale",
    "high_frequency_share",
    "grey_histogram_distance",
    "spectrum_distance",
    "orientation_spectrum",
    "regularity",
    "edge_correlation",
    "colour_share",
    "look_distance",
    "lineup",
]

_LUMA = np.array([0.299, 0.587, 0.114])


def _rgb(img) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"Expected an H×W×3 picture in [0, 1] (see to_display), got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError("The picture has non-finite values.")
    return a


def grey(img) -> np.ndarray:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601) of an H×W×3 picture."""
    return _rgb(img) @ _LUMA


def colourfulness(img) -> float:
    """Hasler & Süsstrunk's colourfulness ``√(σ_rg² + σ_yb²) + 0.3 √(μ_rg² + μ_yb²)`` on 0–255 values.

    Source: D. Hasler and S. Süsstrunk, "Measuring colourfulness in natural
    images", SPIE 5007 (2003). 0 for a grey picture.
    """
    a = _rgb(img) * 255.0
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _power(img) -> tuple[np.ndarray, np.ndarray]:
    g = grey(img)
    g = g - g.mean()
    h, w = g.shape
    p = np.abs(np.fft.fft2(g * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    r = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    return p, r


def radial_spectrum(img, bins: int = 16) -> np.ndarray:
    """Radially averaged power spectrum of the (Hann-windowed) grey picture, normalised to sum 1.

    ``bins`` rings between 0 and 0.5 cycles/px; the innermost ring (with the
    mean) is dropped, so ``bins − 1`` values are returned.
    """
    p, r = _power(img)
    edges = np.linspace(0.0, 0.5, bins + 1)
    prof = np.array([p[(r >= lo) & (r < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])])[1:]
    return prof / max(prof.sum(), 1e-20)


def structure_scale(img) -> float:
    """The scale of structure: ``1 / f̄`` px, with ``f̄`` the power-weighted mean spatial frequency.

    Pixel noise gives 2–3 px; larger structures (bricks, stones, swirls) give more.
    """
    p, r = _power(img)
    m = r > 0
    total = p[m].sum()
    if total <= 0:
        return float("inf")
    return float(1.0 / ((p[m] * r[m]).sum() / total))


def high_frequency_share(img, cutoff: float = 0.25) -> float:
    """The share of the (Hann-windowed, mean-free) grey picture's power above ``cutoff`` cycles/px.

    The default 0.25 cycles/px is a period of 4 px: a smooth photo keeps a few
    per cent there, pixel noise about three quarters (van der Schaaf & van
    Hateren 1996 for the spectra of natural images).
    """
    p, r = _power(img)
    total = p[r > 0].sum()
    return float(p[r > cutoff].sum() / total) if total > 0 else 0.0


def regularity(img, min_shift: int = 4) -> float:
    """The largest circular autocorrelation of the mean-free grey picture at shifts of ``min_shift``
    px or more.

    Normalised by the zero-shift value, so in [−1, 1]: a picture that
    repeats with some period gives nearly 1, noise nearly 0 (Wiener–Khinchin:
    the autocorrelation is the inverse FFT of the power spectrum).
    """
    g = grey(img)
    g = g - g.mean()
    ac = np.real(np.fft.ifft2(np.abs(np.fft.fft2(g)) ** 2))
    if ac[0, 0] <= 0:
        return 0.0
    h, w = g.shape
    dy = np.minimum(np.arange(h), h - np.arange(h))[:, None]
    dx = np.minimum(np.arange(w), w - np.arange(w))[None, :]
    far = np.sqrt(dy**2 + dx**2) >= min_shift
    return float(ac[far].max() / ac[0, 0])


def orientation_spectrum(img, bins: int = 8) -> np.ndarray:
    """The share of the grey picture's power in each of ``bins`` orientation sectors (0–180°), summing to 1.

    Frequencies between 0.02 and 0.5 cycles/px; a uniform result means no
    preferred orientation.
    """
    p, r = _power(img)
    h, w = p.shape
    # sectors centred on 0°, 180°/bins, …: horizontal frequencies (θ ≈ 0 and θ ≈ 180°) share sector 0
    theta = np.mod(
        np.arctan2(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]) + np.pi / (2 * bins), np.pi
    )
    band = (r > 0.02) & (r < 0.5)
    sector = np.minimum((theta / np.pi * bins).astype(int), bins - 1)
    e = np.array([p[band & (sector == k)].sum() for k in range(bins)])
    return e / max(e.sum(), 1e-20)


def grey_histogram_distance(a, b) -> float:
    """Wasserstein-1 distance between the grey-level distributions of two pictures (in [0, 1] units)."""
    q = np.linspace(0.0, 1.0, 101)
    return float(np.abs(np.quantile(grey(a), q) - np.quantile(grey(b), q)).mean())


def spectrum_distance(a, b) -> float:
    """Mean absolute difference of the log radial power spectra (0 = same distribution over scales)."""
    return float(np.abs(np.log(radial_spectrum(a) + 1e-20) - np.log(radial_spectrum(b) + 1e-20)).mean())


def edge_correlation(a, b) -> float:
    """Pearson correlation of the grey gradient magnitudes of two same-size pictures: do their edges coincide?

    1 for the same picture, about 0 when no edge of one is where an edge of the
    other is. For style transfer: how much of the content photo's layout a
    result keeps (a descriptor that neither the content nor the style loss uses).
    """
    ga, gb = grey(a), grey(b)
    if ga.shape != gb.shape:
        raise ValueError(f"Pictures of different sizes: {ga.shape} and {gb.shape}.")

    def magnitude(g: np.ndarray) -> np.ndarray:
        dx, dy = np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1]
        return np.hypot(dx, dy).ravel()

    return float(np.corrcoef(magnitude(ga), magnitude(gb))[0, 1])


def colour_share(result, content, style) -> float:
    """How far ``result``'s colourfulness went from ``content``'s to ``style``'s: ``(C_r − C_c)/(C_s − C_c)``.

    0 keeps the content photo's colourfulness, 1 reaches the style's (Hasler &
    Süsstrunk's ``C``, :func:`colourfulness`). For style transfer: how much of
    the style's colour a result took, a descriptor no loss uses.
    """
    c0, c1 = colourfulness(content), colourfulness(style)
    if abs(c1 - c0) < 1e-9:
        raise ValueError(f"content and style are equally colourful ({c0:.3g}): the share is undefined.")
    return float((colourfulness(result) - c0) / (c1 - c0))


def look_distance(a, b) -> float:
    """``4·W₁(grey levels) + spectrum_distance + 2·‖Δorientation‖₁ + |ΔC| / 50``: "looks alike" (0 = same)."""
    return (
        4.0 * grey_histogram_distance(a, b)
        + spectrum_distance(a, b)
        + 2.0 * float(np.abs(orientation_spectrum(a) - orientation_spectrum(b)).sum())
        + abs(colourfulness(a) - colourfulness(b)) / 50.0
    )


def lineup(results: Mapping[str, np.ndarray], exemplars: Mapping[str, np.ndarray]):
    """Line-up test: the :func:`look_distance` from every result to every exemplar.

    Returns ``(names, D, matched)``: ``D[i, j]`` is the distance from result
    ``names[i]`` to exemplar ``names[j]``; ``matched[name]`` is True when a
    result's nearest exemplar is its own.
    """
    names = list(exemplars)
    if set(results) != set(names):
        raise ValueError(f"results and exemplars need the same names, got {sorted(results)} and {names}.")
    d = np.array([[look_distance(results[r], exemplars[e]) for e in names] for r in names])
    return names, d, {n: names[int(np.argmin(d[i]))] == n for i, n in enumerate(names)}
