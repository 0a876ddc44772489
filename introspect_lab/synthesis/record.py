"""What a synthesis run records: the objective per step, the best image, and why it ended.

:class:`Record` keeps the history of one run of :func:`~.engine.synthesize`
and builds its :class:`SynthesisResult`; :func:`check_finite` and
:func:`warn_if_diverged` are the run's two diagnostics (a NaN objective, a
learning rate far too large).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..images import denormalize

__all__ = [
    "SynthesisResult",
    "SynthesisState",
    "NonFiniteLossError",
    "DivergenceWarning",
    "Record",
    "check_finite",
    "warn_if_diverged",
]


@dataclass
class SynthesisState:
    """Passed to a ``callback`` every ``every`` steps: the image so far and the objective."""

    step: int
    steps: int
    image: torch.Tensor
    value: float
    terms: dict[str, float]


@dataclass
class SynthesisResult:
    """What :func:`~.engine.synthesize` returns.

    ``image`` is the final image (normalised model space, ``[B, 3, H, W]``;
    after an interruption it is the best one), ``best_image`` the one with
    the highest objective, ``history`` the objective per step and
    ``terms`` each weighted term per step. ``note`` says why a run ended
    early (``interrupted`` is True after Ctrl-C / Jupyter's stop button).
    """

    image: torch.Tensor
    best_image: torch.Tensor
    best_value: float
    history: list[float]
    terms: dict[str, list[float]]
    steps_done: int
    interrupted: bool = False
    note: str = ""
    seconds: float = 0.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_display(self, best: bool = False) -> np.ndarray:
        """The image(s) as H×W×3 (or B×H×W×3) floats in [0, 1] for ``plt.imshow``."""
        x = (self.best_image if best else self.image).detach()
        img = denormalize(x, mean=self.mean, std=self.std).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        return img[0] if img.shape[0] == 1 else img

    def __repr__(self) -> str:
        shape = "×".join(str(s) for s in self.image.shape)
        end = f", note={self.note!r}" if self.note else ""
        return (
            f"SynthesisResult(image {shape}, steps={self.steps_done}, best={self.best_value:.4g}, "
            f"{self.seconds:.1f} s{end})"
        )


class NonFiniteLossError(FloatingPointError):
    """The objective became NaN/inf; ``.result`` holds the best image reached before."""

    def __init__(self, message: str, result: SynthesisResult | None = None):
        super().__init__(message)
        self.result = result


class DivergenceWarning(UserWarning):
    """The optimisation moved away from its goal: the objective ended far below where it started."""


class Record:
    """The running record of one synthesis: objective per step, each term, the best image.

    ``init`` is the starting image; ``mean``/``std`` the model's normalisation
    and ``seed`` the run's seed (both go into the result).
    """

    def __init__(self, init: torch.Tensor, mean, std, seed: int):
        self.init, self.mean, self.std, self.seed = init, tuple(mean), tuple(std), seed
        self.history: list[float] = []
        self.terms: dict[str, list[float]] = {}
        self.best_value, self.best_image, self.best_step = -math.inf, init, 0
        self.start = time.perf_counter()

    def add(self, image: torch.Tensor, value: float, parts: dict[str, float]) -> None:
        """Log one step's objective and terms; keep ``image`` if it is the best so far."""
        if value > self.best_value:
            self.best_value, self.best_image = value, image.detach().clone()
            self.best_step = len(self.history)
        self.history.append(value)
        for k, v in parts.items():
            self.terms.setdefault(k, []).append(v)

    @property
    def last_terms(self) -> dict[str, float]:
        """Each term's value at the last logged step."""
        return {k: v[-1] for k, v in self.terms.items()}

    def result(self, image: torch.Tensor | None = None, note: str = "", interrupted: bool = False):
        """The :class:`SynthesisResult` with final ``image`` (default: the best one)."""
        return SynthesisResult(
            image=self.best_image if image is None else image,
            best_image=self.best_image,
            best_value=self.best_value,
            history=self.history,
            terms=self.terms,
            steps_done=len(self.history),
            interrupted=interrupted,
            note=note,
            seconds=time.perf_counter() - self.start,
            mean=self.mean,
            std=self.std,
            extra={"seed": self.seed, "init": self.init},
        )

    def interrupted(self, steps: int) -> SynthesisResult:
        """The result after Ctrl-C: the best image so far, with a note (also printed)."""
        note = (
            f"Interrupted after {len(self.history)} of {steps} steps: returning the best image so far "
            f"(step {self.best_step + 1}, objective {self.best_value:.4g})."
        )
        print(note)
        return self.result(note=note, interrupted=True)


def check_finite(
    value: float, parts: dict[str, float], step: int, steps: int, record: Record, rate: str, objective
):
    """Raise :class:`NonFiniteLossError` naming the culprit if the objective is NaN/inf.

    ``rate`` describes the learning rate and optimiser (``"lr=0.05 with optimizer 'adam'"``);
    the error names it and ``objective``'s weights, and its ``.result`` holds the best image.
    """
    if math.isfinite(value):
        return
    bad = [k for k, v in parts.items() if not math.isfinite(v)] or list(parts)
    weights = ", ".join(f"{n}: {w:g}" for n, w in zip(objective.names, objective.weights))
    last = ", ".join(f"{k}={v:.3g}" for k, v in record.last_terms.items()) or "none yet"
    msg = (
        f"The objective became non-finite ({value}) at step {step + 1} of {steps}; "
        f"non-finite term(s): {', '.join(bad)}. Likely culprits: the learning rate ({rate}) "
        f"is too large — try it 10× smaller; or a term's weight is too large (weights: {weights}; "
        f"last finite terms: {last}). The best image reached before is in the error's .result."
    )
    raise NonFiniteLossError(msg, record.result(note=msg))


def warn_if_diverged(history: Sequence[float], rate: str) -> None:
    """Warn when the start was the best point and the objective fell by more than its own size.

    A learning rate far too large throws the image to the edge of the valid range at the
    first step, where the objective stays: it never comes back above its starting value.
    """
    if len(history) < 3:
        return
    start, end = history[0], history[-1]
    if max(history) <= start and end < start - max(abs(start), 1e-8):
        warnings.warn(
            f"The optimisation diverged: the objective fell from {start:.4g} to {end:.4g} and never rose "
            f"above its start. The learning rate ({rate}) is probably far too "
            "large: try it 10× smaller.",
            DivergenceWarning,
            stacklevel=3,
        )
