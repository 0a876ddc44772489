"""Objectives for image synthesis, composable with ``+``, ``-`` and scalar ``*``.

The synthesis engine (:func:`introspect_lab.synthesis.synthesize`) always
**maximises** an objective. Losses from the lectures enter with a minus
sign, exactly as in "minimise L" = "maximise −L"::

    class_score(model, "tabby") - 1e-3 * l2()                 # seed 001: S_c(I) − λ‖I‖²
    -(feature_match("blocks.5", phi0) + 1e-2 * tv(beta=2))    # seed 002, Eq. 1
    -(content_loss("blocks.5", P) + 1e3 * style_loss(A, weights) + 1e-2 * tv())

A composed objective is a weighted sum of *terms*; each term knows which
layers it reads, so the engine can stop the forward pass after the deepest
one (Lucent's composable objectives, with explicit layer bookkeeping).

Two special layer names: ``"logits"`` is the model output, ``"input"`` the
image being optimised (before transforms, in normalised model space).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

import torch

from ..models import class_indices
from ..validation import check_channel

__all__ = [
    "Objective",
    "Context",
    "class_score",
    "neuron",
    "channel",
    "layer_activation",
    "dream",
    "feature_match",
    "content_loss",
    "gram",
    "gram_loss",
    "gram_error",
    "batch_sum",
    "layer_weights",
    "style_loss",
    "colour_statistics",
    "colour_loss",
]

LOGITS = "logits"
INPUT = "input"


@dataclass
class Context:
    """What a term can read: captured activations (plus ``"logits"``) and the image.

    ``image`` is the optimised image in normalised model space before any
    transform; ``input`` is what the model actually saw (after jitter etc.).
    """

    activations: Mapping[str, torch.Tensor]
    image: torch.Tensor
    input: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name == INPUT:
            return self.image
        try:
            return self.activations[name]
        except KeyError:
            raise KeyError(
                f"Layer {name!r} was not captured; an objective term must list it in its layers."
            ) from None


@dataclass(frozen=True)
class _Term:
    name: str
    fn: Callable[[Context], torch.Tensor]
    layers: frozenset[str]


@dataclass(frozen=True)
class Objective:
    """A weighted sum ``Σ_k w_k · term_k(I)`` that the engine maximises.

    Build terms with the functions of this module (and
    :mod:`introspect_lab.synthesis.priors`), then combine them:
    ``a + b``, ``a - b``, ``0.5 * a``, ``-a``, ``a / 2``, ``sum([a, b])``.
    """

    terms: tuple[tuple[float, _Term], ...] = field(default_factory=tuple)

    @staticmethod
    def term(name: str, fn: Callable[[Context], torch.Tensor], layers: Sequence[str] = ()) -> Objective:
        """A single term with weight 1; ``fn(ctx)`` returns a scalar tensor (summed over the batch)."""
        return Objective(((1.0, _Term(name, fn, frozenset(layers))),))

    @property
    def layers(self) -> frozenset[str]:
        """Every layer any term reads (including ``"logits"``/``"input"`` when used)."""
        out: set[str] = set()
        for _, t in self.terms:
            out |= t.layers
        return frozenset(out)

    @property
    def names(self) -> list[str]:
        return [t.name for _, t in self.terms]

    @property
    def weights(self) -> list[float]:
        return [w for w, _ in self.terms]

    def evaluate(self, ctx: Context) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective value and each weighted term's value (detached 0-dim tensors, for logs).

        The terms stay on the model's device: reading them as floats is left to whoever
        needs the numbers, so a synthesis loop does not wait for the GPU at every step.
        """
        total = None
        parts: dict[str, torch.Tensor] = {}
        for w, t in self.terms:
            v = t.fn(ctx)
            if v.dim() != 0:
                v = v.sum()
            key = t.name
            n = 2
            while key in parts:
                key = f"{t.name}#{n}"
                n += 1
            parts[key] = w * v.detach()
            total = w * v if total is None else total + w * v
        if total is None:
            raise ValueError("An empty objective has nothing to optimise; build one from at least one term.")
        return total, parts

    def __call__(self, ctx: Context) -> torch.Tensor:
        return self.evaluate(ctx)[0]

    # --- algebra -------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, Real) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __radd__(self, other):
        if isinstance(other, Real) and other == 0:  # sum([...]) starts from 0
            return self
        return NotImplemented

    def __neg__(self):
        return Objective(tuple((-w, t) for w, t in self.terms))

    def __sub__(self, other):
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k):
        if isinstance(k, Objective):
            raise TypeError("Objectives multiply by numbers only (a weight), not by another objective.")
        if isinstance(k, torch.Tensor) and k.numel() == 1:
            k = float(k)
        if not isinstance(k, Real):
            return NotImplemented
        k = float(k)
        if not math.isfinite(k):
            raise ValueError(f"An objective weight must be finite, got {k}.")
        return Objective(tuple((k * w, t) for w, t in self.terms))

    __rmul__ = __mul__

    def __truediv__(self, k):
        if not isinstance(k, Real):
            return NotImplemented
        if k == 0:
            raise ZeroDivisionError("Dividing an objective by 0.")
        return self * (1.0 / float(k))

    def __repr__(self) -> str:
        if not self.terms:
            return "Objective()"
        parts = []
        for i, (w, t) in enumerate(self.terms):
            sign = "-" if w < 0 else "+"
            mag = abs(w)
            body = t.name if mag == 1 else f"{mag:g}·{t.name}"
            parts.append((("-" if sign == "-" else "") if i == 0 else f" {sign} ") + body)
        return "Objective(" + "".join(parts) + ")"


def _check_layer(layer) -> str:
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"A layer is given by its name (a str such as 'blocks.5'), got {layer!r}.")
    return layer


def _channel_slice(act: torch.Tensor, ch: int, layer: str) -> torch.Tensor:
    return act[:, check_channel(act, ch, layer)]


# ---------------------------------------------------------------------------
# Activation maximisation (seeds 001, 003, 004)
# ---------------------------------------------------------------------------


def class_score(model, target) -> Objective:
    """``S_c(I)``: the class score *before* softmax (seed 001, "score for class c (before Softmax)").

    ``target`` is a class index or name (``"tabby"``), or one per image of
    the batch (resolved by :func:`introspect_lab.models.class_indices`). The
    value is summed over the batch.
    """
    many = isinstance(target, (list, tuple))
    idx = class_indices(model, target, len(target) if many else 1)

    def fn(ctx: Context) -> torch.Tensor:
        logits = ctx[LOGITS]
        b = logits.shape[0]
        if len(idx) not in (1, b):
            raise ValueError(f"Got {len(idx)} targets for a batch of {b} images; give one per image.")
        ids = torch.tensor(idx * b if len(idx) == 1 else idx, device=logits.device)
        return logits.gather(1, ids.view(-1, 1)).sum()

    label = idx if many and len(idx) > 1 else idx[0]
    return Objective.term(f"class_score[{label}]", fn, [LOGITS])


def neuron(layer: str, channel: int, x: int | None = None, y: int | None = None) -> Objective:
    """One unit ``h(I) = A[c, y, x]`` of a layer (centre position by default; seed 003's ``h_θ(x)``)."""
    layer = _check_layer(layer)

    def fn(ctx: Context) -> torch.Tensor:
        a = _channel_slice(ctx[layer], channel, layer)
        if a.dim() == 1:
            return a.sum()
        h, w = a.shape[-2:]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise ValueError(f"Position (y={yy}, x={xx}) is outside layer {layer!r}'s {h}×{w} map.")
        return a[..., yy, xx].sum()

    return Objective.term(f"neuron[{layer}:{channel}]", fn, [layer])


def channel(layer: str, channel: int) -> Objective:
    """Mean activation of one channel over all positions (per-channel feature visualisation, seed 003)."""
    layer = _check_layer(layer)

    def fn(ctx: Context) -> torch.Tensor:
        a = _channel_slice(ctx[layer], channel, layer)
        return a.reshape(a.shape[0], -1).mean(1).sum()

    return Objective.term(f"channel[{layer}:{channel}]", fn, [layer])


def layer_activation(layer: str) -> Objective:
    """Mean activation of a whole layer."""
    layer = _check_layer(layer)

    def fn(ctx: Context) -> torch.Tensor:
        a = ctx[layer]
        return a.reshape(a.shape[0], -1).mean(1).sum()

    return Objective.term(f"layer[{layer}]", fn, [layer])


def dream(layer: str, reduction: str = "mean") -> Objective:
    """DeepDream's ``Σ_i f_i(I)²`` at ``layer`` (seed 001: "set the gradient of the layer equal to its
    activation").

    ``reduction="sum"`` is the seed's formula; the default ``"mean"`` divides
    by the number of units so that weights do not depend on image size
    (the maximiser is the same).
    """
    layer = _check_layer(layer)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")

    def fn(ctx: Context) -> torch.Tensor:
        a = ctx[layer]
        sq = a.pow(2).reshape(a.shape[0], -1)
        return (sq.sum(1) if reduction == "sum" else sq.mean(1)).sum()

    return Objective.term(f"dream[{layer}]", fn, [layer])


# ---------------------------------------------------------------------------
# Matching features: inversion and content (seeds 001, 002)
# ---------------------------------------------------------------------------


def _target(target: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} needs the target features as a tensor (see synthesis.layer_features).")
    return target.detach()


def _match_shape(a: torch.Tensor, t: torch.Tensor, layer: str) -> torch.Tensor:
    if a.shape[1:] != t.shape[1:]:
        raise ValueError(
            f"Layer {layer!r} gives features of shape {tuple(a.shape[1:])} but the target has "
            f"{tuple(t.shape[1:])}; synthesise at the size the target image had."
        )
    return t.expand_as(a) if t.shape[0] == 1 else t


def feature_match(layer: str, target: torch.Tensor) -> Objective:
    """Normalised inversion loss ``‖Φ_k(I) − φ₀‖² / ‖φ₀‖²`` (seed 002, Eq. 1; Mahendran & Vedaldi 2015).

    A loss: use it with a minus sign. Summed over the batch.
    """
    layer = _check_layer(layer)
    t = _target(target, "feature_match")
    denom = t.pow(2).reshape(t.shape[0], -1).sum(1).clamp_min(1e-12)

    def fn(ctx: Context) -> torch.Tensor:
        a = ctx[layer]
        tt = _match_shape(a, t, layer)
        num = (a - tt).pow(2).reshape(a.shape[0], -1).sum(1)
        return (num / denom).sum()

    return Objective.term(f"feature_match[{layer}]", fn, [layer])


def batch_sum(values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum per-image values ``[B]`` over the batch, each times its ``weight`` (``[B]``) when given."""
    if weight is None:
        return values.sum()
    if weight.shape != values.shape:
        raise ValueError(
            f"Got per-image weights of shape {tuple(weight.shape)} for {values.shape[0]} images."
        )
    return (values * weight.to(values)).sum()


def content_loss(layer: str, target: torch.Tensor, weight: torch.Tensor | None = None) -> Objective:
    """Gatys' content loss ``½ Σ_ij (F^l_ij − P^l_ij)²`` (seed 001, "Combined loss"). A loss: subtract it.

    ``weight`` (``[B]``, optional) multiplies each image's loss before the batch sum, so
    one batch can hold several optimisations with their own weights.
    """
    layer = _check_layer(layer)
    t = _target(target, "content_loss")

    def fn(ctx: Context) -> torch.Tensor:
        a = ctx[layer]
        per_image = 0.5 * (a - _match_shape(a, t, layer)).pow(2).reshape(a.shape[0], -1).sum(1)
        return batch_sum(per_image, weight)

    return Objective.term(f"content[{layer}]", fn, [layer])


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``G_ij = Σ_k F_ik F_jk`` of a ``[B, N, H, W]`` batch → ``[B, N, N]`` (seed 001).

    ``F`` is the layer's features reshaped to ``N × M`` with ``M = H·W``.
    Not normalised: the ``1/(4 N² M²)`` of ``E_l`` lives in :func:`gram_loss`.
    """
    if features.dim() != 4:
        raise ValueError(f"gram() needs conv features [B, N, H, W], got shape {tuple(features.shape)}.")
    return _Gram.apply(features.reshape(features.shape[0], features.shape[1], -1))


class _Gram(torch.autograd.Function):
    """``F Fᵀ`` with the backward ``∂L/∂F = (Ḡ + Ḡᵀ) F``: one product where autograd takes two and a sum.

    Autograd sees ``F`` twice (as ``F`` and as ``Fᵀ``) and adds the two
    ``N × M`` gradients, one of them transposed in memory; folding the sum into
    the small ``N × N`` factor first saves most of that where ``M`` is large:
    forward and backward of a squared Gram error, one core, 8.5 → 2.5 ms for
    32 channels at 128 × 128; 1.0–1.4× faster on Lite0's smaller maps (24
    channels at 32 × 32: 0.9 → 0.6 ms). The backward is itself differentiable
    (double backward works).
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f)
        return f @ f.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ f


def gram_error(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """``E_l = 1/(4 N_l² M_l²) Σ_ij (G^l_ij − A^l_ij)²`` per image, ``[B]`` (Gatys et al. 2015, seed 001).

    The one Gram loss of the package: :func:`gram_loss` (the objective term)
    and :func:`introspect_lab.texture.gatys.style_losses` (reports) both call it.
    ``features`` is ``[B, N, H, W]`` (``N_l = N``, ``M_l = H·W`` of the
    *synthesised* image); ``target_gram`` is ``A^l`` (``[N, N]`` or ``[1|B, N, N]``).
    """
    t = target_gram.unsqueeze(0) if target_gram.dim() == 2 else target_gram
    g = gram(features)
    if g.shape[1:] != t.shape[1:]:
        raise ValueError(f"The Gram matrix is {tuple(g.shape[1:])} but the target is {tuple(t.shape[1:])}.")
    n, m = features.shape[1], features.shape[2] * features.shape[3]
    return (g - t).pow(2).sum(dim=(1, 2)) / (4.0 * n**2 * m**2)


def gram_loss(layer: str, target_gram: torch.Tensor, weight: torch.Tensor | None = None) -> Objective:
    """The Gram loss ``E_l`` (:func:`gram_error`) of ``layer`` as an objective term, summed over the batch.

    ``target_gram`` is ``A^l``, the unnormalised Gram of the exemplar. ``weight``
    (``[B]``, optional) multiplies each image's ``E_l`` before the batch sum. A loss: subtract it.
    """
    layer = _check_layer(layer)
    t = _target(target_gram, "gram_loss")

    def fn(ctx: Context) -> torch.Tensor:
        return batch_sum(gram_error(ctx[layer], t), weight)

    return Objective.term(f"gram[{layer}]", fn, [layer])


def layer_weights(layers: Sequence[str], weights=None) -> dict[str, float]:
    """Per-layer weights as ``{layer: w}`` from ``None`` (1 each), a mapping or a list in layer order.

    A mapping may leave layers out (weight 0) but must not name other layers.
    """
    names = list(layers)
    if weights is None:
        return dict.fromkeys(names, 1.0)
    if isinstance(weights, Mapping):
        extra = set(weights) - set(names)
        if extra:
            raise ValueError(
                f"Style weights given for layers that are not style layers: {sorted(extra)}; "
                f"layers are {names}."
            )
        return {n: float(weights.get(n, 0.0)) for n in names}
    weights = list(weights)
    if len(weights) != len(names):
        raise ValueError(f"Got {len(weights)} style weights for {len(names)} style layers {names}.")
    return {n: float(v) for n, v in zip(names, weights)}


def style_loss(
    targets: Mapping[str, torch.Tensor], weights: Mapping[str, float] | Sequence[float] | None = None
):
    """``L_style = Σ_l w_l E_l`` over the style layers (seed 001). ``targets``: layer → Gram ``A^l``.

    ``weights`` per layer (see :func:`layer_weights`); default 1 each. A loss: subtract it.
    """
    if not targets:
        raise ValueError("style_loss needs at least one style layer.")
    names = list(targets)
    w = layer_weights(names, weights)
    return sum(w[n] * gram_loss(n, targets[n]) for n in names if w[n] != 0) or 0.0 * gram_loss(
        names[0], targets[names[0]]
    )


def colour_statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the mean colour ``μ`` ``[B, 3]`` and the colour covariance ``Σ`` ``[B, 3, 3]`` of the
    pixels.
    """
    f = image.reshape(image.shape[0], image.shape[1], -1)
    mu = f.mean(2)
    fc = f - mu.unsqueeze(2)
    return mu, fc @ fc.transpose(1, 2) / f.shape[2]


def colour_loss(target_image: torch.Tensor) -> Objective:
    """A "layer 0" style term: ``‖μ − μ̂‖² + ‖Σ − Σ̂‖²_F``, the pixels' colour mean and covariance.

    ``μ̂, Σ̂`` are the exemplar's (:func:`colour_statistics`, in normalised
    model space). On networks other than VGG the Gram losses alone are met
    by coloured noise; matching the pixel colour statistics keeps a grey
    exemplar grey (pixel statistics as a remedy: Wang, Li & Vasconcelos 2021;
    colour matching in Gatys et al. 2017, "Controlling perceptual factors").
    A loss: subtract it.
    """
    mu_t, cov_t = colour_statistics(_target(target_image, "colour_loss"))

    def fn(ctx: Context) -> torch.Tensor:
        mu, cov = colour_statistics(ctx[INPUT])
        return (mu - mu_t).pow(2).sum() + (cov - cov_t).pow(2).sum()

    return Objective.term("colour", fn, [INPUT])
