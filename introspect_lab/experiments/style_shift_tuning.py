"""θ of the style-shift experiment and its CMA-ES search (seed 000, sec. 3.1.1; Hansen et al. 2003).

θ = (one weight per style layer, content weight, TV strength, learning rate, steps).
CMA-ES (the ``cma`` package) searches ``log10`` of every weight and of the learning
rate, ±3 decades around the untuned values, and the number of steps as a number in
[0, 1] mapped linearly onto ``[STEPS_MIN, STEPS_MAX]``, inside box bounds.
:func:`tune` is resumable: its state is pickled after every generation.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..models import settings

__all__ = ["Theta", "untuned_theta", "tune", "STEPS_MIN", "STEPS_MAX", "LOG_RANGE", "LR_LOG_BOUNDS"]


@dataclass(frozen=True)
class Theta:
    """The hyper-parameters θ of ``f_θ``: one weight per style layer, content weight, TV, lr, steps."""

    style_weights: tuple[float, ...]
    content_weight: float
    tv: float
    lr: float
    steps: int

    def to_dict(self) -> dict:
        return {**asdict(self), "style_weights": list(self.style_weights)}

    def capped(self, steps: int | None) -> Theta:
        """The same θ with at most ``steps`` steps (``None``: unchanged)."""
        return self if steps is None else replace(self, steps=min(self.steps, int(steps)))

    @classmethod
    def from_dict(cls, d: dict) -> Theta:
        return cls(
            tuple(float(w) for w in d["style_weights"]),
            float(d["content_weight"]),
            float(d["tv"]),
            float(d["lr"]),
            int(d["steps"]),
        )


#: The CMA-ES search space: log10 of every weight and of the lr, and the steps
#: as a number in [0, 1] mapped linearly onto ``[STEPS_MIN, STEPS_MAX]``.
STEPS_MIN, STEPS_MAX = 8, 32
LOG_RANGE = 3.0  # weights may move ±3 decades from the untuned values
LR_LOG_BOUNDS = (-3.0, 0.0)


def untuned_theta(model: nn.Module | str) -> Theta:
    """θ before tuning: the registry's style-transfer settings for this model (notebook 08's settings).

    The settings' ``lr_drop`` and ``clamp_range`` are not part of θ: ``f_θ`` uses a constant
    learning rate and clamps to valid pixels.
    """
    s = settings(model).style
    return Theta(
        tuple(float(v) for v in s.style_weights),
        float(s.content_weight),
        float(s.tv_weight),
        float(s.lr),
        int(s.steps),
    )


def _encode(theta: Theta) -> np.ndarray:
    steps = (min(max(theta.steps, STEPS_MIN), STEPS_MAX) - STEPS_MIN) / (STEPS_MAX - STEPS_MIN)
    logs = [
        math.log10(max(v, 1e-30)) for v in (*theta.style_weights, theta.content_weight, theta.tv, theta.lr)
    ]
    return np.array([*logs, steps])


def _decode(v: Sequence[float]) -> Theta:
    *logs, s = (float(x) for x in v)
    *w, c, tv, lr = (10.0**x for x in logs)
    steps = int(round(STEPS_MIN + min(max(s, 0.0), 1.0) * (STEPS_MAX - STEPS_MIN)))
    return Theta(tuple(w), c, tv, lr, steps)


def _bounds(start: Theta) -> tuple[list[float], list[float]]:
    x0 = _encode(start)
    lo = [x - LOG_RANGE for x in x0[:-2]] + [LR_LOG_BOUNDS[0], 0.0]
    hi = [x + LOG_RANGE for x in x0[:-2]] + [LR_LOG_BOUNDS[1], 1.0]
    return lo, hi


def tune(
    objective,
    start: Theta,
    *,
    generations: int = 4,
    popsize: int = 6,
    sigma0: float = 1.0,
    seed: int = 0,
    state_path: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> dict:
    """CMA-ES over θ: ``objective(list_of_Theta) -> list of losses`` evaluates a whole generation at once.

    The search runs in the encoded space of :func:`_encode` (log10 weights and lr,
    steps in [0, 1]) with box bounds, from ``start``. With ``state_path``, the CMA-ES
    state and history are pickled there after every generation (written atomically)
    and a later call with the same path continues from them (resumable runs).
    Returns ``{"best": Theta, "best_loss", "history": [per-generation dicts]}``.
    """
    import cma

    path = Path(state_path) if state_path else None
    if path is not None and path.is_file():
        with open(path, "rb") as fh:
            es, history = pickle.load(fh)
        print(f"CMA-ES: resuming from {path} after generation {len(history)}.")
    else:
        lo, hi = _bounds(start)
        x0 = np.clip(_encode(start), lo, hi)
        stds = [1.0] * (len(x0) - 1) + [0.3]
        opts = {"popsize": popsize, "seed": seed + 1, "bounds": [lo, hi], "CMA_stds": stds, "verbose": -9}
        es, history = cma.CMAEvolutionStrategy(x0.tolist(), sigma0, opts), []
    show = config.show_progress() if progress is None else progress
    for _ in tqdm(range(len(history), generations), desc="CMA-ES", disable=not show):
        xs = es.ask()
        thetas = [_decode(x) for x in xs]
        losses = [float(v) for v in objective(thetas)]
        es.tell(xs, losses)
        k = int(np.argmin(losses))
        history.append(
            {
                "generation": len(history) + 1,
                "losses": losses,
                "best_loss": losses[k],
                "best": thetas[k].to_dict(),
                "mean": _decode(es.mean).to_dict(),
            }
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as fh:
                pickle.dump((es, history), fh)
            os.replace(tmp, path)
    best = min(history, key=lambda h: h["best_loss"])
    return {"best": Theta.from_dict(best["best"]), "best_loss": best["best_loss"], "history": history}
