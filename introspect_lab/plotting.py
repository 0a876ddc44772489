"""Figures for the notebooks: filter and activation grids, thumbnail scatters, heatmap overlays.

Every function returns its matplotlib figure so a notebook line can end
with ``;`` and tests can inspect it. Sections are grouped by lecture.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Filters, activations and feature space (notebooks 01–02)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Attribution maps (notebooks 03–04)
# ---------------------------------------------------------------------------
