"""Backpropagation to the input, with the ordinary or a modified ReLU rule.

:func:`backprop` gives ``∂ objective / ∂x`` where the objective is a class
score or one neuron of a layer; :func:`modified_relus` swaps the backward
rule of every ``nn.ReLU``/``nn.ReLU6`` for guided backprop (Springenberg et
al. 2015) or the deconvnet (Zeiler & Fergus 2014), lecture 004's
"guided backprop" slide. Its hooks are placed through
:func:`introspect_lab.hooks.forward_hooks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ..devices import returns_to_input_device
from ..hooks import capture, forward_hooks, frozen
from ..models import get_layer
from ..validation import check_channel
from .base import Target, logits_of, resolve_targets

__all__ = ["backprop", "modified_relus", "neuron_value"]


class _RuleReLU(torch.autograd.Function):
    """Forward: ``clamp(z, lo, hi)`` (a ReLU or ReLU6). Backward: a modified rule."""

    @staticmethod
    def forward(ctx, z, lo, hi, rule):  # noqa: D401
        ctx.save_for_backward(z)
        ctx.lo, ctx.hi, ctx.rule = lo, hi, rule
        return z.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        grad = grad.clamp(min=0)  # both rules pass only positive signals back
        if ctx.rule == "guided":
            grad = grad * (z > ctx.lo).to(grad.dtype)
        if ctx.hi is not None:
            grad = grad * (z < ctx.hi).to(grad.dtype)  # the cap at 6 keeps its ordinary gradient
        return grad, None, None, None


def _relu_bounds(module: nn.Module) -> tuple[float, float | None] | None:
    if isinstance(module, nn.ReLU):
        return 0.0, None
    if isinstance(module, nn.ReLU6):
        return 0.0, 6.0
    return None


@contextmanager
def modified_relus(model: nn.Module, rule: str) -> Iterator[int]:
    """Swap the backward rule of every ``nn.ReLU`` / ``nn.ReLU6`` module inside the block.

    ``rule`` is ``"guided"`` (guided backprop) or ``"deconvnet"``. Placed with
    :func:`introspect_lab.hooks.forward_hooks`: each hook recomputes the
    activation through :class:`_RuleReLU` (in-place flags off meanwhile);
    hooks and flags are restored on exit, also after an exception. Yields
    the number of modified modules.
    """
    relus = [(m, b) for m in model.modules() if (b := _relu_bounds(m)) is not None]
    if not relus:
        raise ValueError(
            f"{rule} backprop changes the backward pass of nn.ReLU / nn.ReLU6 modules, and this model "
            "has none (functional relus, GELU or SiLU cannot be modified). Use saliency() or grad_cam() "
            "instead."
        )

    def make_hook(lo, hi):
        def hook(module, inputs, output):
            return _RuleReLU.apply(inputs[0], lo, hi, rule)

        return hook

    with forward_hooks(model, [(m, make_hook(lo, hi)) for m, (lo, hi) in relus]):
        yield len(relus)


def neuron_value(act: torch.Tensor, neuron) -> torch.Tensor:
    """One value per image of a layer output ``act`` ``[B,C,H,W]`` (or ``[B,C]``).

    ``neuron=c``: channel ``c`` at its strongest location; ``(c, i, j)``: one value.
    """
    b = act.shape[0]
    if isinstance(neuron, int):
        ch = act[:, check_channel(act, neuron)]
        if ch.dim() == 1:
            return ch
        return ch.reshape(b, -1).amax(1)
    if isinstance(neuron, (tuple, list)) and len(neuron) == act.dim() - 1:
        for n, size in zip(neuron, act.shape[1:]):
            if not 0 <= int(n) < size:
                raise ValueError(
                    f"Neuron {tuple(neuron)} is out of range for a layer output of shape "
                    f"{tuple(act.shape[1:])}."
                )
        return act[(slice(None), *[int(n) for n in neuron])]
    raise ValueError(
        f"neuron must be a channel (int) or a position (channel, row, col) for a layer output of "
        f"shape {tuple(act.shape[1:])}, got {neuron!r}."
    )


@returns_to_input_device("x")
def backprop(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    *,
    rule: str | None = None,
    layer: str | None = None,
    neuron=None,
) -> torch.Tensor:
    """``∂ objective / ∂x`` for a batch, where the objective is a class score or a neuron.

    The objective sums over the batch; in eval mode images do not interact,
    so each image gets the gradient of its own score.
    """
    if layer is not None and neuron is None:
        raise ValueError("With layer=... also give neuron= (a channel int or a (channel, row, col) tuple).")
    if neuron is not None and layer is None:
        raise ValueError("neuron= needs layer= (the name of the layer the neuron lives in).")
    if layer is not None:
        get_layer(model, layer)
    xg = x.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad():
        rules = modified_relus(model, rule) if rule else nullcontext()
        with rules:
            if layer is None:
                out = logits_of(model(xg))
                idx = resolve_targets(model, target, out)
                score = out.gather(1, idx[:, None]).sum()
            else:
                with capture(model, layer, detach=False, stop=True) as cap:
                    cap.run(xg)
                score = neuron_value(cap.activations[layer], neuron).sum()
            (grad,) = torch.autograd.grad(score, xg)
    return grad.detach()
