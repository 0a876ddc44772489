"""Plots of the novelty-detection results (seed 000, Figures 4 and 5), read from a results dict.

Every number drawn comes from the dict that :func:`introspect_lab.experiments.novelty_run.run`
returns (or :func:`~introspect_lab.experiments.novelty_run.load_results` reads), never from code:
means over class partitions with their 95 % intervals as error bars.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_figure4", "plot_figure5", "plot_baselines"]


def _ticks(results: dict, layers: list[int]) -> list[str]:
    names = {k: p for k, p, _ in results["model"]["layers"]}
    return [f"{k}\n{names[k]}" for k in layers]


def _mean_err(cells) -> tuple[np.ndarray, np.ndarray]:
    """Means and asymmetric error bars from ``[mean, low, high]`` cells (no bar when the interval is NaN)."""
    c = np.asarray(cells, dtype=float).reshape(-1, 3)
    err = np.nan_to_num(np.abs(np.stack([c[:, 0] - c[:, 1], c[:, 2] - c[:, 0]])))
    return c[:, 0], err


def _panel(ax, results: dict, layers: list[int], block: dict, title: str) -> None:
    x = np.arange(len(layers))
    w = 0.38
    for dx, key, colour, label in (
        (-w / 2, "train_acc", "#9ecae1", "train accuracy"),
        (w / 2, "test_acc", "#3182bd", "test accuracy (0.5)"),
    ):
        mean, err = _mean_err(block[key])
        ax.bar(x + dx, mean, w, yerr=err, color=colour, label=label, capsize=2)
    mean, err = _mean_err(block["test_auroc"])
    ax.errorbar(x, mean, yerr=err, color="#e6550d", marker="o", lw=1.5, capsize=3, label="test AUROC")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(x, _ticks(results, layers), fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("seen vs unseen")


def _subtitle(results: dict) -> str:
    m, d = results["model"], results["data"]
    data = "digits stand-in" if d["stand_in"] else d["name"]
    n = len(results["partitions"])
    return (
        f"{m['ran']} (requested {m['requested']}), {data}, {d['image_size']} px, mean and 95 % CI over {n} "
        "partitions"
    )


def plot_figure4(results: dict, size: float = 4.2):
    """Figure 4: per layer 0–9, train/test accuracy (and test AUROC) of the FC (top) and Conv (bottom)
    detectors.
    """
    import matplotlib.pyplot as plt

    block = results["figure4"]
    ep = results["epochs"]["this_run"]
    fig, axes = plt.subplots(2, 1, figsize=(2.6 * size, 2 * size * 0.62), sharex=True)
    for ax, kind, name in zip(axes, ("fc", "conv"), ("FC classifier", "Conv classifier")):
        _panel(ax, results, block["layers"], block[kind], f"{name} ({ep['detector']} epochs)")
    axes[0].legend(loc="lower right", fontsize=8, ncol=4)
    axes[1].set_xlabel("layer (paper numbering → ResNet-18 name)")
    fig.suptitle(
        f"Figure 4 · fine-tuned {ep['figure4'][0]}+{ep['figure4'][1]} epochs · {_subtitle(results)}",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def plot_figure5(results: dict, size: float = 4.2):
    """Figure 5: the last layers, FC detector, network without (top) and with (bottom) fine-tuning."""
    import matplotlib.pyplot as plt

    block = results["figure5"]
    ep = results["epochs"]["this_run"]
    fig, axes = plt.subplots(2, 1, figsize=(1.5 * size, 2 * size * 0.62), sharex=True)
    titles = {
        "without": f"without fine-tuning (adaptation layer alone, {ep['figure5_without'][0]} epochs)",
        "with": f"with fine-tuning ({ep['figure5_with'][0]} + {ep['figure5_with'][1]} epochs)",
    }
    for ax, key in zip(axes, ("without", "with")):
        _panel(ax, results, block["layers"], block[key]["fc"], titles[key])
    axes[0].legend(loc="lower left", fontsize=8, ncol=2)
    fig.suptitle(f"Figure 5 · FC classifier\n{_subtitle(results)}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_baselines(results: dict, size: float = 3.6):
    """Test AUROC per layer: learned detectors vs Mahalanobis (per layer) and maximum softmax probability."""
    import matplotlib.pyplot as plt

    panels = [("Figure 4 network", results["figure4"], results["figure4"]["layers"])]
    panels += [
        (f"Figure 5, {k} fine-tuning", results["figure5"][k], results["figure5"]["layers"])
        for k in ("without", "with")
    ]
    ratios = [len(p[2]) + 2 for p in panels]
    fig, axes = plt.subplots(
        1, 3, figsize=(3.2 * size, size), sharey=True, gridspec_kw={"width_ratios": ratios}
    )
    for ax, (title, block, layers) in zip(axes, panels):
        x = np.arange(len(layers))
        for kind, colour, label in (
            ("fc", "#3182bd", "learned, FC"),
            ("conv", "#31a354", "learned, Conv"),
            ("mahalanobis", "#756bb1", "Mahalanobis (Lee et al.)"),
        ):
            if kind in block:
                mean, err = _mean_err(block[kind]["test_auroc"])
                ax.errorbar(x, mean, yerr=err, fmt="o-", color=colour, capsize=2, label=label)
        msp = block["msp_auroc"]
        ax.axhline(msp[0], color="#e6550d", lw=2, label="max softmax prob. (Hendrycks & Gimpel)")
        if np.isfinite(msp[1]):
            ax.axhspan(msp[1], msp[2], color="#e6550d", alpha=0.15, lw=0)
        ax.axhline(0.5, color="grey", ls="--", lw=1)
        ax.set_xticks(x, _ticks(results, layers), fontsize=7)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("test AUROC (unseen = positive)")
    axes[0].set_ylim(0.3, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Learned detectors vs baselines · {_subtitle(results)}", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
