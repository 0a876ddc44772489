"""The receptive-field cone of an occluded patch: the theory, and a figure of the cone layer by layer.

Nakandala, Kumar & Papakonstantinou (SIGMOD 2019), "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations": a patch changes only the units whose receptive field meets it
(notebook 01's receptive fields), so occlusion needs to recompute only that cone.
:func:`cone_share` gives the theoretical share of each layer
from :func:`introspect_lab.receptive.receptive_field`;
:func:`plot_cone` draws the boxes an :class:`~.incremental.IncrementalForward` recomputed.
"""

from __future__ import annotations

import torch

from ..receptive import ReceptiveField
from .incremental import IncrementalForward

__all__ = ["cone_share", "plot_cone"]


def cone_share(rf: ReceptiveField, window: int, stride: int) -> float:
    """Mean share of a layer's units whose receptive field meets an occlusion window (the theory).

    Krypton's theoretical saving (Nakandala et al. 2019) from the receptive-field arithmetic alone
    (``rf`` from :func:`introspect_lab.receptive.receptive_field` at the image size): for every window
    position (the last one clipped at the border, as :func:`~introspect_lab.attribution.occlusion`
    slides it), count the units whose field box meets the window, divided by the map size. The
    boxes are separable, so the count is a product of one count per axis.
    """
    hw = rf.input_size
    if rf.global_:
        return 1.0
    share = 1.0
    for axis in range(2):
        n_out, n_in = rf.output_size[axis], hw[axis]
        centres = rf.start[axis] + rf.jump[axis] * torch.arange(n_out, dtype=torch.float64)
        lo = torch.ceil(centres - (rf.size[axis] - 1) / 2).clamp(min=0)
        hi = torch.floor(centres + (rf.size[axis] - 1) / 2).clamp(max=n_in - 1)
        starts = range(0, max(n_in - window, 0) + stride, stride)
        counts = [int(((lo < min(a + window, n_in)) & (hi >= a)).sum()) for a in starts]
        share *= sum(counts) / (len(counts) * n_out)
    return share


def plot_cone(engine: IncrementalForward, *, size: float = 2.0):
    """The cone of the last change ``engine`` scored: one panel per map resolution, and the share per layer.

    Top row: the input with the changed box, then for each map size the last convolution at that size,
    its grid of units with the recomputed box filled (copy 0 of the last call; run a single copy without
    :meth:`~.IncrementalForward.compile_tail` to see every layer). Bottom: the share of each convolution's
    units recomputed, in network order (Krypton, Nakandala et al. 2019). Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    convs = [(name, engine.boxes[name]) for name in engine.costs if name in engine.boxes]
    if not convs:
        raise ValueError("The engine has not scored a change yet: call engine(values, top, left) first.")
    x = engine.boxes["input"]
    last = {}
    for name, box in convs:
        last[box[4:]] = (name, box)
    panels = [("input", x), *last.values()]
    fig = plt.figure(figsize=(size * len(panels), size * 2.4), layout="constrained")
    grid = fig.add_gridspec(2, len(panels), height_ratios=[1, 0.9])
    for i, (name, (t, lft, h, w, H, W)) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(torch.zeros(H, W).numpy(), cmap="Greys", vmin=0, vmax=1, extent=(0, W, H, 0))
        ax.add_patch(Rectangle((lft, t), w, h, color="tab:red", alpha=0.8))
        ax.set_title(f"{name}\n{h}×{w} of {H}×{W}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    ax = fig.add_subplot(grid[1, :])
    share = [b[2] * b[3] / (b[4] * b[5]) for _, b in convs]
    ax.plot(range(len(share)), share, "o-", color="tab:red", ms=3)
    ax.set_xticks(range(len(share)), [n for n, _ in convs], rotation=90, fontsize=6)
    ax.set_ylabel("share of units\nrecomputed")
    ax.set_ylim(0, 1.05)
    return fig
