"""Figures of notebook 09: seed 001's fooling panels and accuracy/confidence against ε."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..images import to_display


def plot_fooling(x, x_adv, *, model=None, magnify: float = 10.0, titles=None, size: float = 2.6):
    """Seed 001's four panels per image: original, fooled, difference, difference × ``magnify``.

    The difference is shown around mid-grey (0.5 + δ), so zero change is grey.
    Returns the figure.
    """
    a, b = to_display(x, model), to_display(x_adv, model)
    if a.ndim == 3:
        a, b = a[None], b[None]
    n = a.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(4 * size, n * size), squeeze=False)
    for i in range(n):
        d = b[i] - a[i]
        panels = [a[i], b[i], (0.5 + d).clip(0, 1), (0.5 + magnify * d).clip(0, 1)]
        names = (titles[i] if titles is not None else ("original", "fooled")) + (
            "difference",
            f"{magnify:g}× difference",
        )
        for ax, img, name in zip(axes[i], panels, names):
            ax.imshow(img)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_eps_sweeps(sweeps: dict, *, ax=None, eight_bit: bool = False, xscale: str = "symlog"):
    """Accuracy (solid) and mean probability of the true class (dashed) against ε in grey levels.

    ``sweeps`` maps a label to an :class:`~introspect_lab.adversarial.EpsSweep`.
    With ``eight_bit``, the accuracy of the attacked images rounded to 8 bits
    is drawn too (dotted, crosses). The x axis is symmetric-log (``xscale="symlog"``)
    so ε = 0 and sub-grey-level budgets show, or ``"linear"`` for budgets of many
    grey levels; either way it spans the data. Returns the figure.
    """
    if xscale not in ("symlog", "linear"):
        raise ValueError(f"xscale must be 'symlog' or 'linear', got {xscale!r}.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    else:
        fig = ax.figure
    for k, (name, s) in enumerate(sweeps.items()):
        levels = [e * 255 for e in s.eps]
        color = f"C{k}"
        ax.plot(levels, s.accuracy, "o-", color=color, label=f"{name}: accuracy")
        if eight_bit and s.accuracy_8bit:
            ax.plot(
                levels, s.accuracy_8bit, "x:", color=color, ms=9, label=f"{name}: accuracy, rounded to 8 bits"
            )
        ax.plot(levels, s.confidence, "s--", color=color, alpha=0.7, label=f"{name}: p(true class)")
    if xscale == "symlog":
        ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("ε (grey levels out of 255)")
    ax.set_ylim(-0.03, 1.03)
    ax.axvline(1, color="grey", lw=0.6, ls=":")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_gradients(images, maps: dict, *, size: float = 1.2):
    """Images in the first row, then one row of signed maps (e.g. input gradients) per entry of ``maps``.

    ``images`` ``[B, H, W]`` or ``[B, 3, H, W]`` in [0, 1]; each map ``[B, H, W]``,
    shown red (+) / blue (−) around white, each scaled to its own largest
    magnitude. Returns the figure.
    """
    imgs = images.detach().cpu()
    imgs = imgs.permute(0, 2, 3, 1) if imgs.dim() == 4 else imgs
    n = imgs.shape[0]
    fig, axes = plt.subplots(
        1 + len(maps), n, figsize=(n * size, (1 + len(maps)) * size * 1.1), squeeze=False
    )
    rows = [("image", None)] + list(maps.items())
    for r, (name, m) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            if m is None:
                ax.imshow(imgs[i].clip(0, 1), cmap="gray")
            else:
                v = float(m[i].abs().max()) or 1.0
                ax.imshow(m[i].detach().cpu(), cmap="coolwarm", vmin=-v, vmax=v)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig
