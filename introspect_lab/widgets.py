"""ipywidgets front ends for the notebooks: pickers, sliders and a live optimisation view.

Widgets only arrange controls and call the library; the computation lives
in the topic modules, so everything a widget shows can also be produced
by a plain function call (and is tested that way).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Layer / channel / photo explorers (notebooks 01–02)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Attribution explorer (notebook 03)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Live optimisation (notebooks 05–08)
# ---------------------------------------------------------------------------
