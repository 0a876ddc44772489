"""Texture and style: every method that makes an image from an exemplar's statistics.

* :mod:`.nonparametric`: Efros–Leung texture synthesis by neighbourhood
  matching, no network at all (seed 004);
* :mod:`.gatys`: texture synthesis and style transfer by matching Gram
  matrices of a network's features, on the synthesis engine (seed 001,
  Gatys, Ecker & Bethge 2015, 2016);
* :mod:`.feedforward`: feed-forward texture and style networks trained on the
  same loss (Ulyanov et al. 2016, Johnson et al. 2016; conditional instance
  norm, Dumoulin et al. 2017), whose generator is :mod:`.stylenet`;
* :mod:`.networks`: texture networks with seeded random weights (VGG-19 at
  Gatys's Gram layers; one multi-scale random layer after Ustyuzhaninov et
  al. 2017) and their settings (L-BFGS, as Gatys et al. optimised), compared
  with the bundled model by :mod:`introspect_lab.experiments.texture_models`;
* :mod:`.look`: descriptors of how a texture *looks* (colourfulness, power
  spectrum, orientation energy, grey levels) that no loss uses, for judging
  results and testing them.

The Gram matrix and its loss ``E_l`` live with the other objectives in
:mod:`introspect_lab.synthesis.objectives` (``gram``, ``gram_error``).
"""

from .gatys import style_losses, style_targets, style_transfer, texture_synthesis
from .nonparametric import efros_leung

__all__ = ["efros_leung", "style_losses", "style_targets", "style_transfer", "texture_synthesis"]
