"""The generator of the feed-forward texture and style networks, after Johnson, Alahi & Fei-Fei (2016).

Seed 004, "Fast Neural Style Transfer" and "One Network, Many Styles". Two
departures from Johnson et al., both named where they occur:

* the decoder upsamples by nearest-neighbour interpolation followed by a
  convolution (Dumoulin, Shlens & Kudlur 2017; Odena, Dumoulin & Olah 2016,
  "Deconvolution and Checkerboard Artifacts"), where Johnson et al. used
  fractionally strided (transposed) convolutions;
* the network is narrower and shallower, to train on one CPU core.

As in Johnson et al.'s supplementary material, a residual block is
conv → norm → ReLU → conv → norm, *without* a ReLU after the second
convolution, so that a block can add negative as well as positive values
to its input. The normalisation is instance norm (Ulyanov, Vedaldi &
Lempitsky 2016), conditional instance norm with one ``(γ_s, β_s)`` per style
(Dumoulin et al. 2017), or batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConditionalInstanceNorm2d", "StyleNet"]


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one learned scale and shift per style (Dumoulin et al. 2017).

    ``y = γ_s ⊙ (x − μ(x)) / σ(x) + β_s``, with ``μ, σ`` per image and channel.
    ``style`` is a style index (int or ``[B]`` long tensor) or mixing weights
    ``[B, n_styles]`` (rows summing to 1), which mix the ``γ, β`` linearly.
    With ``n_styles=1`` it is plain affine instance norm (Ulyanov et al. 2016).
    """

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style: int | torch.Tensor = 0) -> torch.Tensor:
        mix = _style_weights(style, x.shape[0], self.n_styles).to(x)
        gamma, beta = mix @ self.gamma, mix @ self.beta
        x = F.instance_norm(x, eps=self.eps)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


def _style_weights(style: int | torch.Tensor, batch: int, n_styles: int) -> torch.Tensor:
    """A style index, a batch of indices, or mixing weights, as ``[B, n_styles]`` weights."""
    if isinstance(style, int):
        style = torch.full((batch,), style, dtype=torch.long)
    if not isinstance(style, torch.Tensor):
        raise TypeError(f"style must be an int, a [B] index tensor or [B, {n_styles}] weights.")
    if style.dtype in (torch.long, torch.int32, torch.int64):
        if style.dim() == 0:
            style = style.expand(batch)
        if ((style < 0) | (style >= n_styles)).any():
            raise ValueError(f"style index out of range: this network has styles 0..{n_styles - 1}.")
        return F.one_hot(style, n_styles).float()
    weights = style.float()
    if weights.dim() == 1:
        weights = weights.expand(batch, -1)
    if weights.shape != (batch, n_styles):
        raise ValueError(f"style weights must have shape [{batch}, {n_styles}], got {tuple(weights.shape)}.")
    return weights


class _ConvBlock(nn.Module):
    """Reflection-padded conv → norm → ReLU (``relu=False``: no ReLU; ``up=True``: ×2 nearest
    upsampling first).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        norm: str,
        n_styles: int,
        up: bool = False,
        relu: bool = True,
    ):
        super().__init__()
        self.up, self.relu = up, relu
        self.conv = nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))
        self.norm = nn.BatchNorm2d(cout) if norm == "batch" else ConditionalInstanceNorm2d(cout, n_styles)

    def forward(self, x: torch.Tensor, style) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(x)
        x = self.norm(x) if isinstance(self.norm, nn.BatchNorm2d) else self.norm(x, style)
        return F.relu(x) if self.relu else x


class StyleNet(nn.Module):
    """A small image-to-image generator after Johnson et al. (2016), scaled for one CPU core.

    conv 9×9 → two stride-2 convs → ``n_res`` residual blocks
    ``x + norm(conv(relu(norm(conv(x)))))`` (no ReLU after the sum's second
    term, as Johnson et al.) → two ×2 nearest-upsampling convs (Dumoulin et
    al. 2017, Odena et al. 2016; Johnson et al. used fractionally strided
    convolutions) → conv 9×9, plus 0.5: an image around mid-grey. The
    output is not squashed (a sigmoid saturates into flat blobs that no
    gradient can repair); training adds :func:`range_penalty` to keep it in
    [0, 1] and :func:`stylize` clamps. ``norm`` is ``"instance"`` (conditional instance norm with
    ``n_styles`` styles) or ``"batch"`` (batch norm, one style), the choice the
    lecture compares. Input: a content image in [0, 1] (style networks) or
    noise (texture networks).
    """

    def __init__(self, norm: str = "instance", n_styles: int = 1, width: int = 16, n_res: int = 3) -> None:
        super().__init__()
        if norm not in ("instance", "batch"):
            raise ValueError(f"norm must be 'instance' or 'batch', got {norm!r}.")
        if norm == "batch" and n_styles != 1:
            raise ValueError("Several styles need norm='instance' (conditional instance normalisation).")
        self.norm_kind, self.n_styles, self.width = norm, n_styles, width
        w = width
        self.down = nn.ModuleList(
            [
                _ConvBlock(3, w, 9, 1, norm, n_styles),
                _ConvBlock(w, 2 * w, 3, 2, norm, n_styles),
                _ConvBlock(2 * w, 4 * w, 3, 2, norm, n_styles),
            ]
        )
        self.res = nn.ModuleList(
            [_ConvBlock(4 * w, 4 * w, 3, 1, norm, n_styles, relu=i % 2 == 0) for i in range(2 * n_res)]
        )
        self.up = nn.ModuleList(
            [
                _ConvBlock(4 * w, 2 * w, 3, 1, norm, n_styles, up=True),
                _ConvBlock(2 * w, w, 3, 1, norm, n_styles, up=True),
            ]
        )
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, x: torch.Tensor, style: int | torch.Tensor = 0) -> torch.Tensor:
        for block in self.down:
            x = block(x, style)
        for i in range(0, len(self.res), 2):
            x = x + self.res[i + 1](self.res[i](x, style), style)
        for block in self.up:
            x = block(x, style)
        return 0.5 + self.out(x)
