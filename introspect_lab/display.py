"""The one display rule for attributions: contrast clipped at a share of the largest attribution mass.

Captum's ``visualize_image_attr(outlier_perc=...)``: a gradient has a few very
large values, and scaling by the largest one turns every edge grey. Every
attribution figure (:mod:`introspect_lab.plotting`) and the explorer use it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["OUTLIER_PERC", "clip_threshold"]

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
