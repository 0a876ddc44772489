"""Receptive fields: which input pixels can a unit of a layer see?

:func:`receptive_field` composes the layer arithmetic (kernel, stride,
padding, dilation) of the modules that run before the layer;
:func:`measure_receptive_field` checks it with gradients. Both are also
available from :mod:`introspect_lab.features`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .hooks import StopForward, capture, forward_hooks, frozen
from .images import check_batch
from .models import get_layer, model_info

__all__ = ["ReceptiveField", "receptive_field", "measure_receptive_field"]


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit of a layer, per axis ``(height, width)``.

    ``size`` r, ``jump`` j (input pixels between neighbouring units) and ``start`` (input
    coordinate of the centre of unit 0) follow the recursion of Araujo, Norris & Sim,
    "Computing Receptive Fields of Convolutional Neural Networks" (Distill 2019)::

        r_l = r_{l−1} + (k_l − 1)·j_{l−1}
        j_l = j_{l−1}·s_l
        start_l = start_{l−1} + ((k_l − 1)/2 − p_l)·j_{l−1}

    with ``k`` the effective kernel ``d(k − 1) + 1`` for dilation ``d``. Unit ``(i, j)``
    sees the input box centred at ``start + (i, j)·jump`` of side ``size``.
    ``global_`` is True after a global pooling or a linear layer (the whole image).
    """

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    global_: bool = False

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Input box ``(top, left, bottom, right)`` of unit ``(i, j)``, end-exclusive, clipped to the
        image.
        """
        if self.global_:
            return (0, 0, self.input_size[0], self.input_size[1])
        out = []
        for axis, pos in enumerate((i, j)):
            centre = self.start[axis] + pos * self.jump[axis]
            lo = int(np.ceil(centre - (self.size[axis] - 1) / 2))
            hi = int(np.floor(centre + (self.size[axis] - 1) / 2)) + 1
            out.append((max(lo, 0), min(hi, self.input_size[axis])))
        (top, bottom), (left, right) = out
        return (top, left, bottom, right)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


_SKIP_BRANCHES = ("downsample", "shortcut")


def receptive_field(
    model: nn.Module, layer: str, input_size: int | tuple[int, int] | None = None
) -> ReceptiveField:
    """Receptive field of ``layer`` from the layer arithmetic (kernel, stride, padding, dilation).

    The convolutions and poolings that run before ``layer``'s output, in call order, are
    composed with the recursion in :class:`ReceptiveField`. Parallel branches are handled
    for the architectures of this package: identity skips (EfficientNet, ResNet) add
    nothing, stride-1 branches of equal output (SqueezeNet's fire modules) give the larger
    kernel, and ResNet's 1×1 ``downsample`` shortcuts are skipped (their field is inside
    the main path's). Check any other architecture with :func:`measure_receptive_field`.
    """
    size = input_size or model_info(model).input_size
    hw = _pair(size)
    target = get_layer(model, layer)
    calls: list[tuple[str, nn.Module]] = []
    out_shape: list[tuple[int, ...]] = []

    def record(name):
        def hook(module, inputs, output):
            calls.append((name, module))

        return hook

    def stop_hook(module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        out_shape.append(tuple(out.shape))
        raise StopForward

    device = next(model.parameters()).device
    hooks = [(name, record(name)) for name, module in model.named_modules() if not list(module.children())]
    with (
        forward_hooks(model, [*hooks, (target, stop_hook)], inplace_off=False),
        frozen(model),
        torch.no_grad(),
    ):
        try:
            model(torch.zeros(1, 3, *hw, device=device))
        except StopForward:
            pass
    if not out_shape:
        raise ValueError(f"Layer {layer!r} did not run in the forward pass.")
    r, j, start, glob = [1, 1], [1, 1], [0.0, 0.0], False
    for name, module in calls:
        if any(part in _SKIP_BRANCHES for part in name.split(".")):
            continue
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
            d = _pair(getattr(module, "dilation", 1))
            pad = module.padding
            if isinstance(pad, str):
                pad = tuple((d[a] * (k[a] - 1)) // 2 if pad == "same" else 0 for a in range(2))
            p = _pair(pad)
            for a in range(2):
                keff = d[a] * (k[a] - 1) + 1
                start[a] += ((keff - 1) / 2 - p[a]) * j[a]
                r[a] += (keff - 1) * j[a]
                j[a] *= s[a]
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear)):
            glob = True
    shape = out_shape[0]
    out_hw = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
    if len(shape) != 4:
        glob = True
    return ReceptiveField(layer, (r[0], r[1]), (j[0], j[1]), (start[0], start[1]), hw, out_hw, glob)


def measure_receptive_field(
    model: nn.Module,
    layer: str,
    position: tuple[int, int] | None = None,
    *,
    input_size: int | tuple[int, int] | None = None,
    channel: int | None = None,
    x: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """Receptive field measured with gradients: the box of pixels with ``∂h/∂x ≠ 0``.

    ``h`` is the activation of ``layer`` at ``position`` (default: the centre unit),
    summed over channels (or one ``channel``), for input ``x`` (default: standard normal
    noise, seeded). Returns ``((top, left, bottom, right), mask)`` with ``mask[H, W]`` True
    where some colour channel of the gradient is non-zero. Dead or saturated units can
    only shrink the measured box, so on a random input it matches :func:`receptive_field`.
    """
    hw = _pair(input_size or model_info(model).input_size)
    device = next(model.parameters()).device
    if x is None:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 3, *hw, generator=gen)
    check_batch(x, "x", single=False)
    x = x[:1].detach().clone().to(device).requires_grad_(True)
    with frozen(model), capture(model, layer, detach=False, stop=True) as cap:
        cap.run(x)
        act = cap.activations[layer]
        if act.dim() != 4:
            raise ValueError(f"Layer {layer!r} outputs shape {tuple(act.shape)}; pick a conv layer.")
        i, j = position if position is not None else (act.shape[2] // 2, act.shape[3] // 2)
        if not (0 <= i < act.shape[2] and 0 <= j < act.shape[3]):
            raise ValueError(
                f"position {(i, j)} is outside the {act.shape[2]}×{act.shape[3]} map of {layer!r}."
            )
        h = act[0, :, i, j].sum() if channel is None else act[0, channel, i, j]
        (grad,) = torch.autograd.grad(h, x)
    mask = (grad[0] != 0).any(0).cpu()
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        return (0, 0, 0, 0), mask
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1), mask
