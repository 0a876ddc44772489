"""Incremental inference for occlusion: recompute only the receptive-field cone of a patch.

Nakandala, Kumar & Papakonstantinou (SIGMOD 2019), "Incremental and Approximate
Inference for Faster Occlusion-based Deep CNN Explanations" (the Krypton system).
An occluded patch changes only the units whose receptive field meets it. The
activations of the unoccluded image are computed once (the *cache*); for each
batch of occluded copies, every layer recomputes only the output box that its
changed input box can reach (grown by the kernel, divided by the stride,
clipped to the map) and reads the rest from the cache. Convolutions (also
depthwise and strided), max/avg pooling, pointwise layers (BatchNorm in eval
mode, ReLU, ReLU6, …), residual addition and channel concatenation keep a box;
a global operation (adaptive pooling, flatten, linear, the squeeze-excitation
scale) makes the change global, and everything after it runs in full. A
module type without a rule is also run in full (announced once per model).

The model is traced with ``torch.fx`` on a private copy (BatchNorm folded into
the convolution before it when ``fold=True``), so the caller's model is never
touched. Used by :func:`introspect_lab.attribution.occlusion` (``method=``).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.experimental.optimization import fuse as fx_fuse

from ..hooks import weights_key
from .compiled import frozen_for_inference
from .layer_rules import LocalRule, axis_cone, classify, local_rule

__all__ = ["IncrementalForward", "LayerCost", "IncrementalWarning"]


class IncrementalWarning(UserWarning):
    """Part of the model is recomputed in full (no incremental rule, or a global operation)."""


@dataclass
class _Region:
    """A map equal to the cache except inside one box per copy: ``values[n]`` at (``top[n]``, ``left[n]``)."""

    values: torch.Tensor  # [N, C, h, w]
    top: list[int]
    left: list[int]
    cone: list[tuple[int, int, int, int]]  # per copy, the exact changed units: rows r0..r1, cols c0..c1


@dataclass
class LayerCost:
    """Multiply-adds of one convolution over all occluded copies: full, actually computed, and the exact cone.

    ``cone`` counts, per copy, the units whose receptive field meets the patch (before boxes of a
    batch are made the same size): the theoretical saving of Krypton. ``seconds`` is the time spent
    in this layer's incremental step (crop, paste, convolution).
    """

    name: str
    full: int = 0
    done: int = 0
    cone: int = 0
    seconds: float = 0.0

    @property
    def saved(self) -> float:
        """Share of the full multiply-adds not computed."""
        return 1 - self.done / max(self.full, 1)

    @property
    def saved_cone(self) -> float:
        """Share saved if each copy recomputed exactly its own receptive-field cone."""
        return 1 - self.cone / max(self.full, 1)


def _same_size(lo: list[int], hi: list[int], n_out: int, cap: int | None) -> tuple[list[int], int]:
    """One box size for the whole batch (the largest cone), each box shifted to stay inside the map."""
    size = max(1, max(h - lo_ + 1 for lo_, h in zip(lo, hi)))
    if cap is not None and size > cap:  # approximate: keep only a centred part of the cone
        size = cap
        lo = [(lo_ + h + 1 - size) // 2 for lo_, h in zip(lo, hi)]
    return [min(max(lo_, 0), n_out - size) for lo_ in lo], size


def _paste(dest: torch.Tensor, region: _Region, top: list[int], left: list[int]) -> torch.Tensor:
    """Write each copy's box of ``region`` into ``dest[n]``, whose corner is at (``top[n]``, ``left[n]``)."""
    h, w = region.values.shape[-2:]
    H, W = dest.shape[-2:]
    for n, (rt, rl, dt, dl) in enumerate(zip(region.top, region.left, top, left)):
        r0, c0 = max(rt - dt, 0), max(rl - dl, 0)
        r1, c1 = min(rt - dt + h, H), min(rl - dl + w, W)
        if r0 < r1 and c0 < c1:
            dest[n, :, r0:r1, c0:c1] = region.values[
                n, :, r0 - rt + dt : r1 - rt + dt, c0 - rl + dl : c1 - rl + dl
            ]
    return dest


_FAST = torch.channels_last  # 2× faster convolutions on a CPU (oneDNN) than NCHW


def _crop(cache: torch.Tensor, top: list[int], left: list[int], h: int, w: int) -> torch.Tensor:
    """Stack of ``cache[0, :, top[n]:top[n]+h, left[n]:left[n]+w]`` over the copies (channels-last)."""
    out = torch.empty(len(top), cache.shape[1], h, w, dtype=cache.dtype, memory_format=_FAST)
    for n, (t, c) in enumerate(zip(top, left)):
        out[n] = cache[0, :, t : t + h, c : c + w]
    return out


def _materialize(cache: torch.Tensor, region: _Region) -> torch.Tensor:
    """The full maps ``[N, ...]``: the cache with each copy's box pasted in."""
    full = torch.empty(len(region.top), *cache.shape[1:], dtype=cache.dtype, memory_format=_FAST)
    full.copy_(cache.expand_as(full))
    return _paste(full, region, [0] * len(region.top), [0] * len(region.top))


@dataclass(eq=False)
class IncrementalForward:
    """Exact incremental inference of ``model`` for copies of one image that differ inside a box.

    Krypton (Nakandala et al., SIGMOD 2019). ``IncrementalForward(model)`` traces a private,
    eval-mode copy (``fold=True`` folds BatchNorm into the convolutions);
    :meth:`cache` runs the unoccluded image ``[1,3,H,W]`` once and keeps every activation;
    :meth:`__call__` takes the new pixel values inside one box per copy and returns the model's
    outputs for the copies. ``cap=τ`` turns on Krypton's approximate projective-field
    thresholding: a layer's recomputed box is at most ``τ`` of the map per axis (centred on the cone),
    the rest of the change is dropped. ``tail`` is the ``cover`` of :meth:`compile_tail` (None: never
    run a tail in full, so that ``costs`` count every layer's cone). ``costs`` holds
    per-convolution :class:`LayerCost` counters; ``full_from`` names the nodes run in full that are not the
    head; ``boxes`` maps ``"input"`` and each node run incrementally (by module name) to copy 0's box
    ``(top, left, h, w, H, W)`` in the last call.
    """

    model: nn.Module = field(repr=False)
    fold: bool = True
    cap: float | None = None
    tail: float | None = 0.75
    costs: dict[str, LayerCost] = field(default_factory=dict, repr=False)
    full_from: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._weights = weights_key(self.model)  # the weights this engine's copy has
        net = copy.deepcopy(self.model).eval()
        for m in net.modules():
            if getattr(m, "inplace", False):
                m.inplace = False
        try:
            gm = fx_fuse(net, inplace=True) if self.fold else fx.symbolic_trace(net)
        except Exception as err:  # control flow on values, unsupported ops
            raise TypeError(
                f"{type(self.model).__name__} cannot be traced by torch.fx ({err}); use method='plain'."
            ) from None
        self.gm = gm.to(memory_format=_FAST)
        self.nodes = list(gm.graph.nodes)
        self.kind = {
            n: classify(gm, n) for n in self.nodes if n.op not in ("placeholder", "get_attr", "output")
        }
        self.rules = {n: local_rule(gm.get_submodule(n.target)) for n in self.kind if self.kind[n] == "local"}
        self._values: dict = {}
        self._padded: dict = {}
        self._tail = None
        self.tail_from: str | None = None
        self.boxes: dict[str, tuple[int, ...]] = {}
        self.costs = {
            n.target: LayerCost(n.target)
            for n in self.nodes
            if n.op == "call_module" and isinstance(gm.get_submodule(n.target), (nn.Conv2d, nn.Linear))
        }
        self._announce()

    def _announce(self) -> None:
        """Static pass: which nodes run in full; warn once if that is more than the head."""
        full: set = set()
        unknown = []
        for n in self.kind:
            deps = [a for a in n.all_input_nodes if a.op != "get_attr"]
            if self.kind[n] in ("global", "unknown") or any(a in full for a in deps):
                full.add(n)
                if self.kind[n] == "unknown" and not any(a in full for a in deps):
                    unknown.append(n.name)
        convs = [n for n in full if n in self.rules]
        self.full_from = [
            n.name for n in self.nodes if n in full and not any(a in full for a in n.all_input_nodes)
        ]
        if unknown or convs:
            warnings.warn(
                f"incremental occlusion: {', '.join(unknown) or 'a global operation'} "
                f"(no rule for a changed box, or a squeeze-excitation-like global step) makes the change "
                f"global; {len(convs)} convolution(s) after it are recomputed in full. The map stays exact.",
                IncrementalWarning,
                stacklevel=3,
            )

    @torch.inference_mode()
    def cache(self, x: torch.Tensor) -> torch.Tensor:
        """Run the unoccluded image ``x`` ``[1,3,H,W]`` once, keeping every node's output; return the
        output.
        """
        if x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"cache() takes one image [1,3,H,W], got {tuple(x.shape)}.")
        values: dict = {}
        for n in self.nodes:
            if n.op == "placeholder":
                values[n] = x.contiguous(memory_format=_FAST)
            elif n.op == "get_attr":
                values[n] = self.gm.get_parameter(n.target) if "." in n.target else getattr(self.gm, n.target)
            elif n.op == "output":
                out = fx.node.map_arg(n.args[0], lambda a: values[a])
            else:
                values[n] = self._run_node(n, values)
        old = next((v for n, v in self._values.items() if n.op == "placeholder"), None)
        if old is None or old.shape != x.shape:
            self._tail = None
        self._values, self._padded = values, {}
        return out

    def release(self) -> None:
        """Drop the cached activations (a few hundred MB for a large image); :meth:`cache` refills them.

        :func:`~introspect_lab.attribution.occlusion` calls it when it is done; the counters
        (``costs``, ``boxes``, ``full_from``) are kept.
        """
        self._values, self._padded, self._tail = {}, {}, None

    def _run_node(self, n: fx.Node, values: dict):
        args = fx.node.map_arg(n.args, lambda a: values[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: values[a])
        if n.op == "call_module":
            return self.gm.get_submodule(n.target)(*args, **kwargs)
        if n.op == "call_function":
            return n.target(*args, **kwargs)
        return getattr(args[0], n.target)(*args[1:], **kwargs)

    def _padded_cache(self, n: fx.Node, rule: LocalRule) -> torch.Tensor:
        """The cached input of local node ``n``, padded as the layer pads (zeros, or −∞ for max pooling)."""
        if n not in self._padded:
            src = self._values[n.args[0]]
            out = self._values[n]
            extra = [
                max(
                    0,
                    (out.shape[2 + a] - 1) * rule.s[a]
                    + rule.d[a] * (rule.k[a] - 1)
                    + 1
                    - src.shape[2 + a]
                    - 2 * rule.p[a],
                )
                for a in range(2)
            ]
            pads = (rule.p[1], rule.p[1] + extra[1], rule.p[0], rule.p[0] + extra[0])
            self._padded[n] = F.pad(src, pads, value=rule.pad_value) if any(pads) else src
        return self._padded[n]

    def _local(self, n: fx.Node, region: _Region) -> _Region:
        rule = self.rules[n]
        out = self._values[n]
        H, W = out.shape[-2:]
        h, w = region.values.shape[-2:]
        cap_r = None if self.cap is None else max(1, math.ceil(self.cap * H))
        cap_c = None if self.cap is None else max(1, math.ceil(self.cap * W))
        top, oh = _same_size(*axis_cone(region.top, [t + h - 1 for t in region.top], rule, 0, H), H, cap_r)
        left, ow = _same_size(*axis_cone(region.left, [c + w - 1 for c in region.left], rule, 1, W), W, cap_c)
        r0, r1, c0, c1 = zip(*region.cone)
        (lo_r, hi_r), (lo_c, hi_c) = axis_cone(r0, r1, rule, 0, H), axis_cone(c0, c1, rule, 1, W)
        kh, kw = (rule.d[a] * (rule.k[a] - 1) + 1 for a in range(2))
        ih, iw = (oh - 1) * rule.s[0] + kh, (ow - 1) * rule.s[1] + kw
        src = self._padded_cache(n, rule)
        ctop, cleft = [t * rule.s[0] for t in top], [c * rule.s[1] for c in left]
        shifted = _Region(
            region.values, [t + rule.p[0] for t in region.top], [c + rule.p[1] for c in region.left], []
        )
        crop = _paste(_crop(src, ctop, cleft, ih, iw), shifted, ctop, cleft)
        cost = self.costs.get(n.target)
        if cost is not None:
            per_copy = rule.macs_per_unit
            cost.full += len(top) * per_copy * H * W
            cost.done += len(top) * per_copy * oh * ow
            cost.cone += per_copy * sum(
                (b - a + 1) * (d - c + 1) for a, b, c, d in zip(lo_r, hi_r, lo_c, hi_c)
            )
        return _Region(rule.run(crop), top, left, list(zip(lo_r, hi_r, lo_c, hi_c)))

    def _union(self, n: fx.Node, regions: list[tuple[fx.Node, _Region]]) -> tuple[list, list[int], list[int]]:
        """Each operand over one common box per copy (the union of their boxes)."""
        H, W = self._values[n].shape[-2:] if isinstance(self._values[n], torch.Tensor) else (0, 0)
        lo_r = [min(r.top[i] for _, r in regions) for i in range(len(regions[0][1].top))]
        hi_r = [max(r.top[i] + r.values.shape[2] - 1 for _, r in regions) for i in range(len(lo_r))]
        lo_c = [min(r.left[i] for _, r in regions) for i in range(len(lo_r))]
        hi_c = [max(r.left[i] + r.values.shape[3] - 1 for _, r in regions) for i in range(len(lo_r))]
        top, oh = _same_size(lo_r, hi_r, H, None)
        left, ow = _same_size(lo_c, hi_c, W, None)
        out = [_paste(_crop(self._values[a], top, left, oh, ow), r, top, left) for a, r in regions]
        return out, top, left

    def _step(self, n: fx.Node, state: dict):
        """Propagate node ``n``: returns a _Region, or a full tensor ``[N, ...]``."""
        kind = self.kind[n]
        deps = [a for a in n.all_input_nodes if a in state]
        regions = all(isinstance(state[a], _Region) for a in deps)
        if kind == "local" and regions:
            return self._local(n, state[n.args[0]])
        if kind == "pointwise" and regions and len(deps) == 1:
            r = state[deps[0]]
            vals = self._run_node(n, {**self._values, deps[0]: r.values})
            return _Region(vals, r.top, r.left, r.cone)
        if kind in ("binary", "cat") and regions and self._spatial_operands(n, deps):
            ops, top, left = self._union(n, [(a, state[a]) for a in deps])
            cones = zip(*(state[a].cone for a in deps))
            cone = [
                (min(b[0] for b in c), max(b[1] for b in c), min(b[2] for b in c), max(b[3] for b in c))
                for c in cones
            ]
            return _Region(self._run_node(n, {**self._values, **dict(zip(deps, ops))}), top, left, cone)
        full = {
            a: state[a] if not isinstance(state[a], _Region) else _materialize(self._values[a], state[a])
            for a in deps
        }
        return self._run_node(n, {**self._values, **full})

    def _spatial_operands(self, n: fx.Node, deps: list[fx.Node]) -> bool:
        """True when every tensor operand of ``n`` that is not a changed map is a per-channel constant."""
        shape = self._values[n].shape if isinstance(self._values[n], torch.Tensor) else None
        for a in n.all_input_nodes:
            v = self._values[a]
            if a not in deps and isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[-2:] != (1, 1):
                return False
        return (
            shape is not None
            and len(shape) == 4
            and all(self._values[a].shape[-2:] == shape[-2:] for a in deps)
        )

    @torch.inference_mode()
    def __call__(self, values: torch.Tensor, top: list[int], left: list[int]) -> torch.Tensor:
        """Outputs for copies of the cached image whose pixels in box ``n`` are ``values[n]``.

        ``values`` is ``[N,3,h,w]`` (every box the same size), at (``top[n]``, ``left[n]``).
        """
        if not self._values:
            raise RuntimeError("Call cache(x) with the unoccluded image first.")
        x = next(v for n, v in self._values.items() if n.op == "placeholder")
        h, w = values.shape[-2:]
        if any(t < 0 or t + h > x.shape[2] for t in top) or any(c < 0 or c + w > x.shape[3] for c in left):
            raise ValueError("every box must lie inside the image.")
        tail = self._tail if self._tail is not None and self._tail[2] == len(top) else None
        state: dict = {}
        for n in self.nodes:
            if n.op == "placeholder":
                cone = [(t, t + h - 1, c, c + w - 1) for t, c in zip(top, left)]
                state[n] = _Region(values.to(x.dtype), list(top), list(left), cone)
                self.boxes["input"] = (top[0], left[0], h, w, *x.shape[-2:])
            elif n.op == "output":
                return fx.node.map_arg(n.args[0], lambda a: self._full(a, state[a]))
            elif n in self.kind and any(a in state for a in n.all_input_nodes):
                start = time.perf_counter()
                state[n] = self._step(n, state)
                if isinstance(state[n], _Region):
                    r, (H, W) = state[n], self._values[n].shape[-2:]
                    self.boxes[_key(n)] = (r.top[0], r.left[0], *r.values.shape[-2:], H, W)
                if n.op == "call_module" and n.target in self.costs:
                    self.costs[n.target].seconds += time.perf_counter() - start
                    if not isinstance(state[n], _Region):
                        self._count_full(n, len(top))
                if tail is not None and n is tail[0]:
                    for m in tail[3]:
                        self._count_full(m, len(top))
                    return tail[1](self._full(n, state[n]))
        raise RuntimeError("the traced graph has no output node")

    def _full(self, n: fx.Node, state):
        return _materialize(self._values[n], state) if isinstance(state, _Region) else state

    def _count_full(self, n: fx.Node, copies: int) -> None:
        """Count a layer run in full on ``copies`` copies (done = cone = full)."""
        mod = self.gm.get_submodule(n.target)
        cost = self.costs[n.target]
        if isinstance(mod, nn.Linear):
            macs = mod.in_features * mod.out_features
        else:
            k = mod.kernel_size
            macs = self._values[n].numel() * (mod.in_channels // mod.groups) * k[0] * k[1]
        cost.full += copies * macs
        cost.done += copies * macs
        cost.cone += copies * macs

    def compile_tail(self, box: tuple[int, int], copies: int, cover: float | None = None) -> str | None:
        """Run the layers after the change covers ``cover`` of the map as one optimised full model.

        A probe with one ``box``-sized change at the centre of the image finds the first block
        boundary (a node through which everything flows) whose changed box covers at least
        ``cover`` of its map; the rest of the graph is traced, frozen and optimised for inference
        (TorchScript, oneDNN) for batches of ``copies`` once per model, weights and shape
        (:func:`~.compiled.frozen_for_inference`), and used when it reproduces the eager
        result. Exact either way; only the speed changes. Returns the boundary's name (or None).
        """
        cover = self.tail if cover is None else cover
        if cover is None:
            return None
        x = next(v for n, v in self._values.items() if n.op == "placeholder")
        (h, w), (H, W) = box, x.shape[-2:]
        self._tail, self.boxes = None, {}
        costs, self.costs = self.costs, {k: LayerCost(k) for k in self.costs}
        probe = self(
            x[:, :, (H - h) // 2 : (H - h) // 2 + h, (W - w) // 2 : (W - w) // 2 + w],
            [(H - h) // 2],
            [(W - w) // 2],
        )
        self.costs = costs
        area = {k: b[2] * b[3] / (b[4] * b[5]) for k, b in self.boxes.items()}
        cut = next((n for n in _cuts(self.nodes) if area.get(_key(n), 0.0) >= cover), None)
        if cut is None:
            return None
        tail = _tail_module(self.gm, self.nodes, cut)
        example = (
            self._values[cut].expand(copies, *self._values[cut].shape[1:]).contiguous(memory_format=_FAST)
        )

        def agrees(net) -> bool:
            with torch.no_grad():
                ref = tail(example)
                return torch.allclose(net(example), ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max()))

        part = ("tail", self.fold, cut.name)
        net = frozen_for_inference(lambda: tail, example, self.model, part, agrees, self._weights)
        net = tail if net is None else net  # not traceable: the eager tail is exact too
        rest = self.nodes[self.nodes.index(cut) + 1 :]
        convs = [m for m in rest if m.op == "call_module" and m.target in self.costs]
        self._tail = (cut, net, copies, convs)
        self.tail_from = cut.name
        del probe
        return cut.name


def _key(n: fx.Node) -> str:
    """A node's name in ``boxes``: the module's name for a module call, else the graph node's name."""
    return n.target if n.op == "call_module" else n.name


def _cuts(nodes: list[fx.Node]) -> list[fx.Node]:
    """Block boundaries: nodes after which no earlier value is used again (in graph order)."""
    index = {n: i for i, n in enumerate(nodes)}
    reach, cuts = 0, []
    for i, n in enumerate(nodes):
        if n.op == "get_attr":
            continue
        if reach <= i and n.op in ("call_module", "call_function", "call_method"):
            cuts.append(n)
        reach = max([reach, *(index[u] for u in n.users)])
    return cuts


def _tail_module(gm: fx.GraphModule, nodes: list[fx.Node], cut: fx.Node) -> fx.GraphModule:
    """The part of the graph after ``cut``, as a module taking ``cut``'s output."""
    graph = fx.Graph()
    env = {cut: graph.placeholder("x")}
    for n in nodes[nodes.index(cut) + 1 :]:
        for a in n.all_input_nodes:
            if a not in env:  # a parameter read before the cut
                env[a] = graph.node_copy(a)
        env[n] = graph.node_copy(n, lambda a: env[a])
    return fx.GraphModule(gm, graph)
