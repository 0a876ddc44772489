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
    and ``seed`` the run's seed (both go into the result). :meth:`add` keeps
    everything on the image's device (no host round trip per step, which stalls
    a GPU); the floats are read once, when a callback, an error or the result
    needs them.
    """

    def __init__(self, init: torch.Tensor, mean, std, seed: int):
        self.init, self.mean, self.std, self.seed = init, tuple(mean), tuple(std), seed
        self._values: list[torch.Tensor] = []
        self._parts: dict[str, list[torch.Tensor]] = {}
        self._floats: tuple[int, list[float], dict[str, list[float]]] = (0, [], {})
        self._best = torch.full((), -math.inf, dtype=init.dtype, device=init.device)
        self._best_step = torch.zeros((), dtype=torch.long, device=init.device)
        self.best_image = init
        self._finite = torch.ones((), dtype=torch.bool, device=init.device)
        self.start = time.perf_counter()

    def add(self, image: torch.Tensor, value: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Log one step's objective and terms (0-dim tensors); keep ``image`` if it is the best so far."""
        value = value.detach()
        better = value > self._best  # False for NaN: a non-finite step is never the best
        self.best_image = torch.where(better, image.detach(), self.best_image)
        self._best = torch.where(better, value, self._best)
        self._best_step = torch.where(better, len(self._values), self._best_step)
        self._finite &= torch.isfinite(value)
        self._values.append(value)
        for k, v in parts.items():
            self._parts.setdefault(k, []).append(v.detach())

    def _read(self) -> tuple[list[float], dict[str, list[float]]]:
        """The logged values as floats (one host transfer for the steps since the last read)."""
        n, history, terms = self._floats
        if n < len(self._values):
            history = history + torch.stack(self._values[n:]).tolist()
            terms = {k: terms.get(k, []) + torch.stack(v[n:]).tolist() for k, v in self._parts.items()}
            self._floats = (len(self._values), history, terms)
        return history, terms

    @property
    def history(self) -> list[float]:
        """The objective per logged step."""
        return self._read()[0]

    @property
    def terms(self) -> dict[str, list[float]]:
        """Each weighted term per logged step."""
        return self._read()[1]

    @property
    def best_value(self) -> float:
        return float(self._best)

    @property
    def best_step(self) -> int:
        return int(self._best_step)

    @property
    def last_terms(self) -> dict[str, float]:
        """Each term's value at the last logged step."""
        return {k: v[-1] for k, v in self.terms.items()}

    def all_finite(self) -> bool:
        """Whether every logged objective is finite (one host read)."""
        return bool(self._finite)

    def result(self, image: torch.Tensor | None = None, note: str = "", interrupted: bool = False):
        """The :class:`SynthesisResult` with final ``image`` (default: the best one)."""
        history, terms = self._read()
        return SynthesisResult(
            image=self.best_image if image is None else image,
            best_image=self.best_image,
            best_value=self.best_value,
            history=history,
            terms=terms,
            steps_done=len(history),
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
            f"Interrupted after {len(self._values)} of {steps} steps: returning the best image so far "
            f"(step {self.best_step + 1}, objective {self.best_value:.4g})."
        )
        print(note)
        return self.result(note=note, interrupted=True)


def check_finite(record: Record, steps: int, rate: str, objective) -> None:
    """Raise :class:`NonFiniteLossError` naming the culprit if a logged objective is NaN/inf.

    Names the first non-finite step and term. ``rate`` describes the learning rate and
    optimiser (``"lr=0.05 with optimizer 'adam'"``); the error names it and ``objective``'s
    weights, and its ``.result`` holds the best image reached before.
    """
    if record.all_finite():
        return
    history, terms = record.history, record.terms
    step = next(i for i, v in enumerate(history) if not math.isfinite(v))
    bad = [k for k, v in terms.items() if not math.isfinite(v[step])] or list(terms)
    weights = ", ".join(f"{n}: {w:g}" for n, w in zip(objective.names, objective.weights))
    last = ", ".join(f"{k}={v[step - 1]:.3g}" for k, v in terms.items()) if step else "none yet"
    msg = (
        f"The objective became non-finite ({history[step]}) at step {step + 1} of {steps}; "
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
