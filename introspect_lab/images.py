"""Images in and out: load any photo as a normalised batch, and back again for display.

A model sees ``x = (img - mean) / std`` with ``img`` in [0, 1], shape
``[B, 3, H, W]``. :func:`load_image` makes that from a path, a PIL image or
a numpy array, whatever its mode (grayscale, RGBA, palette, 16-bit, CMYK,
EXIF-rotated); :func:`to_display` undoes it. :func:`sample_image` gives the
photos that ship with scikit-image and scikit-learn, so everything works
offline.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .info import IMAGENET_MEAN, IMAGENET_STD, model_info
from .lazy import lazy_import
from .names import unknown_name_error

skimage_data = lazy_import("skimage.data")
sklearn_datasets = lazy_import("sklearn.datasets")

__all__ = [
    "SAMPLES",
    "sample_image",
    "sample_names",
    "to_rgb",
    "load_image",
    "check_batch",
    "device_dtype",
    "as_model_input",
    "normalize",
    "denormalize",
    "gaussian_blur",
    "to_display",
    "to_pil",
    "show",
]

ImageLike = str | os.PathLike | Image.Image | np.ndarray


# ---------------------------------------------------------------------------
# Converting whatever arrives to 8-bit RGB
# ---------------------------------------------------------------------------


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW → HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(
            f"An image array must be H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA); got shape {arr.shape}."
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("The image array contains NaN or infinite values.")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"A float image array must hold values in [0, 1]; got [{lo:.3g}, {hi:.3g}]. "
                "If it is already normalised for a model, use denormalize() first; "
                "if it is 0–255, divide by 255."
            )
        arr = np.round(arr * 255).astype(np.uint8)
    elif arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and arr.max(initial=0) > 255):
        if arr.min(initial=0) < 0:
            raise ValueError("An integer image array must not hold negative values.")
        bits = 16 if arr.max(initial=0) > 255 else 8
        arr = np.round(arr.astype(np.float64) / (2**bits - 1) * 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min(initial=0) < 0:
            raise ValueError("An integer image array must not hold negative values.")
        arr = arr.astype(np.uint8)
    else:
        raise ValueError(f"Unsupported image array dtype {arr.dtype}.")
    return Image.fromarray(arr)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any PIL image as 8-bit RGB.

    EXIF orientation is applied; transparency is composited on ``background``
    (white); 16-bit and 32-bit grayscale are rescaled by their bit depth;
    palette and CMYK images are converted.
    """
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top, 0, 1)
        return Image.fromarray(np.round(arr * 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        top = 1.0 if arr.max(initial=0) <= 1 else 255.0
        return Image.fromarray(np.round(np.clip(arr / top, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _draft(img: Image.Image, size: tuple[int, int] | None, crop: bool) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when the result is still at least ``size``.

    Pillow's draft mode (``Image.draft``) scales in the JPEG decoder, so an
    8000×8000 photo never exists at full size in memory. A no-op for other formats.
    """
    if size is None or img.format != "JPEG":
        return
    h, w = size
    if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90°: stored sides swap
        h, w = w, h
    scale = max(h / img.height, w / img.width) if crop else 1.0
    need = (w, h) if not crop else (math.ceil(img.width * scale), math.ceil(img.height * scale))
    img.draft("RGB", need)


def _open(src: ImageLike, size: tuple[int, int] | None = None, crop: bool = True) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return _array_to_pil(src)
    if isinstance(src, torch.Tensor):
        raise TypeError(
            "load_image() takes a path, a PIL image or a numpy array, not a tensor. "
            "A tensor from this package is already a model input."
        )
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        if not path.exists():
            hint = ""
            if isinstance(src, str) and "/" not in src and "." not in src:
                hint = f" For a bundled photo use sample_image({src!r}); names: {', '.join(sample_names())}."
            raise FileNotFoundError(f"No image file at {path.resolve()}.{hint}")
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give the path of one image file.")
        try:
            img = Image.open(path)
            _draft(img, size, crop)
            img.load()
        except UnidentifiedImageError:
            raise ValueError(
                f"{path} is not an image file PIL can read (PNG, JPEG, TIFF, BMP, GIF, WebP, …)."
            ) from None
        except (OSError, SyntaxError) as exc:  # Pillow reports damaged files as OSError (or SyntaxError)
            if isinstance(exc, (PermissionError, FileNotFoundError)):
                raise
            raise ValueError(
                f"The image file {path} is truncated or damaged, so it cannot be read ({exc}). "
                "Download, copy or export it again; if you want its readable part, open it yourself "
                "after setting PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True."
            ) from None
        return img
    raise TypeError(f"load_image() takes a path, a PIL image or a numpy array, not {type(src).__name__}.")


# ---------------------------------------------------------------------------
# To and from model inputs
# ---------------------------------------------------------------------------


def _stats(model, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    if model is not None:
        info = model_info(model)
        mean, std = info.mean, info.std
    if mean is None or std is None:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


def normalize(img01: torch.Tensor, model=None, mean=None, std=None) -> torch.Tensor:
    """``(img - mean) / std`` for a ``[B,3,H,W]`` (or ``[3,H,W]``) image in [0, 1]."""
    m, s = _stats(model, mean, std)
    if img01.dim() == 3:
        img01 = img01.unsqueeze(0)
    return (img01 - m.to(img01)) / s.to(img01)


def denormalize(x: torch.Tensor, model=None, mean=None, std=None) -> torch.Tensor:
    """Undo :func:`normalize`: ``x * std + mean``, not clipped."""
    m, s = _stats(model, mean, std)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    return x * s.to(x) + m.to(x)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a ``[B, C, H, W]`` batch with std ``sigma`` px, same size, device and dtype out.

    ``k(t) ∝ exp(−t²/2σ²)`` for ``t = −r … r``, ``r = ⌈3σ⌉``, applied along rows then columns with
    reflect padding: torchvision's ``gaussian_blur`` with a ``2r + 1`` kernel, to float rounding
    (tested). It is written out here because importing torchvision costs about 3 s and 170 MB,
    which the lessons that blur (the synthesis prior, RISE's blurred canvas) do not otherwise pay.
    An image smaller than the radius is replicate-padded first.
    """
    if sigma <= 0:
        return x
    r, c = max(1, math.ceil(3 * sigma)), x.shape[1]
    small = min(x.shape[-2:]) <= r
    y = F.pad(x, (r, r, r, r), mode="replicate") if small else x
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).expand(c, 1, -1)  # one kernel per channel (groups=C)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k[:, :, None, :], groups=c)  # along rows
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k[:, :, :, None], groups=c)  # along columns
    return y[..., r:-r, r:-r] if small else y


def load_image(
    src: ImageLike,
    model=None,
    size: int | tuple[int, int] | None = None,
    *,
    crop: bool = True,
) -> torch.Tensor:
    """Load a photo as a normalised batch ``[1, 3, H, W]`` ready for ``model``.

    Parameters
    ----------
    src:
        A file path, a PIL image, or a numpy array (H×W, H×W×3/4; uint8,
        uint16, or float in [0, 1]).
    model:
        Supplies the mean, std and default size (:func:`model_info`). Without
        it, ImageNet statistics and 224 px are used.
    size:
        Output side (int) or ``(H, W)``. Default: the model's input size.
    crop:
        ``True``: resize (bicubic, PIL) so the image just covers ``size``,
        i.e. its short side becomes the output side, then centre-crop
        ``size``. This keeps the *whole* short side, unlike torchvision's
        evaluation transform for the classic models (resize the short side
        to 256, centre-crop 224: the central 87.5 %), so objects look about
        14 % smaller than in that transform. ``False``: resize to exactly
        ``size``, changing the aspect ratio.

    Then ``[0, 1]`` pixels are normalised with the model's mean and std
    (:func:`normalize`), on the model's device and in its dtype
    (:func:`device_dtype`; CPU float32 without a model).
    """
    if size is None:
        size = model_info(model).input_size if model is not None else 224
    h, w = (size, size) if isinstance(size, int) else size
    img = to_rgb(_open(src, (h, w), crop))
    if crop:
        scale = max(h / img.height, w / img.width)
        new = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
        img = img.resize(new, Image.BICUBIC)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
    else:
        img = img.resize((w, h), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return as_model_input(normalize(arr.unsqueeze(0), model), model)


def device_dtype(model) -> tuple[torch.device, torch.dtype]:
    """Where and in which float type ``model`` computes: its first floating parameter's (or buffer's).

    A model without floating tensors, or ``None``, gives ``(cpu, float32)``.
    Entry points create their images, noise, masks and baselines with these,
    so a model moved with ``model.to("cuda")`` or ``model.double()`` just works.
    """
    if hasattr(model, "parameters"):
        for t in (*model.parameters(), *model.buffers()):
            if t.is_floating_point():
                return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def as_model_input(x: torch.Tensor, model) -> torch.Tensor:
    """``x`` on ``model``'s device and in its float type (a no-op when they already match)."""
    device, dtype = device_dtype(model)
    return x.to(device=device, dtype=dtype)


def check_batch(
    x, name: str = "x", model=None, *, warn: bool = True, single: bool = True, channels: int | None = 3
) -> torch.Tensor:
    """The one validator of image batches: a float ``[B, 3, H, W]`` tensor of finite values.

    A single ``[3, H, W]`` image gets a batch axis (``single=False``: it is
    an error). ``channels=None`` accepts any number of channels (a grey
    ``[B, 1, H, W]`` batch for a digits model). Wrong types, shapes and
    dtypes, and NaN/inf values raise an error that names the argument
    (``name``) and says how to make a valid one. With ``model`` (and
    ``warn=True``), values far outside the model's normalised range, or
    plainly un-normalised [0, 1] images, give a ``UserWarning``. Returns
    the (batched) tensor, on ``model``'s device and in its dtype when a model
    is given (:func:`as_model_input`). Every entry point that takes an image
    batch calls it.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a normalised image tensor [B,3,H,W], got {type(x).__name__}. "
            "Use load_image(path_or_photo, model) to make one."
        )
    if x.dim() == 3 and single:
        x = x.unsqueeze(0)
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(
            f"{name} must have shape [B,3,H,W] (a batch of RGB images), got {tuple(x.shape)}. "
            "Use load_image(...) for one photo, torch.cat([...]) for a batch."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor, got {x.dtype}. Use load_image(...) or normalize(x / 255)."
        )
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); every pixel must be a finite number. "
            "Reload the image with load_image(...), or find where the NaN came from "
            "(e.g. a division by a zero std), or replace them with torch.nan_to_num(x)."
        )
    if warn and model is not None and x.numel():
        _warn_if_not_normalised(x, name, model)
    return as_model_input(x, model) if model is not None else x


def _warn_if_not_normalised(x: torch.Tensor, name: str, model) -> None:
    info = model_info(model)
    mean, std = torch.tensor(info.mean), torch.tensor(info.std)
    lo, hi = float(((0 - mean) / std).min()), float(((1 - mean) / std).max())
    margin = 0.5 * (hi - lo)
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < lo - margin or xmax > hi + margin:
        warnings.warn(
            f"{name} holds values in [{xmin:.3g}, {xmax:.3g}], far outside the normalised range "
            f"[{lo:.2f}, {hi:.2f}] of this model: is it a 0-255 image? Use load_image(...) "
            "or normalize(img / 255, model).",
            UserWarning,
            stacklevel=4,
        )
    elif xmin >= 0.0 and xmax <= 1.0 and x[0].std() < 0.5:
        warnings.warn(
            f"{name} holds only values in [0, 1]: it looks like an image that was not normalised "
            "(a normalised photo has negative values). Use normalize(x, model) or load_image(...).",
            UserWarning,
            stacklevel=4,
        )


def to_display(x: torch.Tensor, model=None, *, normalized: bool = True) -> np.ndarray:
    """A model input (or a batch) as H×W×3 floats in [0, 1] for ``plt.imshow``.

    A batch gives ``[B, H, W, 3]``. ``normalized=False`` for tensors that are
    already in [0, 1].
    """
    x = x.detach().float().cpu()
    img = denormalize(x, model) if normalized else (x if x.dim() == 4 else x.unsqueeze(0))
    arr = img.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return arr[0] if x.dim() == 3 or (x.dim() == 4 and x.shape[0] == 1) else arr


def to_pil(x: torch.Tensor, model=None) -> Image.Image:
    """The first image of a normalised batch as a PIL image."""
    arr = to_display(x, model)
    if arr.ndim == 4:
        arr = arr[0]
    return Image.fromarray(np.round(arr * 255).astype(np.uint8))


def show(
    images,
    titles: Sequence[str] | None = None,
    *,
    model=None,
    ncols: int | None = None,
    size: float = 2.5,
    cmap: str | None = None,
):
    """Show one image or a grid. Accepts tensors (normalised), arrays and PIL images.

    Returns the matplotlib figure (end the notebook line with ``;``).
    """
    import matplotlib.pyplot as plt

    if isinstance(images, torch.Tensor) and images.dim() == 4:
        images = list(images.unbind(0))
    if not isinstance(images, (list, tuple)):
        images = [images]
    n = len(images)
    ncols = ncols or min(n, 6)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        if isinstance(img, torch.Tensor):
            img = (
                to_display(img, model) if img.dim() == 3 and img.shape[0] == 3 else img.detach().cpu().numpy()
            )
        elif isinstance(img, Image.Image):
            img = np.asarray(img)
        ax = axes.flat[i]
        ax.imshow(img, cmap=cmap if np.ndim(img) == 2 else None)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Photos that ship with installed packages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A photo that ships with an installed package, with where it comes from."""

    name: str
    loader: Callable[[], np.ndarray]
    source: str
    content: str


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return getattr(skimage_data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return sklearn_datasets.load_sample_image(name)

    return load


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in [
        Sample("chelsea", _skimage("chelsea"), "scikit-image skimage.data.chelsea()", "a tabby cat"),
        Sample("coffee", _skimage("coffee"), "scikit-image skimage.data.coffee()", "a cup of espresso"),
        Sample(
            "rocket", _skimage("rocket"), "scikit-image skimage.data.rocket()", "a rocket on its launch pad"
        ),
        Sample(
            "astronaut",
            _skimage("astronaut"),
            "scikit-image skimage.data.astronaut()",
            "portrait of Eileen Collins",
        ),
        Sample(
            "motorcycle",
            lambda: _skimage("stereo_motorcycle")()[0],
            "scikit-image skimage.data.stereo_motorcycle()[0]",
            "a motorcycle",
        ),
        Sample(
            "hubble",
            _skimage("hubble_deep_field"),
            "scikit-image skimage.data.hubble_deep_field()",
            "galaxies",
        ),
        Sample(
            "brick", _skimage("brick"), "scikit-image skimage.data.brick() (grayscale)", "brick wall texture"
        ),
        Sample("grass", _skimage("grass"), "scikit-image skimage.data.grass() (grayscale)", "grass texture"),
        Sample(
            "gravel", _skimage("gravel"), "scikit-image skimage.data.gravel() (grayscale)", "gravel texture"
        ),
        Sample(
            "china", _sklearn("china.jpg"), "scikit-learn load_sample_image('china.jpg')", "a Chinese temple"
        ),
        Sample(
            "flower",
            _sklearn("flower.jpg"),
            "scikit-learn load_sample_image('flower.jpg')",
            "a flower (dahlia)",
        ),
    ]
}


def sample_names() -> list[str]:
    """Names accepted by :func:`sample_image`."""
    return list(SAMPLES)


def sample_image(name: str) -> Image.Image:
    """A bundled photo as an RGB PIL image (``info["source"]`` says where it comes from).

    Names: chelsea (cat), coffee (espresso), rocket, astronaut, motorcycle,
    hubble, brick, grass, gravel (textures, grayscale originals), china and
    flower (scikit-learn).
    """
    if name not in SAMPLES:
        raise unknown_name_error("sample image", name, sample_names())
    sample = SAMPLES[name]
    img = to_rgb(_array_to_pil(sample.loader()))
    img.info["source"] = sample.source
    img.info["name"] = name
    return img
