"""Attribution figures (notebooks 03–04) and their one display rule.

The rule is Captum's ``visualize_image_attr(outlier_perc=...)``: a gradient has
a few very large values, and scaling by the largest one turns every edge grey,
so the colour scale is clipped at a share of the largest attribution mass
(:func:`clip_threshold`). Every attribution figure here and the explorer of
:mod:`introspect_lab.widgets` use it. Each function returns its matplotlib
figure.
"""

from __future__ import annotations

import numpy as np
import torch

from ..images import to_display

__all__ = [
    "OUTLIER_PERC",
    "clip_threshold",
    "pixel_attribution_image",
    "overlay",
    "attribution_grid",
    "plot_sanity_check",
    "plot_deletion",
]

#: Percentage of the largest attribution mass left out of the colour scale
#: (Captum's ``visualize_image_attr(outlier_perc=...)``, whose default is 2): every attribution
#: figure and the explorer use this one display rule.
OUTLIER_PERC = 10.0


def clip_threshold(values, outlier_perc: float = OUTLIER_PERC) -> float:
    """The value above which the top ``outlier_perc`` % of the total |attribution| mass lies (Captum's rule).

    Sort ``|values|``; the threshold is the first value at which the
    cumulative sum reaches ``(100 − outlier_perc)`` % of the total
    (``captum.attr._utils.visualization._cumulative_sum_threshold``). A few
    very large gradients then no longer squeeze everything else to grey.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc must be in [0, 100), got {outlier_perc}.")
    v = np.sort(np.abs(np.asarray(values, dtype=float)).ravel())
    if v.size == 0 or v[-1] == 0:
        return 1.0
    cum = np.cumsum(v)
    i = int(np.searchsorted(cum, cum[-1] * (100.0 - outlier_perc) / 100.0))
    return float(v[min(i, v.size - 1)]) or float(v[-1])


def _heat(m, outlier_perc: float = OUTLIER_PERC):
    """A map as a numpy array in [0, 1]: shifted to start at its minimum, clipped at the display threshold.

    ``(m − min) / t`` clipped to [0, 1], with ``t`` the :func:`clip_threshold`
    of ``m − min``; ``outlier_perc=0`` gives plain min–max scaling.
    """

    if isinstance(m, torch.Tensor):
        m = m.detach().float().cpu().numpy()
    m = np.asarray(m, dtype=float)
    m = m - float(m.min())
    if float(m.max()) <= 0:
        return np.zeros_like(m)
    return np.clip(m / clip_threshold(m, outlier_perc), 0.0, 1.0)


def pixel_attribution_image(attr, outlier_perc: float = OUTLIER_PERC):
    """A pixel-space attribution ``[3,H,W]`` as an RGB picture: ``0.5 + ½·clip(a / t, −1, 1)`` (grey = 0).

    How guided backprop and deconvnet pictures are usually shown
    (Springenberg et al. 2015): positive evidence bright, negative dark.
    ``t`` is :func:`clip_threshold` (Captum's ``outlier_perc`` rule), so the
    few largest gradients saturate instead of turning every edge grey.
    """

    a = attr.detach().float().cpu()
    if a.dim() == 4:
        a = a[0]
    a = a.permute(1, 2, 0).numpy()
    return np.clip(0.5 + 0.5 * a / clip_threshold(a, outlier_perc), 0, 1)


def overlay(
    image, heat, *, ax=None, model=None, alpha: float = 0.5, cmap: str = "jet", title: str | None = None
):
    """A heatmap ``[H,W]`` over a photo (a normalised ``[3,H,W]``/``[1,3,H,W]`` tensor or an array).

    The map is scaled by :func:`_heat` (the display rule: clipped at
    :data:`OUTLIER_PERC`); ``alpha`` is its opacity. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(3, 3))
    else:
        fig = ax.figure
    if isinstance(image, torch.Tensor):
        image = to_display(image[0] if image.dim() == 4 else image, model)
    if isinstance(heat, torch.Tensor) and heat.dim() == 3:
        heat = heat[0]
    ax.imshow(image)
    ax.imshow(_heat(heat), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def attribution_grid(
    x,
    maps: dict,
    *,
    model=None,
    row_titles=None,
    overlay_maps: bool = True,
    size: float = 2.2,
    cmap: str = "jet",
):
    """Images in rows, one column per method: ``maps`` is ``{name: [B,H,W] or [B,3,H,W]}``.

    Maps ``[B,H,W]`` are drawn as heatmaps (over the photo with
    ``overlay_maps``); pixel-space attributions ``[B,3,H,W]`` as pictures
    (:func:`pixel_attribution_image`). Returns the figure.
    """
    import matplotlib.pyplot as plt

    n, k = x.shape[0], len(maps)
    fig, axes = plt.subplots(n, k + 1, figsize=(size * (k + 1), size * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(to_display(x[i], model))
        axes[i, 0].axis("off")
        if row_titles is not None:
            axes[i, 0].set_title(row_titles[i], fontsize=9)
        elif i == 0:
            axes[i, 0].set_title("input", fontsize=9)
        for j, (name, m) in enumerate(maps.items(), start=1):
            ax = axes[i, j]
            if m.dim() == 4:
                ax.imshow(pixel_attribution_image(m[i]))
                ax.axis("off")
            elif overlay_maps:
                overlay(x[i], m[i], ax=ax, model=model, cmap=cmap)
            else:
                ax.imshow(_heat(m[i]), cmap="gray")
                ax.axis("off")
            if i == 0:
                ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def plot_sanity_check(result, *, image: int = 0, show_steps: int = 6, size: float = 2.0):
    """Adebayo et al. (2018): rank correlation vs cascading randomisation, and the maps themselves.

    Top: Spearman ρ (mean over images) against the number of randomised layers,
    one line per method. Below: for image ``image``, each method's map at
    ``show_steps`` evenly spaced steps of the cascade. Returns the figure.
    """
    import matplotlib.pyplot as plt

    methods = list(result.correlation)
    steps = result.steps
    picks = np.unique(np.linspace(0, len(steps) - 1, show_steps).round().astype(int))
    fig = plt.figure(figsize=(max(8, size * len(picks)), 3.2 + size * len(methods)))
    grid = fig.add_gridspec(1 + len(methods), len(picks), height_ratios=[1.6] + [1] * len(methods))
    ax = fig.add_subplot(grid[0, :])
    for name in methods:
        ax.plot(range(len(steps)), result.correlation[name].mean(1), marker="o", ms=3, label=name)
    ax.set_xticks(range(len(steps)), steps, rotation=60, fontsize=7, ha="right")
    ax.set_ylabel("Spearman ρ vs trained")
    ax.set_xlabel("randomised from the top down to …")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=8)
    for r, name in enumerate(methods, start=1):
        for c, s in enumerate(picks):
            a = fig.add_subplot(grid[r, c])
            a.imshow(_heat(result.maps[name][s, image]), cmap="gray")
            a.set_xticks([])
            a.set_yticks([])
            if c == 0:
                a.set_ylabel(name, fontsize=8)
            if r == 1:
                a.set_title(steps[s], fontsize=8)
    fig.tight_layout()
    return fig


def plot_deletion(results: dict, *, image: int | None = None, ax=None):
    """Deletion or insertion curves (Petsiuk et al. 2018): class score vs fraction of pixels, one line per
    method.

    ``results`` is ``{name: DeletionResult}``; the legend gives each area under
    the curve (deletion: lower is better; insertion: higher is better). ``image=None``
    averages over the batch. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for name, res in results.items():
        y = res.scores.mean(0) if image is None else res.scores[image]
        auc = float(y.mean())
        ax.plot(res.fractions, y, marker=".", label=f"{name} (AUC {auc:.3f})")
    mode = getattr(next(iter(results.values())), "mode", "deletion") if results else "deletion"
    ax.set_xlabel(
        f"fraction of pixels {'deleted' if mode == 'deletion' else 'inserted'} (most salient first)"
    )
    ax.set_ylabel("class probability")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
