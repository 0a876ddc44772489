"""A small CNN trained in class on scikit-learn's digits, and its class visualisations.

Seed 003, "Activation Maximization: MNIST Example": a simple 4-layer CNN on
digit images, and the input that maximises each class score,

    x* = argmax_{x ∈ [0,1]^{m×l}}  h_c(x) − λ₂ ‖x‖² − λ_TV R_{V^β}(x),

plus, here, a pull towards the digits' principal subspace (:func:`digit_subspace`).

found by projected gradient ascent, ``x ← clip_[0,1](x + η ∇ₓ(…))``. On a
network this small a person can read the result, which makes it the natural
first step before ImageNet models (notebook 05).

The data are scikit-learn's ``load_digits`` (1,797 8×8 images, 10 classes),
upsampled; they ship with scikit-learn, so everything here runs offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import show_progress
from .lazy import lazy_import
from .synthesis.engine import synthesize
from .synthesis.objectives import class_score
from .synthesis.priors import Jitter, l2, subspace, tv

datasets = lazy_import("sklearn.datasets")
model_selection = lazy_import("sklearn.model_selection")
neighbors = lazy_import("sklearn.neighbors")

__all__ = [
    "digits_tensors",
    "digit_subspace",
    "DigitsCNN",
    "TrainedDigits",
    "train_digits_cnn",
    "maximize_digit",
    "NeighbourReading",
    "read_by_neighbours",
]


def digits_tensors(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as ``([N, 1, size, size]`` images in [0, 1], ``[N]`` labels).

    The 8×8 images (values 0–16) are scaled to [0, 1] and upsampled bilinearly.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 (the digits are 8×8), got {size}.")
    data = datasets.load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x, torch.tensor(data.target, dtype=torch.long)


def digit_subspace(k: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The average digit ``[1, 1, size, size]`` and the top-``k`` principal directions ``[k, size²]`` of all
    digits.

    PCA by SVD of the centred images (every class alike, as in Turk & Pentland's
    "eigenfaces", 1991): the "eigendigits" that :func:`maximize_digit`'s
    subspace prior keeps the picture near.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size * size:
        raise ValueError(f"k must be an integer in 1..{size * size}, got {k!r}.")
    x, _ = digits_tensors(size)
    mean = x.mean(0, keepdim=True)
    _, _, vt = torch.linalg.svd((x - mean).flatten(1), full_matrices=False)
    return mean, vt[:k].contiguous()


class DigitsCNN(nn.Module):
    """Four layers, as in seed 003's example: conv-ReLU-pool ×2 → fc-ReLU → fc (10 class scores)."""

    def __init__(self, size: int = 16, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, 10)
        )
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass
class TrainedDigits:
    """A trained :class:`DigitsCNN` with its held-out accuracy and training time."""

    model: DigitsCNN
    test_accuracy: float
    seconds: float
    x_test: torch.Tensor
    y_test: torch.Tensor


def train_digits_cnn(
    size: int = 16,
    epochs: int = 8,
    *,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> TrainedDigits:
    """Train :class:`DigitsCNN` with Adam on 75 % of the digits; report accuracy on the other 25 %.

    A few seconds on one core. The split is stratified and seeded.
    """
    x, y = digits_tensors(size)
    idx_train, idx_test = model_selection.train_test_split(
        np.arange(len(y)), test_size=0.25, stratify=y.numpy(), random_state=seed
    )
    torch.manual_seed(seed)
    model = DigitsCNN(size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    bar = show_progress() if progress is None else progress
    model.train()
    for _ in tqdm(range(epochs), desc="training the digits CNN", disable=not bar):
        order = torch.tensor(idx_train)[torch.randperm(len(idx_train), generator=g)]
        for i in range(0, len(order), batch):
            b = order[i : i + batch]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x[idx_test]).argmax(1) == y[idx_test]).float().mean())
    return TrainedDigits(model, acc, time.perf_counter() - start, x[idx_test], y[idx_test])


def maximize_digit(
    model: nn.Module,
    digit: int | list[int],
    *,
    steps: int = 100,
    lr: float = 0.02,
    prior_weight: float = 0.3,
    tv_weight: float = 0.1,
    subspace_weight: float = 5.0,
    components: int = 8,
    jitter: int = 1,
    start: str = "mean",
    seed: int | None = 0,
) -> torch.Tensor:
    """The input in ``[0, 1]`` that maximises class ``digit``'s score (seed 003), with a data prior.

    Projected gradient ascent ``x ← clip_[0,1](x + η g/mean|g|)`` (the synthesis
    engine's ``"dream"`` step, clamped to ``[0, 1]``) on

        h_c(x) − λ ‖x − x̄‖² − λ_TV R_{V²}(x) − λ_S ‖r − VᵀV r‖²,  r = x − x̄

    where ``x̄`` is the average of all digits and ``V`` their top ``components``
    principal directions (:func:`digit_subspace`; both every class alike, so
    they say nothing about ``c``). The last term (``subspace_weight`` λ_S; 0
    turns it off) is the distance from the digits' subspace (Turk & Pentland
    1991): strokes that no digit has cost more, so the pictures read more like digits. ``start="mean"`` starts
    from ``x̄`` (Nguyen, Yosinski & Clune 2016 start from a mean image too); ``start="noise"`` from dark
    noise, the textbook version, whose results are much harder to read.
    Each step sees the image shifted by up to ``jitter`` pixels, so that it
    must work wherever the strokes are (transformation robustness, as in
    Lucent). Several digits at once: a list gives one image each.

    Returns ``[B, 1, H, W]``; the model is left as it was.
    """
    digits = [digit] if isinstance(digit, int) else list(digit)
    if any(not (isinstance(d, int) and 0 <= d <= 9) for d in digits):
        raise ValueError(f"digits are ints 0..9, got {digits}.")
    if start not in ("mean", "noise"):
        raise ValueError(f"start must be 'mean' or 'noise', got {start!r}.")
    size = getattr(model, "size", 16)
    mean, eigen = digit_subspace(components, size)
    if start == "mean":
        x0 = mean.repeat(len(digits), 1, 1, 1)
    else:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        x0 = (0.1 + 0.05 * torch.randn(len(digits), 1, size, size, generator=g)).clamp(0, 1)
    objective = class_score(model, digits) - prior_weight * l2(center=mean) - tv_weight * tv(beta=2.0)
    if subspace_weight:
        objective = objective - subspace_weight * subspace(mean, eigen)
    result = synthesize(
        model,
        objective,
        init=x0,
        size=None,
        steps=steps,
        optimizer="dream",
        lr=lr,
        transforms=[Jitter(jitter)],
        clamp=(0.0, 1.0),
        seed=seed,
        progress=False,
        desc="maximize_digit",
    )
    return result.image


@dataclass
class NeighbourReading:
    """How real digits read a picture: the k-NN vote and the distance to the nearest real digit."""

    labels: list[int]  # the digit each picture is read as (majority of its k nearest real digits)
    distance: np.ndarray  # Euclidean pixel distance from each picture to its nearest real digit
    real_distance: float  # median distance from a real digit to its nearest other real digit


def read_by_neighbours(images: torch.Tensor, k: int = 5) -> NeighbourReading:
    """Read ``[B, 1, H, W]`` pictures with the real digits alone: no network, nothing the ascent used.

    A k-nearest-neighbour vote over all 1,797 digits of :func:`digits_tensors`
    (Euclidean in pixels, at the pictures' size) says which digit each picture
    is nearest to; the distance to the single nearest real digit, against
    the same distance among real digits (``real_distance``), says whether it
    looks like a digit at all (Cover & Hart 1967; scikit-learn's
    ``KNeighborsClassifier`` and ``NearestNeighbors``).
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be [B, 1, H, W] digits, got shape {tuple(images.shape)}.")
    x, y = digits_tensors(images.shape[-1])
    real = x.flatten(1).numpy()
    pics = images.detach().float().cpu().flatten(1).numpy()
    vote = neighbors.KNeighborsClassifier(k).fit(real, y.numpy())
    near = neighbors.NearestNeighbors(n_neighbors=2).fit(real)
    return NeighbourReading(
        labels=vote.predict(pics).tolist(),
        distance=near.kneighbors(pics, 1)[0][:, 0],
        real_distance=float(np.median(near.kneighbors(real)[0][:, 1])),
    )
