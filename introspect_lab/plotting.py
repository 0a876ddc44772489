"""Figures for the notebooks: filter and activation grids, thumbnail scatters, heatmap overlays.

Every function returns its matplotlib figure so a notebook line can end
with ``;`` and tests can inspect it. Sections are grouped by lecture.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# General (notebook 00 and everywhere)
# ---------------------------------------------------------------------------


def plot_predictions(images, predictions, titles=None, *, model=None, size: float = 2.6):
    """Each image above a horizontal bar chart of its top-k classes.

    ``predictions`` is what :func:`introspect_lab.models.predict` returns:
    one list of ``Prediction(index, name, prob)`` per image.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from .images import to_display

    if isinstance(images, torch.Tensor) and images.dim() == 4:
        images = list(images.unbind(0))
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(size * n, size * 1.9), squeeze=False,
                             gridspec_kw={"height_ratios": [1.1, 0.8]})  # fmt: skip
    for i, (img, preds) in enumerate(zip(images, predictions)):
        ax = axes[0, i]
        arr = to_display(img, model) if isinstance(img, torch.Tensor) else np.asarray(img)
        ax.imshow(arr)
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        bars = axes[1, i]
        names = [p.name for p in preds][::-1]
        probs = [p.prob for p in preds][::-1]
        bars.barh(range(len(preds)), probs, color=["#bbbbbb"] * (len(preds) - 1) + ["#3b75af"])
        bars.set_yticks(range(len(preds)), [n[:18] for n in names], fontsize=8)
        bars.set_xlim(0, 1)
        bars.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Filters, activations and feature space (notebooks 01–02)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Attribution maps (notebooks 03–04)
# ---------------------------------------------------------------------------
