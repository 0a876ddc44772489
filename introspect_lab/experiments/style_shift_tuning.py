"""θ of the style-shift experiment and its CMA-ES search (seed 000, sec. 3.1.1; Hansen et al. 2003).

θ = (one weight per style layer, content weight, TV strength, learning rate, steps).
CMA-ES (the ``cma`` package) searches ``log10`` of every weight, ±3 decades around the
untuned values, ``log10`` of the learning rate from 2.5 decades below to 1 decade above
the untuned value (so every model's own lr is inside the box: SqueezeNet's 3.0 too), and
the number of steps as a number in [0, 1] mapped linearly onto ``[steps_min, steps_max]``.
Its population is CMA-ES's default for the dimension, ``4 + ⌊3 ln n⌋``.
:func:`tune` is resumable: its state is pickled after every generation.
:func:`random_search` is the baseline at the same number of evaluations.
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
from ..models import model_settings

__all__ = [
    "Theta",
    "untuned_theta",
    "tune",
    "STEPS_MIN",
    "STEPS_MAX",
    "LOG_RANGE",
    "LR_LOG_RANGE",
    "default_popsize",
    "random_search",
    "search_box",
]


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
LR_LOG_RANGE = (-2.5, 1.0)  # log10 lr may move 2.5 decades down and 1 up from the untuned lr


def default_popsize(dim: int) -> int:
    """CMA-ES's default population for ``dim`` dimensions, ``4 + ⌊3 ln dim⌋`` (Hansen; 10 for 8)."""
    return 4 + int(3 * math.log(dim))


def untuned_theta(model: nn.Module | str) -> Theta:
    """θ before tuning: the registry's style-transfer settings for this model (notebook 08's settings).

    The settings' ``lr_drop`` and ``clamp_range`` are not part of θ: ``f_θ`` uses a constant
    learning rate and clamps to valid pixels.
    """
    s = model_settings(model).style
    return Theta(
        tuple(float(v) for v in s.style_weights),
        float(s.content_weight),
        float(s.tv_weight),
        float(s.lr),
        int(s.steps),
    )


def _encode(theta: Theta, steps_range: tuple[int, int] = (STEPS_MIN, STEPS_MAX)) -> np.ndarray:
    lo, hi = steps_range
    steps = (min(max(theta.steps, lo), hi) - lo) / (hi - lo)
    logs = [
        math.log10(max(v, 1e-30)) for v in (*theta.style_weights, theta.content_weight, theta.tv, theta.lr)
    ]
    return np.array([*logs, steps])


def _decode(v: Sequence[float], steps_range: tuple[int, int] = (STEPS_MIN, STEPS_MAX)) -> Theta:
    *logs, s = (float(x) for x in v)
    *w, c, tv, lr = (10.0**x for x in logs)
    steps = int(round(steps_range[0] + min(max(s, 0.0), 1.0) * (steps_range[1] - steps_range[0])))
    return Theta(tuple(w), c, tv, lr, steps)


def search_box(start: Theta) -> tuple[list[float], list[float]]:
    """Box bounds of the encoded search space around ``start``: ``(low, high)`` per coordinate.

    Weights ±:data:`LOG_RANGE` decades, lr :data:`LR_LOG_RANGE` decades around ``start.lr``,
    steps [0, 1]. The untuned θ always lies inside (its lr included).
    """
    x0 = _encode(start)
    lo = [x - LOG_RANGE for x in x0[:-2]] + [x0[-2] + LR_LOG_RANGE[0], 0.0]
    hi = [x + LOG_RANGE for x in x0[:-2]] + [x0[-2] + LR_LOG_RANGE[1], 1.0]
    return lo, hi


def _save(path: Path | None, state) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            pickle.dump(state, fh)
        os.replace(tmp, path)


def tune(
    objective,
    start: Theta,
    *,
    generations: int = 4,
    popsize: int | None = None,
    sigma0: float = 1.0,
    seed: int = 0,
    steps_range: tuple[int, int] = (STEPS_MIN, STEPS_MAX),
    state_path: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> dict:
    """CMA-ES over θ: ``objective(list_of_Theta) -> list of losses`` evaluates a whole generation at once.

    The search runs in the encoded space of :func:`_encode` (log10 weights and lr,
    steps in [0, 1] onto ``steps_range``) inside :func:`search_box`, from ``start``, with step
    size ``sigma0`` (0.3·``sigma0`` for the steps coordinate) and ``popsize`` candidates per
    generation (``None``: :func:`default_popsize`). With ``state_path``, the CMA-ES state and
    history are pickled there after every generation (written atomically) and a later call
    with the same path continues from them (resumable runs). Returns ``{"best": Theta,
    "best_loss", "history", "settings"}`` (settings: σ0, population, bounds, steps range).
    """
    import cma

    lo, hi = search_box(start)
    x0 = np.clip(_encode(start, steps_range), lo, hi)
    popsize = popsize or default_popsize(len(x0))
    stds = [1.0] * (len(x0) - 1) + [0.3]
    settings = {
        "method": "CMA-ES (cma " + cma.__version__ + ")",
        "sigma0": sigma0,
        "popsize": popsize,
        "generations": generations,
        "evaluations": popsize * generations,
        "CMA_stds": stds,
        "bounds": [lo, hi],
        "x0": x0.tolist(),
        "steps_range": list(steps_range),
        "encoding": "log10 of style weights, content weight, TV, lr; steps in [0, 1]",
    }
    path = Path(state_path) if state_path else None
    if path is not None and path.is_file():
        with open(path, "rb") as fh:
            es, history = pickle.load(fh)
        print(f"CMA-ES: resuming from {path} after generation {len(history)}.")
    else:
        opts = {"popsize": popsize, "seed": seed + 1, "bounds": [lo, hi], "CMA_stds": stds, "verbose": -9}
        es, history = cma.CMAEvolutionStrategy(x0.tolist(), sigma0, opts), []
    show = config.show_progress() if progress is None else progress
    for _ in tqdm(range(len(history), generations), desc="CMA-ES", disable=not show):
        xs = es.ask()
        thetas = [_decode(x, steps_range) for x in xs]
        losses = [float(v) for v in objective(thetas)]
        es.tell(xs, losses)
        k = int(np.argmin(losses))
        history.append(
            {
                "generation": len(history) + 1,
                "losses": losses,
                "best_loss": losses[k],
                "best": thetas[k].to_dict(),
                "mean": _decode(es.mean, steps_range).to_dict(),
            }
        )
        _save(path, (es, history))
    best = min(history, key=lambda h: h["best_loss"])
    return {
        "best": Theta.from_dict(best["best"]),
        "best_loss": best["best_loss"],
        "history": history,
        "settings": settings,
    }


def random_search(
    objective,
    start: Theta,
    *,
    evaluations: int,
    batch: int = 10,
    seed: int = 0,
    steps_range: tuple[int, int] = (STEPS_MIN, STEPS_MAX),
    progress: bool | None = None,
) -> dict:
    """The baseline: ``evaluations`` θ drawn uniformly from :func:`search_box`, in batches of ``batch``.

    Same encoded space and box as :func:`tune`, so an equal ``evaluations`` is an equal budget.
    Returns ``{"best": Theta, "best_loss", "history", "settings"}`` like :func:`tune`.
    """
    lo, hi = (np.asarray(b) for b in search_box(start))
    rng = np.random.default_rng(seed + 1000)
    history = []
    show = config.show_progress() if progress is None else progress
    for g in tqdm(range(0, evaluations, batch), desc="random search", disable=not show):
        thetas = [
            _decode(lo + rng.random(len(lo)) * (hi - lo), steps_range)
            for _ in range(min(batch, evaluations - g))
        ]
        losses = [float(v) for v in objective(thetas)]
        k = int(np.argmin(losses))
        history.append(
            {
                "generation": len(history) + 1,
                "losses": losses,
                "best_loss": losses[k],
                "best": thetas[k].to_dict(),
            }
        )
    best = min(history, key=lambda h: h["best_loss"])
    settings = {
        "method": "uniform random search in the same box",
        "evaluations": evaluations,
        "batch": batch,
        "bounds": [lo.tolist(), hi.tolist()],
        "steps_range": list(steps_range),
    }
    return {
        "best": Theta.from_dict(best["best"]),
        "best_loss": best["best_loss"],
        "history": history,
        "settings": settings,
    }
