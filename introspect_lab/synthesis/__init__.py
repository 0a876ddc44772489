"""One engine for every "optimise the image" method of the lectures.

Activation maximisation, DeepDream, feature inversion, texture synthesis
and style transfer are the same loop with different objectives (seeds 001,
002, 003, 004)::

    parameterisation → transforms → model (truncated) → objective + penalties → step → image ops

* :mod:`.parameterisation`: the pixels themselves (``param="pixel"``) or a
  Fourier spectrum with decorrelated colours (``param="fft"``, Lucent);
* transforms: :mod:`introspect_lab.regularizers` jitter/scale/rotate,
  applied to a copy each step;
* :mod:`.engine`: the loop (:func:`synthesize`). The model runs only up to
  the deepest layer any term needs, frozen and restored afterwards; the
  objective (:mod:`introspect_lab.objectives`) is always *maximised*,
  losses enter with a minus sign; steps are Adam, SGD, normalised gradient
  ascent (cs231n) or DeepDream's mean-normalised step, with
  ``torch.optim.lr_scheduler`` schedules; image ops clamp to the valid
  range, blur and clip (seed 001);
* :mod:`.methods`: :func:`visualize_class`, :func:`visualize_channel`,
  :func:`deepdream`, :func:`invert` (texture and style in
  :mod:`introspect_lab.style`) build an objective and call :func:`synthesize`;
* :mod:`.multifaceted`: :func:`multifaceted` starts the ascent from the mean
  image of each cluster of a unit's most activating images (Nguyen et al. 2016).

Their settings live in the model registry: ``models.settings(model).class_vis``,
``.channel_vis``, ``.deepdream``, ``.inversion``, ``.style`` (typed frozen
dataclasses of :mod:`introspect_lab.settings`).
"""

from typing import Any

from torch import nn

from ..models import settings as model_settings
from .engine import (
    DivergenceWarning,
    NonFiniteLossError,
    SynthesisResult,
    SynthesisState,
    evaluate,
    layer_features,
    synthesize,
)
from .methods import deepdream, invert, relative_error, visualize_channel, visualize_class
from .multifaceted import Facets, multifaceted, spread, unit_scores
from .parameterisation import image_size

__all__ = [
    "defaults",
    "SynthesisResult",
    "SynthesisState",
    "NonFiniteLossError",
    "DivergenceWarning",
    "synthesize",
    "evaluate",
    "layer_features",
    "visualize_class",
    "visualize_channel",
    "deepdream",
    "invert",
    "relative_error",
    "image_size",
    "Facets",
    "multifaceted",
    "spread",
    "unit_scores",
]

_TASKS = {"class": "class_vis", "channel": "channel_vis", "deepdream": "deepdream", "invert": "inversion",
          "style": "style"}  # fmt: skip


def defaults(model: nn.Module | str, task: str) -> Any:
    """The registry's settings for one task: ``models.settings(model).<field>``, kept for existing code.

    Tasks: ``"class"`` (``class_vis``), ``"channel"`` (``channel_vis``),
    ``"deepdream"``, ``"invert"`` (``inversion``), ``"style"``. New code
    reads :func:`introspect_lab.models.settings` directly; it also has the
    layer names each notebook uses.
    """
    if task not in _TASKS:
        raise ValueError(
            f"Unknown task {task!r}; tasks are {sorted(_TASKS)}. Layer names are fields of "
            "models.settings(model), e.g. settings(model).channel_layers."
        )
    return getattr(model_settings(model), _TASKS[task])
