"""Offline tasks for transfer learning: digits, faces, photo tiles, rendered shapes; per-class splits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter
from torch import nn

from ..datasets import OFFLINE_PHOTOS, offline_pool
from ..images import normalize
from ..lazy import lazy_import
from ..models import model_info
from ..validation import check_int

skimage_data = lazy_import("skimage.data")
sklearn_datasets = lazy_import("sklearn.datasets")
model_selection = lazy_import("sklearn.model_selection")

# ---------------------------------------------------------------------------
# Offline tasks
# ---------------------------------------------------------------------------


@dataclass
class Task:
    """A labelled image set: ``images`` in [0, 1] as ``[N, 3, S, S]`` floats, ``labels`` ``[N]``."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    description: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"Task({self.name!r}: {len(self)} images of {self.images.shape[-1]} px, "
            f"{len(self.classes)} classes)"
        )

    def batch(self, model: nn.Module | None = None, indices=None) -> torch.Tensor:
        """The images (or a subset) normalised for ``model`` (ImageNet statistics by default)."""
        imgs = self.images if indices is None else self.images[indices]
        if model is None:
            return normalize(imgs)
        info = model_info(model)
        return normalize(imgs, mean=info.mean, std=info.std)


def _gray_to_task(name: str, gray: np.ndarray, labels, classes, size: int, description: str) -> Task:
    """``[N, h, w]`` floats in [0, 1] → bilinear-upsampled RGB ``[N, 3, size, size]``."""
    check_int("size", size, 8)
    t = torch.as_tensor(np.asarray(gray, dtype=np.float32))[:, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return Task(
        name, t.expand(-1, 3, -1, -1).contiguous(), torch.as_tensor(labels).long(), list(classes), description
    )


def digits(size: int = 32) -> Task:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), upsampled to ``size`` px, RGB.

    White strokes on black: very far from ImageNet photos.
    """
    d = sklearn_datasets.load_digits()
    return _gray_to_task(
        "digits",
        d.images / 16.0,
        d.target,
        [str(i) for i in range(10)],
        size,
        f"scikit-learn load_digits, 8×8 upsampled to {size} px",
    )


def faces(size: int = 64, source_size: int | None = None) -> Task:
    """scikit-image's ``lfw_subset``: 100 faces and 100 non-faces (25×25 grey), upsampled to ``size``.

    ``source_size`` first shrinks the 25 px images to that side (e.g. 8, the
    digits' resolution), so the same photos can be compared at the resolution
    of another task: a control that separates resolution from domain.
    """
    imgs = skimage_data.lfw_subset()
    what = "25×25"
    if source_size is not None:
        check_int("source_size", source_size, 2)
        t = torch.as_tensor(np.asarray(imgs, dtype=np.float32))[:, None]
        imgs = F.interpolate(t, size=(source_size, source_size), mode="area")[:, 0].numpy()
        what = f"25×25 shrunk to {source_size}×{source_size}"
    labels = np.r_[np.ones(100), np.zeros(100)].astype(int)
    return _gray_to_task(
        "faces",
        imgs,
        labels,
        ["non-face", "face"],
        size,
        f"scikit-image lfw_subset (faces vs non-faces), {what}, upsampled to {size} px",
    )


def photo_tiles(per_class: int = 30, size: int = 64, seed: int = 0) -> Task:
    """Square tiles of the ten bundled photos, labelled by photo: natural images, close to ImageNet.

    Built by :func:`introspect_lab.datasets.offline_pool` (its digits are left out).
    """
    pool = offline_pool(per_class=per_class, size=size, seed=seed)
    keep = np.flatnonzero(pool.labels < len(OFFLINE_PHOTOS))
    return Task(
        "photo tiles",
        pool.float01(torch.as_tensor(keep)),
        torch.as_tensor(pool.labels[keep]).long(),
        list(OFFLINE_PHOTOS),
        f"{per_class} random tiles of each of 10 bundled photos, {size} px",
    )


SHAPES = ("circle", "square", "triangle", "plus", "cross", "bar", "slash", "arc", "corner", "zigzag")


def _shape_points(kind: str, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """Polylines of one shape in the unit square around (0, 0) (radius about 1)."""
    t = np.linspace(0, 2 * np.pi, 33)
    if kind == "circle":
        return [list(zip(np.cos(t), np.sin(t)))]
    if kind == "square":
        return [[(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]]
    if kind == "triangle":
        return [[(0, -1), (0.95, 0.8), (-0.95, 0.8), (0, -1)]]
    if kind == "plus":
        return [[(-1, 0), (1, 0)], [(0, -1), (0, 1)]]
    if kind == "cross":
        return [[(-1, -1), (1, 1)], [(-1, 1), (1, -1)]]
    if kind == "bar":
        return [[(-1, 0), (1, 0)]]
    if kind == "slash":
        return [[(-0.6, 1), (0.6, -1)]]
    if kind == "arc":
        a = np.linspace(0, np.pi, 17)
        return [list(zip(np.cos(a), np.sin(a) - 0.3))]
    if kind == "corner":
        return [[(-0.8, -1), (-0.8, 0.8), (1, 0.8)]]
    if kind == "zigzag":
        return [[(-1, -0.6), (-0.33, 0.6), (0.33, -0.6), (1, 0.6)]]
    raise ValueError(kind)


def synthetic_shapes(per_class: int = 200, size: int = 32, seed: int = 0) -> Task:
    """Rendered line drawings of ten shapes (:data:`SHAPES`): labels for free, like a game engine's.

    Each image draws one shape in white on black with a random position,
    scale (0.45–0.8 of the half-width), rotation, aspect ratio and stroke width,
    then a slight blur: an artificial stand-in for pretraining data, after
    seed 003's "Pretraining on artificial data" (Richter et al. 2016,
    "Playing for data").
    """
    check_int("per_class", per_class, 1)
    check_int("size", size, 8)
    rng = np.random.default_rng(seed)
    big = size * 4  # draw at 4× and downsample: anti-aliased strokes
    images, labels = [], []
    for label, kind in enumerate(SHAPES):
        for _ in range(per_class):
            img = Image.new("L", (big, big), 0)
            draw = ImageDraw.Draw(img)
            scale = rng.uniform(0.45, 0.8) * big / 2
            aspect = rng.uniform(0.7, 1.3)
            angle = rng.uniform(-0.3, 0.3) if kind != "circle" else 0.0
            cx, cy = big / 2 + rng.uniform(-0.12, 0.12, 2) * big
            c, s = math.cos(angle), math.sin(angle)
            width = int(rng.integers(big // 16, big // 8 + 1))
            for line in _shape_points(kind, rng):
                pts = [
                    (cx + scale * (c * x * aspect - s * y), cy + scale * (s * x * aspect + c * y))
                    for x, y in line
                ]
                draw.line(pts, fill=255, width=width, joint="curve")
            img = img.filter(ImageFilter.GaussianBlur(big / 64)).resize((size, size), Image.BILINEAR)
            images.append(np.asarray(img, dtype=np.float32) / 255.0)
            labels.append(label)
    t = torch.from_numpy(np.stack(images))[:, None].expand(-1, 3, -1, -1).contiguous()
    return Task(
        "shapes",
        t,
        torch.as_tensor(labels),
        list(SHAPES),
        f"{per_class} rendered drawings of each of {len(SHAPES)} shapes, {size} px",
    )


def per_class_split(labels, n_per_class: int, *, seed: int = 0, test_size: float | int | None = None):
    """Indices ``(train, test)``: ``n_per_class`` random training examples of each class, the rest for
    testing.

    ``test_size`` caps the test set (a fraction of the remainder or a count),
    drawn stratified with :func:`sklearn.model_selection.train_test_split`.
    """
    check_int("n_per_class", n_per_class, 1)
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) <= n_per_class:
            raise ValueError(
                f"Class {c} has only {len(members)} examples; n_per_class must be below that "
                "(some must be left for testing)."
            )
        train_idx.extend(rng.choice(members, n_per_class, replace=False))
    train_idx = np.sort(np.asarray(train_idx))
    rest = np.setdiff1d(np.arange(len(y)), train_idx)
    if test_size is not None and test_size < len(rest):
        rest, _ = model_selection.train_test_split(
            rest, train_size=test_size, stratify=y[rest], random_state=seed
        )
        rest = np.sort(rest)
    return train_idx, rest


def val_test_split(labels, indices, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split held-out ``indices`` into stratified halves ``(validation, test)``.

    Choose on the validation half (a layer, an epoch), report on the test half:
    the maximum of several scores measured on the test split flatters the winner.
    """
    y = np.asarray(labels)
    idx = np.asarray(indices)
    val, test = model_selection.train_test_split(idx, test_size=0.5, stratify=y[idx], random_state=seed)
    return np.sort(val), np.sort(test)
