"""Figures for the notebooks: filter and activation grids, thumbnail scatters, heatmap overlays.

Every function returns its matplotlib figure so a notebook line can end
with ``;`` and tests can inspect it. Sections are grouped by lecture.
"""

from __future__ import annotations

from .features import filters_for_display, receptive_field
from .images import to_display

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

    if isinstance(images, torch.Tensor) and images.dim() == 4:
        images = list(images.unbind(0))
    n = len(images)
    fig, axes = plt.subplots(
        2, n, figsize=(size * n, size * 1.9), squeeze=False, gridspec_kw={"height_ratios": [1.1, 0.8]}
    )
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


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return -(-n // ncols), ncols


def plot_filters(weight, *, title: str | None = None, ncols: int = 16, size: float = 0.55, fig=None):
    """First-layer filters as RGB tiles, each scaled to [0, 1] on its own (seed 001, "Interpreting weights").

    ``weight`` is ``[N, 3, kh, kw]`` (see :func:`introspect_lab.features.filters_for_display`).
    Tiles are drawn with nearest-neighbour interpolation so a 3×3 filter stays 9 pixels.
    """
    import matplotlib.pyplot as plt

    tiles = filters_for_display(weight)
    nrows, ncols = _grid(len(tiles), ncols)
    if fig is None:
        fig = plt.figure(figsize=(size * ncols, size * nrows + (0.4 if title else 0.1)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, tiles):
        ax.imshow(tile, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_filter_banks(banks: dict, *, ncols: int = 16, size: float = 0.55):
    """Several models' first-layer filters, one block per model, titled ``name: N×3×k×k``."""
    import matplotlib.pyplot as plt

    if not banks:
        raise ValueError("No filter banks to show.")
    rows = [-(-len(w) // ncols) for w in banks.values()]
    fig = plt.figure(figsize=(size * ncols, sum(size * r + 0.45 for r in rows)))
    subs = fig.subfigures(len(banks), 1, height_ratios=[size * r + 0.45 for r in rows], squeeze=False)
    for sub, (name, w) in zip(subs.flat, banks.items()):
        plot_filters(w, title=f"{name}: {'×'.join(map(str, w.shape))}", ncols=ncols, size=size, fig=sub)
    return fig


def plot_filter_channels(weight, *, filters=range(8), channels=range(8), size: float = 0.8, ncols: int = 16):
    """Deeper filters per input channel in grayscale: row = filter, column = input channel.

    A filter of a hidden layer weighs the previous layer's channels, not colours, so each
    ``k×k`` slice ``w[f, c]`` is one grayscale image, on a scale symmetric about 0 per
    filter (mid-grey = 0; seed 001: only first-layer filters read as pictures). Depthwise
    filters (one input channel each, ``[C, 1, k, k]``) are laid out in a grid of ``ncols``.
    """
    import matplotlib.pyplot as plt
    import torch

    w = torch.as_tensor(weight).detach().float().cpu()
    if w.dim() != 4:
        raise ValueError(f"A conv weight has shape [C_out, C_in, kh, kw]; got {tuple(w.shape)}.")
    filters = [f for f in filters if f < w.shape[0]]
    if w.shape[1] == 1:  # depthwise: one slice per filter
        nrows, ncols = _grid(len(filters), ncols)
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(size * ncols, size * nrows + 0.4))
        for ax in axes.flat:
            ax.axis("off")
        for ax, f in zip(axes.flat, filters):
            lim = float(w[f].abs().max()) or 1.0
            ax.imshow(w[f, 0].numpy(), cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"{f}", fontsize=6)
        fig.suptitle(
            f"{len(filters)} depthwise filters, each {w.shape[2]}×{w.shape[3]} on one channel", fontsize=9
        )
        fig.tight_layout()
        return fig
    channels = [c for c in channels if c < w.shape[1]]
    fig, axes = plt.subplots(
        len(filters),
        len(channels),
        squeeze=False,
        figsize=(size * len(channels) + 0.6, size * len(filters) + 0.4),
    )
    for r, f in enumerate(filters):
        lim = float(w[f].abs().max()) or 1.0
        for c_i, c in enumerate(channels):
            ax = axes[r, c_i]
            ax.imshow(w[f, c].numpy(), cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"in {c}", fontsize=7)
            if c_i == 0:
                ax.set_ylabel(f"filter {f}", fontsize=7)
    fig.tight_layout()
    return fig


def plot_activation_grid(
    maps,
    *,
    channels=None,
    ncols: int = 16,
    size: float = 0.7,
    title: str | None = None,
    highlight: int | None = None,
):
    """Feature maps ``[C, H, W]`` as a grid of grayscale images, one per channel (seed 004, "Visualizing
    activations").

    Each map is scaled on its own (black = its minimum, white = its maximum; an all-zero
    map stays black). ``highlight`` frames one channel in red.
    """
    import matplotlib.pyplot as plt
    import torch

    maps = torch.as_tensor(maps).detach().float().cpu()
    if maps.dim() != 3:
        raise ValueError(f"Feature maps have shape [C, H, W]; got {tuple(maps.shape)}.")
    channels = list(range(maps.shape[0])) if channels is None else list(channels)
    nrows, ncols = _grid(len(channels), ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(size * ncols, size * nrows + 0.4))
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, channels):
        m = maps[c]
        hi = float(m.max())
        ax.imshow(m.numpy(), cmap="gray", vmin=min(float(m.min()), 0.0), vmax=hi if hi > 0 else 1.0)
        if c == highlight:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2)
    fig.suptitle(title or f"{len(channels)} channels, each {maps.shape[1]}×{maps.shape[2]}", fontsize=10)
    fig.tight_layout()
    return fig


def map_extent(model, layer: str, input_hw: tuple[int, int], map_hw: tuple[int, int]) -> tuple[float, ...]:
    """``imshow`` extent that puts feature-map cell ``(i, j)`` on the input pixels it is centred on.

    Cell centres are at ``start + i·jump`` (:func:`introspect_lab.features.receptive_field`),
    so the map is drawn from ``start − jump/2`` to ``start + (H−1)·jump + jump/2``.
    """
    rf = receptive_field(model, layer, tuple(input_hw))
    (sy, sx), (jy, jx) = rf.start, rf.jump
    # imshow puts input pixel (r, c) at coordinates (c, r), so cell (i, j) spans ±jump/2 around its centre
    return (sx - jx / 2, sx + (map_hw[1] - 0.5) * jx, sy + (map_hw[0] - 0.5) * jy, sy - jy / 2)


def plot_activation_overlay(
    x,
    act_map,
    *,
    model=None,
    layer: str | None = None,
    title: str | None = None,
    alpha: float = 0.55,
    size: float = 3.2,
):
    """Where a channel fires: the photo, the map over the photo, and the map alone, aligned.

    ``x`` is a normalised ``[1, 3, H, W]`` image and ``act_map`` one channel ``[h, w]``.
    With ``model`` and ``layer`` the map is placed by the receptive-field arithmetic
    (:func:`map_extent`); otherwise it is stretched over the image.
    """
    import matplotlib.pyplot as plt
    import torch

    img = to_display(x, model)
    m = torch.as_tensor(act_map).detach().float().cpu().numpy()
    h, w = img.shape[:2]
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    if model is not None and layer is not None:
        extent = map_extent(model, layer, (h, w), m.shape)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size))
    axes[0].imshow(img)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(img)
    hi = float(m.max())
    axes[1].imshow(m, cmap="magma", alpha=alpha, extent=extent, vmin=0, vmax=hi if hi > 0 else 1)
    axes[1].set_title("activation over the input", fontsize=9)
    axes[2].imshow(m, cmap="gray", extent=extent, vmin=min(float(m.min()), 0.0), vmax=hi if hi > 0 else 1)
    axes[2].set_title(f"map {m.shape[0]}×{m.shape[1]}", fontsize=9)
    for ax in axes:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_neighbors(
    thumbnails, queries, neighbor_sets: dict, *, labels=None, query_thumbnails=None, size: float = 1.3
):
    """Each query next to its nearest neighbours, one block of columns per space (e.g. features vs pixels).

    ``thumbnails`` is ``[N, h, w, 3]`` in [0, 1]; ``neighbor_sets`` maps a title to
    neighbour indices ``[Q, k]`` (from :func:`introspect_lab.features.nearest_neighbors`);
    ``labels[i]`` (optional) is printed under each image, green when it matches the query's.
    ``queries`` index ``thumbnails`` (and ``labels``); ``query_thumbnails`` draws other
    pictures for them instead (e.g. transformed copies of those images).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    queries = list(queries)
    sets = {name: np.asarray(idx) for name, idx in neighbor_sets.items()}
    k = max(idx.shape[1] for idx in sets.values())
    ncols = 1 + len(sets) * (k + 1)
    fig, axes = plt.subplots(
        len(queries), ncols, squeeze=False, figsize=(size * ncols, size * 1.15 * len(queries))
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, q in enumerate(queries):
        axes[r, 0].imshow(thumbnails[q] if query_thumbnails is None else query_thumbnails[r])
        axes[r, 0].set_title("query" + (f"\n{labels[q]}" if labels is not None else ""), fontsize=7)
        col = 1
        for name, idx in sets.items():
            col += 1  # a gap column between blocks
            for c, n in enumerate(idx[r]):
                ax = axes[r, col + c]
                ax.imshow(thumbnails[n])
                if labels is not None:
                    ok = labels[n] == labels[q]
                    ax.set_title(str(labels[n])[:14], fontsize=7, color="green" if ok else "red")
                if r == 0 and c == 0:
                    ax.text(0, 1.3, name, transform=ax.transAxes, fontsize=9, weight="bold")
            col += idx.shape[1]
    fig.tight_layout()
    return fig


def plot_thumbnail_scatter(
    coords,
    thumbnails,
    labels,
    label_names=None,
    *,
    title: str | None = None,
    max_thumbs: int = 120,
    zoom: float | None = None,
    seed: int = 0,
    size: float = 8.0,
):
    """A 2-D embedding as a scatter coloured by label, with image thumbnails at (some of) the points.

    As in the lecture's t-SNE maps of FC7 features (seed 001/004). ``coords`` is
    ``[N, 2]``; ``thumbnails`` ``[N, h, w, 3]`` in [0, 1]; ``labels`` integer labels.
    At most ``max_thumbs`` thumbnails (a seeded random subset) keep the plot readable.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(labels):
        raise ValueError(
            f"coords must be [N, 2] with one label per point; got {coords.shape} and {labels.shape}."
        )
    n_labels = int(labels.max()) + 1
    cmap = plt.get_cmap("tab20" if n_labels > 10 else "tab10")
    colors = [cmap(i % cmap.N) for i in range(n_labels)]
    fig, ax = plt.subplots(figsize=(size, size * 0.8))
    for lab in range(n_labels):
        sel = labels == lab
        if sel.any():
            name = label_names[lab] if label_names is not None else str(lab)
            ax.scatter(coords[sel, 0], coords[sel, 1], s=14, color=colors[lab], label=name)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(coords))[:max_thumbs]
    side = thumbnails.shape[1]
    zoom = zoom if zoom is not None else 24 / side
    for i in pick:
        box = OffsetImage(thumbnails[i], zoom=zoom)
        ab = AnnotationBbox(
            box,
            coords[i],
            frameon=True,
            pad=0.1,
            bboxprops={"edgecolor": colors[labels[i]], "linewidth": 1.5},
        )
        ax.add_artist(ab)
    ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_patches(patches, *, size: float = 1.1, labels=None, title: str | None = None):
    """Maximally activating patches: one row per channel, strongest first (seed 004).

    ``patches`` is what :func:`introspect_lab.features.top_patches` returns (a list for one
    channel, a dict for several). Each crop is shown at the same display size; the
    title gives the activation value (and ``labels[index]`` when given).
    """
    import matplotlib.pyplot as plt

    rows = {patches[0].channel: patches} if isinstance(patches, list) else dict(patches)
    if not rows or not all(rows.values()):
        raise ValueError("No patches to show.")
    k = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(rows), k, squeeze=False, figsize=(size * k + 0.8, size * 1.2 * len(rows) + 0.3)
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (channel, plist) in enumerate(rows.items()):
        for c, p in enumerate(plist):
            ax = axes[r, c]
            ax.imshow(p.crop, aspect="auto")
            text = f"{p.value:.2g}" + (f" {labels[p.index]}"[:13] if labels is not None else "")
            ax.set_title(text, fontsize=6)
        axes[r, 0].text(
            -0.1, 0.5, f"ch {channel}", transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
