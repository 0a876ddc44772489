"""Parameterisations: what the optimiser changes to make an image.

* :class:`Pixels`: the image itself, in normalised model space;
* :class:`Fourier`: Lucent's Fourier spectrum with decorrelated colours
  (Olah et al. 2017, "Feature Visualization"), pixels via a sigmoid.

Both are callables returning the current image ``[B,3,H,W]``, with
``params()`` for the optimiser; ``pixels`` is the pixel tensor the image
operations may edit in place (``None`` for the spectrum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..images import check_batch, load_image, normalize

__all__ = ["Pixels", "Fourier", "valid_range", "image_size", "initial_image"]


def valid_range(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised values of pixel 0 and 1 per channel, ``(low, high)`` as ``[1,3,1,1]`` each."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (0 - m) / s, (1 - m) / s


class Pixels:
    """The image itself, in normalised model space, is the parameter.

    ``per_image=True`` makes each image of the batch its own parameter (a
    view of the one pixel tensor), so an optimiser can give each image its
    own learning rate (one parameter group per image).
    """

    def __init__(self, init: torch.Tensor, per_image: bool = False):
        self.x = init.detach().clone()
        if per_image:
            self.rows = [self.x[i : i + 1].requires_grad_(True) for i in range(self.x.shape[0])]
        else:
            self.rows = []
            self.x.requires_grad_(True)

    def params(self) -> list[torch.Tensor]:
        """The tensors the optimiser updates (one per image with ``per_image=True``)."""
        return self.rows or [self.x]

    def __call__(self) -> torch.Tensor:
        return torch.cat(self.rows) if self.rows else self.x

    @property
    def pixels(self) -> torch.Tensor | None:
        """The pixel tensor (image operations edit it in place)."""
        return self.x

    @property
    def grad(self) -> torch.Tensor | None:
        """The gradient with respect to the pixels, ``[B, C, H, W]`` (``None`` before a backward pass)."""
        if not self.rows:
            return self.x.grad
        if any(r.grad is None for r in self.rows):
            return None
        return torch.cat([r.grad for r in self.rows])


# Lucent's colour decorrelation matrix (square root of ImageNet's colour covariance).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class Fourier:
    """Lucent's FFT + decorrelated-colour parameterisation; pixels via a sigmoid to [0, 1].

    Spectrum coefficients are scaled by ``1/max(f, 1/max(H, W))^decay_power``
    and transformed with an orthonormal inverse FFT (Lucent's
    ``fft_image``; Mordvintsev et al., Distill 2018). An extra ``√(H·W)``
    factor on top of the orthonormal transform (Lucid's scaling, which goes
    with an *unnormalised* inverse FFT) makes every pixel ~H× too large: the
    sigmoid then saturates and images collapse to black-and-white blobs.
    """

    def __init__(
        self, shape, mean, std, g: torch.Generator, sd: float = 0.01, decay_power: float = 1.0, like=None
    ):
        b, c, h, w = shape
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freqs = torch.sqrt(fx**2 + fy**2)
        # drawn on the CPU (the same image for a seed on every device), then moved to ``like``'s device
        # and dtype
        to = {"device": like.device, "dtype": like.dtype} if like is not None else {}
        self.scale = (1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power).to(**to)
        self.spectrum = (torch.randn(b, c, h, w // 2 + 1, 2, generator=g) * sd).to(**to).requires_grad_(True)
        self.hw = (h, w)
        self.mean, self.std = mean, std
        self.color = (_COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()).to(**to)

    def params(self):
        """The tensors the optimiser updates."""
        return [self.spectrum]

    def __call__(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=self.hw, norm="ortho") / 4.0
        img = torch.einsum("bchw,dc->bdhw", img, self.color)
        return normalize(torch.sigmoid(img), mean=self.mean, std=self.std)

    pixels = None


def image_size(size) -> tuple[int, int]:
    """``size`` (an int side or ``(H, W)``) as ``(H, W)``, at least 16 px each."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 16 or w < 16:
        raise ValueError(f"Image size {h}×{w} is too small; use at least 16 px (e.g. size=128).")
    return int(h), int(w)


def initial_image(init, shape, mean, std, g: torch.Generator, init_scale: float, model) -> torch.Tensor:
    """The starting image (normalised model space) of :func:`~.engine.synthesize` for ``init``.

    ``"noise"`` (``init_scale``·N(0, 1), cs231n), ``"zeros"`` (the mean
    colour), ``"uniform"`` (U(0, 1) pixels), an image tensor (resized; one
    image is repeated over the batch) or a path (loaded with :func:`load_image`).
    """
    b, _, h, w = shape
    if isinstance(init, torch.Tensor):
        x = check_batch(init, "init", channels=None).detach().cpu().float()
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x.expand(b, -1, -1, -1).clone() if x.shape[0] == 1 else x.clone()
    if init is None or init == "noise":
        return torch.randn(shape, generator=g) * init_scale
    if init == "zeros":
        return torch.zeros(shape)
    if init == "uniform":
        return normalize(torch.rand(shape, generator=g), mean=mean, std=std)
    if isinstance(init, str):
        return load_image(init, model, size=(h, w)).expand(b, -1, -1, -1).clone()
    raise ValueError(
        f"init must be 'noise', 'zeros', 'uniform', an image tensor or a file path, got {init!r}."
    )
