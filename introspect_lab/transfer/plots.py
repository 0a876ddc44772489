"""Figures of transfer learning: learning curves and linear probes per layer (notebook 10)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .finetune import Probes

__all__ = ["plot_learning_curves", "plot_layer_probes"]


def plot_learning_curves(
    histories, *, ax=None, title: str | None = None, ylabel: str = "validation accuracy"
):
    """Accuracy per epoch on the held-out data each :class:`~introspect_lab.transfer.History` was given.

    ``ylabel`` says which split that was (``History.val_acc`` holds whatever
    ``x_val`` was passed to :func:`train`). Returns the figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
    else:
        fig = ax.figure
    for h in histories:
        ax.plot(h.epoch, h.val_acc, "o-", ms=3, label=h.label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_layer_probes(probes: dict, *, ax=None, title: str | None = None):
    """Linear-probe test accuracy per layer, one line per (task, labelled examples) in ``probes``.

    ``probes`` maps a label to a :class:`Probes` (the layer chosen on the
    validation split is ringed) or to ``{layer: accuracy}`` (the maximum is
    ringed). Returns the figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.6))
    else:
        fig = ax.figure
    for k, (name, accs) in enumerate(probes.items()):
        chosen = accs.best if isinstance(accs, Probes) else max(accs, key=accs.get)
        accs = accs.test if isinstance(accs, Probes) else accs
        layers, vals = list(accs), list(accs.values())
        ax.plot(range(len(layers)), vals, "o-", color=f"C{k}", label=name)
        best = layers.index(chosen)
        ax.plot([best], [vals[best]], "o", ms=12, mfc="none", color=f"C{k}")
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("linear-probe test accuracy")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="ringed: best on validation", title_fontsize=8)
    fig.tight_layout()
    return fig
