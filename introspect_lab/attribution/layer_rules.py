"""Which layers keep a changed box local, and how far: the rules of incremental occlusion.

Nakandala, Kumar & Papakonstantinou (SIGMOD 2019), Krypton. A sliding-window layer (convolution, also
depthwise and strided; max/avg pooling) maps changed input rows ``first..last`` to output rows
``⌈(first + p − k + 1)/s⌉ .. ⌊(last + p)/s⌋`` (``k`` the dilated kernel, clipped to the map);
pointwise layers keep the box; addition and channel concatenation take the union of their operands'
boxes; global operations (adaptive pooling, flatten, linear) make the change global.
Used by :mod:`.incremental`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["LocalRule", "local_rule", "classify", "axis_cone"]

_POINTWISE_MODULES = (
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
)
_POINTWISE_FUNCTIONS = {torch.relu, F.relu, F.relu6, torch.sigmoid, F.hardtanh, F.silu, F.gelu, torch.tanh}
_POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "clamp", "contiguous"}
_BINARY = {operator.add, operator.mul, operator.sub, operator.iadd, operator.imul, torch.add, torch.mul}
_BINARY_METHODS = {"add", "mul", "sub"}
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)


@dataclass
class LocalRule:
    """A sliding-window layer: kernel, stride, padding, dilation per axis and the op on a padding-free
    crop.
    """

    k: tuple[int, int]
    s: tuple[int, int]
    p: tuple[int, int]
    d: tuple[int, int]
    pad_value: float
    run: object  # callable: crop [N,C,h,w] -> output
    macs_per_unit: int


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def local_rule(module: nn.Module) -> LocalRule | None:
    """Sliding-window arithmetic of a conv/pool module, or None when there is no exact rule."""
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        k, s, d = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        pad = module.padding
        if isinstance(pad, str):
            if pad == "same" and any((d[a] * (k[a] - 1)) % 2 for a in range(2)):
                return None
            pad = tuple((d[a] * (k[a] - 1)) // 2 if pad == "same" else 0 for a in range(2))
        w, b, g = module.weight, module.bias, module.groups

        def run(z, w=w, b=b, s=s, d=d, g=g):
            return F.conv2d(z, w, b, s, 0, d, g)

        macs = module.out_channels * (module.in_channels // g) * k[0] * k[1]
        return LocalRule(k, s, _pair(pad), d, 0.0, run, macs)
    if isinstance(module, nn.MaxPool2d):
        k, d = _pair(module.kernel_size), _pair(module.dilation)
        s = _pair(module.stride or module.kernel_size)
        return LocalRule(k, s, _pair(module.padding), d, -math.inf, lambda z: F.max_pool2d(z, k, s, 0, d), 0)
    if isinstance(module, nn.AvgPool2d) and not module.ceil_mode and module.divisor_override is None:
        k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
        if p != (0, 0) and not module.count_include_pad:
            return None
        return LocalRule(k, s, p, (1, 1), 0.0, lambda z: F.avg_pool2d(z, k, s, 0), 0)
    return None


def classify(gm: fx.GraphModule, node: fx.Node) -> str:
    """Kind of a graph node: local, pointwise, binary, cat, global or unknown."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if local_rule(mod) is not None:
            return "local"
        if isinstance(mod, _POINTWISE_MODULES):
            return "pointwise"
        return "global" if isinstance(mod, _GLOBAL) else "unknown"
    if node.op == "call_function":
        if node.target in _POINTWISE_FUNCTIONS:
            return "pointwise"
        if node.target in _BINARY:
            return "binary"
        if node.target is torch.cat and (
            node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) == 1
        ):
            return "cat"
        if node.target in (torch.flatten, F.adaptive_avg_pool2d, F.linear):
            return "global"
    if node.op == "call_method":
        if node.target in _POINTWISE_METHODS:
            return "pointwise"
        if node.target in _BINARY_METHODS:
            return "binary"
        if node.target in ("flatten", "mean"):
            return "global"
    return "unknown"


def axis_cone(
    first: list[int], last: list[int], rule: LocalRule, axis: int, n_out: int
) -> tuple[list[int], list[int]]:
    """Output rows reached by input rows ``first..last`` (per copy, inclusive): the rows of the cone."""
    k, s, p = rule.d[axis] * (rule.k[axis] - 1) + 1, rule.s[axis], rule.p[axis]
    lo = [max(0, -((k - 1 - t - p) // s)) for t in first]  # ceil((t + p - k + 1) / s)
    hi = [min(n_out - 1, (t + p) // s) for t in last]
    return lo, hi
