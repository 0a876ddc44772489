"""TorchScript-frozen inference copies, built once per model, weights and input shape.

``torch.jit.freeze`` embeds every weight in the frozen graph as a constant, and
PyTorch never frees those constants, even after the frozen module is gone
(pytorch/pytorch#96726, #35600): each freeze of a model keeps one more copy of
its weights for the life of the process. Occlusion used to freeze on every
call, so an explorer slider leaked a model per move (VGG-16 at 64 px: about
1 GB per call). Here each frozen copy is built once and reused for as long as
the model lives and its weights are unchanged; the memory kept is bounded by
the number of (model, weights, part, input shape) combinations used, and
models with more than :data:`FREEZE_LIMIT` bytes of weights (AlexNet, the VGGs)
are not frozen at all: they gain little from it (AlexNet: none, measured) and
would keep hundreds of MB per shape.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable, Hashable

import torch
from torch import nn

from ..hooks import weights_key

__all__ = [
    "FREEZE_LIMIT",
    "NOT_TRACEABLE",
    "agrees_with",
    "fast_inference",
    "frozen_for_inference",
]

#: Models with more bytes of weights than this are never frozen (their copy could not be freed).
FREEZE_LIMIT = 100_000_000

#: What TorchScript tracing and torch.fx raise on a model they cannot compile or run (data-dependent
#: control flow, non-tensor outputs, unsupported modules); ``torch.fx.proxy.TraceError`` is a ``ValueError``.
NOT_TRACEABLE = (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError)

#: owner model -> {key: frozen module, or None when it did not reproduce the eager result}
_FROZEN: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def frozen_for_inference(
    build: Callable[[], nn.Module],
    example: torch.Tensor,
    owner: nn.Module,
    part: Hashable,
    agrees: Callable[[nn.Module], bool],
    weights: tuple | None = None,
) -> torch.jit.ScriptModule | None:
    """``build()`` traced on ``example``, frozen and optimised for inference (oneDNN on a CPU), or None.

    ``build()`` makes a private copy of (part of) the caller's ``owner``; ``part`` names which
    part. The result is cached on ``owner`` (weakly) under ``part``, ``example``'s shape, dtype,
    device and memory format, and ``weights`` (default: ``hooks.weights_key(owner)`` now);
    entries for other weights of ``owner`` are dropped. ``agrees(candidate)`` decides whether
    the frozen module reproduces the eager one; None (also cached) means it did not, or the
    copy does not trace, or ``owner`` has more than :data:`FREEZE_LIMIT` bytes of weights.
    Source: ``torch.jit.trace``, ``torch.jit.freeze``, ``torch.jit.optimize_for_inference``.
    """
    if sum(t.numel() * t.element_size() for t in owner.parameters()) > FREEZE_LIMIT:
        return None
    state = weights_key(owner) if weights is None else weights
    cl = example.dim() == 4 and example.is_contiguous(memory_format=torch.channels_last)
    key = (part, tuple(example.shape), example.dtype, example.device, cl)
    per_model = _FROZEN.setdefault(owner, {})
    if per_model.get("weights") != state:
        per_model.clear()
        per_model["weights"] = state
    if key not in per_model:
        per_model[key] = _freeze(build(), example, agrees)
    return per_model[key]


def _freeze(net: nn.Module, example: torch.Tensor, agrees) -> torch.jit.ScriptModule | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(net, example, check_trace=False)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            return frozen if agrees(frozen) else None
        except NOT_TRACEABLE:
            return None  # TorchScript cannot trace or run it (control flow on values, unsupported ops)


def agrees_with(model: nn.Module, example: torch.Tensor) -> Callable[[nn.Module], bool]:
    """A check that a candidate reproduces ``model(example)`` to 1e-3 of its largest value.

    The reference output is computed on first use only (a cached copy needs no check).
    """
    ref: list[torch.Tensor] = []

    def agrees(net: nn.Module) -> bool:
        with torch.no_grad():
            if not ref:
                ref.append(model(example))
            out = net(example.contiguous(memory_format=torch.channels_last))
        r = ref[0]
        return (
            isinstance(out, torch.Tensor)
            and out.shape == r.shape
            and float((out - r).abs().max()) < 1e-3 * (float(r.abs().max()) + 1e-6)
        )

    return agrees


def fast_inference(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model``'s frozen inference copy for ``example``-shaped batches (:func:`frozen_for_inference`), else
    ``model``.

    The same function up to float rounding (checked by :func:`agrees_with`); 2× faster for the
    bundled model on a CPU. Feed it channels-last batches. Built once per model, weights and shape.
    """
    build = lambda: copy.deepcopy(model).eval()  # noqa: E731
    net = frozen_for_inference(build, example, model, "whole", agrees_with(model, example))
    return model if net is None else net
