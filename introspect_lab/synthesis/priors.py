"""Image priors for synthesis: penalty terms, Yosinski's step operations, and random transforms.

Three kinds, all used by :func:`introspect_lab.synthesis.synthesize`:

* **Penalties** are objective terms on the image ``I`` (normalised model
  space) and compose with the others: :func:`l2` (``‖I‖²``, seed 001),
  :func:`alpha_norm` (``Σ|I|^α``, Mahendran & Vedaldi 2015 / seed 002) and
  :func:`tv` (``R_{V^β}``, seed 001). They are penalties, so subtract them:
  ``class_score(m, c) - 1e-3 * l2()``.
* **Step operations** act on the image (or its gradient) between steps:
  :class:`GaussianBlur`, :class:`ClipSmallPixels`, :class:`ClipSmallGradients`
  — the lecture's "(1) Gaussian blur image, (2) clip pixels with small
  values to 0, (3) clip pixels with small gradients to 0" (seed 001;
  Yosinski et al. 2015).
* **Transforms** are applied to a copy of the image before the model sees it
  each step, differentiably: :class:`Jitter`, :class:`RandomScale`,
  :class:`RandomRotate`, :class:`Pad` (Lucent's transformation robustness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..images import gaussian_blur
from .objectives import INPUT, Objective, batch_sum

__all__ = [
    "l2",
    "subspace",
    "alpha_norm",
    "tv",
    "total_variation",
    "GaussianBlur",
    "ClipSmallPixels",
    "ClipSmallGradients",
    "Jitter",
    "RandomScale",
    "RandomRotate",
    "Pad",
]


# ---------------------------------------------------------------------------
# Penalties (objective terms on the image)
# ---------------------------------------------------------------------------


def l2(center: torch.Tensor | None = None) -> Objective:
    """``‖I − c‖₂² = Σ (I − c)²`` over the batch (seed 001: ``argmax_I S_c(I) − λ‖I‖²``); subtract λ times it.

    ``center`` ``c`` (default 0) is a fixed image the penalty pulls towards,
    e.g. the mean of a data set (a data prior, seed 003's digits).
    """
    if center is None:
        return Objective.term("l2", lambda ctx: ctx[INPUT].pow(2).sum(), [INPUT])
    c = center.detach()
    return Objective.term("l2", lambda ctx: (ctx[INPUT] - c).pow(2).sum(), [INPUT])


def subspace(mean: torch.Tensor, components: torch.Tensor) -> Objective:
    """Distance from a data set's principal subspace: ``‖r − VᵀV r‖²``, ``r = I − μ``; subtract λ times it.

    ``components`` ``V`` (``[k, D]``, orthonormal rows, ``D`` the pixels of one
    image) are the data's top-``k`` principal directions and ``mean`` ``μ`` its
    mean image. The penalty is the squared "distance from face space" of Turk
    & Pentland ("Eigenfaces for recognition", J. Cogn. Neurosci. 1991): zero
    for any image the ``k`` directions can write, large for what the data never
    show. It pulls towards the data as a whole, not towards any one class.
    """
    v = components.detach()
    if v.dim() != 2 or v.shape[1] != mean[0].numel():
        raise ValueError(
            f"components must be [k, D] with D = the pixels of one image ({mean[0].numel()}), "
            f"got {tuple(v.shape)}."
        )
    mu = mean.detach()

    def residual(ctx) -> torch.Tensor:
        r = (ctx[INPUT] - mu.to(ctx[INPUT])).flatten(1)
        w = v.to(r)
        return (r - (r @ w.T) @ w).pow(2).sum()

    return Objective.term(f"subspace[{v.shape[0]}]", residual, [INPUT])


def alpha_norm(alpha: float = 6.0) -> Objective:
    """The α-norm prior ``R_α(I) = ‖I‖_α^α = Σ |I|^α`` (Mahendran & Vedaldi 2015; seed 002's ``‖I‖_α``).

    Large α (6 in M&V) keeps pixel values inside a range without touching
    small ones. Subtract it, times λ.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")
    return Objective.term(f"alpha_norm[{alpha:g}]", lambda ctx: ctx[INPUT].abs().pow(alpha).sum(), [INPUT])


def total_variation(
    x: torch.Tensor,
    beta: float = 2.0,
    eps: float | None = None,
    weight: torch.Tensor | None = None,
    *,
    circular: bool = False,
) -> torch.Tensor:
    """``R_{V^β}(x) = Σ_{i,j} ((x_{i,j+1} − x_{ij})² + (x_{i+1,j} − x_{ij})²)^{β/2}`` (seed 001).

    Summed over channels and the batch, for the ``(H−1)×(W−1)`` positions
    where both differences exist (Mahendran & Vedaldi 2015); there the last
    row and column are smoothed about a third as strongly as the rest.
    ``circular=True`` wraps around (``x_{i,W} = x_{i,0}``, all ``H×W``
    positions), every pixel alike: the match for a network with circular
    padding, whose output tiles. For ``β < 2``
    the gradient at a flat patch is infinite, so ``eps`` (default 1e-8 when
    ``β < 2``, else 0) is added inside the power. ``weight`` (``[B]``, optional)
    multiplies each image's value before the batch sum.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}.")
    if x.dim() != 4:
        raise ValueError(f"total_variation needs a [B, C, H, W] image, got shape {tuple(x.shape)}.")
    if eps is None:
        eps = 1e-8 if beta < 2 else 0.0
    if circular:
        dx, dy = x.roll(-1, dims=-1) - x, x.roll(-1, dims=-2) - x
    else:
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    s = dx.pow(2) + dy.pow(2)
    if not (beta == 2 and eps == 0):
        s = (s + eps).pow(beta / 2)
    if weight is None:
        return s.sum()
    return batch_sum(s.reshape(s.shape[0], -1).sum(1), weight)


def tv(beta: float = 2.0, eps: float | None = None, weight: torch.Tensor | None = None) -> Objective:
    """TV^β penalty term (see :func:`total_variation`; seed 001). Subtract it, times λ.

    ``weight`` (``[B]``, optional): one strength per image of the batch.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}.")
    return Objective.term(
        f"tv[{beta:g}]", lambda ctx: total_variation(ctx[INPUT], beta, eps, weight), [INPUT]
    )


# ---------------------------------------------------------------------------
# Step operations (between optimisation steps)
# ---------------------------------------------------------------------------


class StepOp:
    """Base class: ``on_grad`` may change the gradient, ``after_step`` the image (in place)."""

    def on_grad(self, x: torch.Tensor, grad: torch.Tensor, step: int) -> torch.Tensor:
        return grad

    def after_step(self, x: torch.Tensor, grad: torch.Tensor | None, step: int) -> None:
        return None


@dataclass
class GaussianBlur(StepOp):
    """Blur the image every ``every`` steps with std ``sigma`` px (seed 001; cs231n: σ 0.5 every 10)."""

    every: int = 10
    sigma: float = 0.5

    def __post_init__(self):
        if int(self.every) < 1:
            raise ValueError(f"GaussianBlur.every must be ≥ 1 step, got {self.every}.")
        if self.sigma < 0:
            raise ValueError(f"GaussianBlur.sigma must be ≥ 0, got {self.sigma}.")

    def after_step(self, x, grad, step):
        if self.sigma > 0 and (step + 1) % int(self.every) == 0:
            x.copy_(gaussian_blur(x, self.sigma))


def _below_percentile(score: torch.Tensor, percentile: float) -> torch.Tensor:
    """Mask ``[B, 1, H, W]`` of positions whose score is below the per-image percentile."""
    flat = score.reshape(score.shape[0], -1)
    thr = torch.quantile(flat, percentile / 100.0, dim=1, keepdim=True)
    return (flat < thr).reshape(score.shape)


@dataclass
class _PercentileClip(StepOp):
    """Shared settings of the two Yosinski clipping operations: which percentile, how often."""

    percentile: float = 10.0
    every: int = 1

    def __post_init__(self):
        if not 0 <= self.percentile < 100:
            raise ValueError(f"percentile must be in [0, 100), got {self.percentile}.")


@dataclass
class ClipSmallPixels(_PercentileClip):
    """Set pixels whose norm over colour channels is below the ``percentile``-th to 0 (seed 001, "(2)").

    0 is the mean colour in normalised space (Yosinski et al. 2015, "clipping
    pixels with small norm").
    """

    def after_step(self, x, grad, step):
        if self.percentile > 0 and (step + 1) % int(self.every) == 0:
            mask = _below_percentile(x.norm(dim=1, keepdim=True), self.percentile)
            x.masked_fill_(mask.expand_as(x), 0.0)


@dataclass
class ClipSmallGradients(_PercentileClip):
    """Set pixels with a small gradient contribution ``Σ_c |x_c · ∂S/∂x_c|`` to 0 (seed 001, "(3)").

    The contribution is how much the objective would change if the pixel
    were set to 0 (Yosinski et al. 2015, "clipping pixels with small
    contribution"); pixels below the ``percentile``-th are zeroed.
    """

    def after_step(self, x, grad, step):
        if grad is None or self.percentile <= 0 or (step + 1) % int(self.every):
            return
        contrib = (x * grad).abs().sum(dim=1, keepdim=True)
        x.masked_fill_(_below_percentile(contrib, self.percentile).expand_as(x), 0.0)


# ---------------------------------------------------------------------------
# Transforms (before the model, differentiable)
# ---------------------------------------------------------------------------


def _randint(lo: int, hi: int, g: torch.Generator | None) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g).item())


@dataclass
class Jitter:
    """Shift the image by a random ``(dy, dx)`` in ``[−pixels, pixels]`` with wrap-around (cs231n: 16 px)."""

    pixels: int = 8

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        p = int(self.pixels)
        if p <= 0:
            return x
        return torch.roll(x, shifts=(_randint(-p, p, g), _randint(-p, p, g)), dims=(-2, -1))


@dataclass
class Pad:
    """Reflect-pad by ``pixels`` on each side (Lucent's ``pad(12)``, so jitter does not show the border)."""

    pixels: int = 12

    def __call__(self, x, g=None):
        p = int(self.pixels)
        return F.pad(x, (p, p, p, p), mode="reflect") if p > 0 else x


@dataclass
class RandomScale:
    """Resize by a random factor in ``[low, high]`` (Lucent: 0.9–1.1)."""

    low: float = 0.9
    high: float = 1.1

    def __call__(self, x, g=None):
        s = self.low + (self.high - self.low) * float(torch.rand(1, generator=g))
        size = [max(8, round(d * s)) for d in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@dataclass
class RandomRotate:
    """Rotate by a random angle in ``[−degrees, degrees]`` (Lucent: ±10°)."""

    degrees: float = 10.0

    def __call__(self, x, g=None):
        a = math.radians(self.degrees * (2 * float(torch.rand(1, generator=g)) - 1))
        theta = torch.tensor(
            [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype
        )
        grid = F.affine_grid(theta.unsqueeze(0).expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
