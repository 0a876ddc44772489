"""The package's argument checks, in one place: integers, probabilities, channels, ε budgets.

Each raises an error that names the argument and how to fix it, and
returns the value in its plain Python type. Image batches have their own
validator, :func:`introspect_lab.images.check_batch`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = ["check_int", "check_probability", "check_channel", "check_channels", "check_eps"]


def check_int(name: str, value, low: int) -> int:
    """``value`` as an int, which must be an integer ``≥ low`` (bools are not integers)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}.")
    return int(value)


def check_probability(name: str, value, *, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float in ``[0, 1]`` (``open_low``/``open_high``: excluding that end)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > 0 if open_low else value >= 0) and (value < 1 if open_high else value <= 1)
    if not ok:
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must be a number in {lo}0, 1{hi}, got {value!r}.")
    return float(value)


def check_channel(activations: torch.Tensor, channel: int, layer: str | None = None) -> int:
    """``channel`` if ``activations`` (``[B, C, …]``) has it; else an error naming the layer's channels."""
    check_channels(activations, [channel], layer)
    return int(channel)


def check_channels(activations: torch.Tensor, channels, layer: str | None = None) -> list[int]:
    """Every index of ``channels`` must be a channel of ``activations`` (``[B, C, …]``) at ``layer``."""
    where = "the layer" if layer is None else f"layer {layer!r}"
    if activations.dim() < 2:
        raise ValueError(
            f"{where[0].upper()}{where[1:]} output has shape {tuple(activations.shape)}; it has no channels."
        )
    n = activations.shape[1]
    chans = [int(c) for c in channels]
    bad = [c for c in chans if not 0 <= c < n]
    if bad:
        which = f"Channel {bad[0]} is" if len(bad) == 1 else f"Channels {bad} are"
        raise ValueError(f"{which} out of range: {where} has channels 0..{n - 1}.")
    return chans


def check_eps(eps, name: str = "eps") -> float:
    """A perturbation budget in pixel units of ``[0, 1]`` (e.g. ``2/255``), as a float."""
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps):
        raise TypeError(f"{name} must be a number in pixel units of [0, 1] (e.g. 2/255), got {eps!r}.")
    if eps < 0:
        raise ValueError(f"{name} must be ≥ 0 (a budget in pixel units of [0, 1], e.g. 2/255); got {eps}.")
    if eps > 1:
        raise ValueError(
            f"{name}={eps} is more than the whole pixel range [0, 1]; budgets are in [0, 1] units: "
            f"for {eps:g} grey levels pass {eps:g}/255."
        )
    return float(eps)
