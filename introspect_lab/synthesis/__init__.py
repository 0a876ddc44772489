"""The synthesis wing: every "optimise the image" method of the lectures, one engine under them all.

Activation maximisation, DeepDream, feature inversion, the patch prior and
(in :mod:`introspect_lab.texture`) Gram texture synthesis and style transfer
are the same loop with different objectives (seeds 001, 002, 003, 004)::

    parameterisation → transforms → model (truncated) → objective + priors → step → image ops

* :mod:`.parameterisation`: the pixels themselves (``param="pixel"``) or a
  Fourier spectrum with decorrelated colours (``param="fft"``, Lucent);
* :mod:`.objectives`: what to maximise, as small composable pieces (a class
  score, a channel, a layer's features, Gram matrices and their loss ``E_l``,
  colour statistics), combined with ``+``, ``−`` and scalars (Lucent);
* :mod:`.priors`: what a natural image looks like, as penalties (L2, α-norm,
  total variation), transforms applied to a copy each step (jitter, scale,
  rotate) and image operations after each step (blur, clipping; seed 001);
* :mod:`.engine`: the loop (:func:`synthesize`). The model runs only up to
  the deepest layer any term needs, frozen and restored afterwards; the
  objective is always *maximised*, losses enter with a minus sign; steps are
  Adam, SGD, normalised gradient ascent (cs231n) or DeepDream's
  mean-normalised step, with ``torch.optim.lr_scheduler`` schedules;
* :mod:`.methods`: :func:`visualize_class`, :func:`visualize_channel` (both one :func:`ascend`),
  :func:`deepdream`, :func:`invert` build an objective and call :func:`synthesize`;
* :mod:`.patch_prior`: the data-driven patch prior of Wei et al. (seed 002, Eq. 3);
* :mod:`.multifaceted`: :func:`multifaceted` starts the ascent from the mean
  image of each cluster of a unit's most activating images (Nguyen et al. 2016).

Their settings live in the model registry: ``models.model_settings(model).class_vis``,
``.channel_vis``, ``.deepdream``, ``.inversion``, ``.style`` (typed frozen
dataclasses of :mod:`introspect_lab.settings`).
"""

from .engine import (
    DivergenceWarning,
    NonFiniteLossError,
    SynthesisResult,
    SynthesisSettings,
    SynthesisState,
    evaluate,
    layer_features,
    synthesize,
)
from .methods import ascend, deepdream, invert, relative_error, visualize_channel, visualize_class
from .multifaceted import Facets, multifaceted, spread, unit_scores
from .parameterisation import image_size

__all__ = [
    "SynthesisSettings",
    "SynthesisResult",
    "SynthesisState",
    "NonFiniteLossError",
    "DivergenceWarning",
    "synthesize",
    "evaluate",
    "layer_features",
    "visualize_class",
    "visualize_channel",
    "ascend",
    "deepdream",
    "invert",
    "relative_error",
    "image_size",
    "Facets",
    "multifaceted",
    "spread",
    "unit_scores",
]
