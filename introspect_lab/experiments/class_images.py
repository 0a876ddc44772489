"""Labelled images of ImageNet classes for the paper experiments: a real subset, or the offline stand-in.

:func:`load_images` reads Imagewoof or Imagenette through the dataset registry when
they are cached, and otherwise builds an honest offline stand-in from the bundled
photos (:func:`stand_in_images`), printing which one it used and what it cannot show.
:func:`split_classes` and :func:`sample_pairs` implement the sampling protocol of
seed 000 (sec. 3.1.1): batches of images from random classes, disjoint train and
test classes, intra- and inter-class (source, style) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..classroom import use_data
from ..datasets import DATASETS, imagenette_pool, offline_pool
from ..hooks import frozen
from ..images import load_image, sample_image
from ..models import model_info

__all__ = [
    "ClassImages",
    "Pair",
    "STAND_IN_LIMITS",
    "stand_in_images",
    "dataset_images",
    "load_images",
    "split_classes",
    "sample_pairs",
]

RELATIONS = ("intra", "inter")


@dataclass
class ClassImages:
    """Images of ImageNet classes: ``images[i]`` (``[N, 3, S, S]`` in [0, 1]) shows class ``labels[i]``."""

    images: torch.Tensor
    labels: np.ndarray  # ImageNet-1k index of each image
    names: dict[int, str]  # ImageNet index -> class name
    data: str  # "stand-in", "imagewoof" or "imagenette"
    description: str
    limits: str  # what this data cannot show

    @property
    def classes(self) -> list[int]:
        return sorted({int(c) for c in self.labels})

    def of_class(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.labels == c)


STAND_IN_LIMITS = (
    "The stand-in has 10 'classes', one per bundled photo, each labelled with the ImageNet class the "
    "model itself gives the whole photo; its 'images of a class' are random crops of that one photo. "
    "So 'another image of the same class' (intra-class) is another crop of the same photo: same "
    "lighting, pose, background and object instance, which makes intra-class transfer far easier than "
    "in the paper. Several classes (textures, the Hubble field) are no ImageNet object at all, and the "
    "labels come from the model, so the rank without transfer is biased towards 1 for whole-photo-like "
    "crops. It cannot show fine-grained shifts between similar classes (the paper's theme; Imagewoof's "
    "dog breeds) nor variation across instances of a class, which the class-level Gram statistic is "
    "meant to average over. Numbers are not comparable with the paper's ImageNet-validation numbers."
)


def stand_in_images(model: nn.Module, per_class: int = 8, size: int = 128, seed: int = 0) -> ClassImages:
    """The offline stand-in: :func:`~introspect_lab.datasets.offline_pool`'s crops of the 10 bundled photos.

    Each photo is one class, labelled by the model's top-1 class for the whole photo
    (224 px centre crop); when two photos share a top-1 class, the later one takes its
    best class not yet used. The digits of the pool are left out (no ImageNet class).
    """
    pool = offline_pool(per_class=per_class, size=size, seed=seed)
    photos = [n for n in pool.label_names if not n.startswith("digit")]
    batch = torch.cat([load_image(sample_image(n), model, size=224) for n in photos])
    with frozen(model), torch.no_grad():
        order = model(batch).argsort(1, descending=True)
    cats = model_info(model).categories
    label_of, used = {}, set()
    for i, n in enumerate(photos):
        label_of[n] = next(int(k) for k in order[i] if int(k) not in used)
        used.add(label_of[n])
    keep = [i for i in range(len(pool)) if pool.label_of(i) in label_of]
    labels = np.array([label_of[pool.label_of(i)] for i in keep])
    return ClassImages(
        images=pool.float01(keep),
        labels=labels,
        names={c: cats[c] for c in label_of.values()},
        data="stand-in",
        description=(
            f"offline stand-in: {per_class} random crops ({size} px) of each of {len(photos)} bundled "
            f"photos; each photo is a class labelled by {model_info(model).name}'s own top-1 for the "
            "whole photo: " + ", ".join(f"{n} -> {cats[c]} ({c})" for n, c in label_of.items())
        ),
        limits=STAND_IN_LIMITS,
    )


def dataset_images(dataset: str = "imagewoof", per_class: int = 8, size: int = 128) -> ClassImages:
    """Imagewoof / Imagenette validation images through the dataset registry (cached or downloadable).

    Labels are the ImageNet-1k indices of the WordNet-id folders
    (:attr:`~introspect_lab.datasets.DatasetSpec.classes`).
    """
    spec = DATASETS[dataset]
    pool = imagenette_pool("val", per_class=per_class, size=size, dataset=dataset)
    wnids = sorted(spec.classes)
    labels = np.array([spec.classes[wnids[int(k)]][0] for k in pool.labels])
    return ClassImages(
        images=pool.float01(),
        labels=labels,
        names={idx: name for idx, name in spec.classes.values()},
        data=dataset,
        description=f"{dataset} validation split, the first {per_class} images of each of its 10 classes, {size} px",
        limits=(
            f"{per_class} images per class of 10 ImageNet classes, not the paper's ImageNet validation "
            "subset over all classes; rank is still over all 1000 classes."
        ),
    )


def load_images(model: nn.Module, data: str = "auto", per_class: int = 8, size: int = 128) -> ClassImages:
    """``data="auto"``: Imagewoof if cached, else Imagenette if cached, else the offline stand-in (printed)."""
    if data == "auto":
        data = use_data("style shift").dataset or "stand-in"
    if data == "stand-in":
        out = stand_in_images(model, per_class=per_class, size=size)
    elif data in ("imagewoof", "imagenette"):
        out = dataset_images(data, per_class=per_class, size=size)
    else:
        raise ValueError(f"data must be 'auto', 'imagewoof', 'imagenette' or 'stand-in', got {data!r}.")
    print(f"Data: {out.description}.")
    return out


def split_classes(classes: Sequence[int], n_train: int = 5, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded split of the classes into disjoint train (``n_train``) and test (the rest) sets."""
    classes = sorted(int(c) for c in classes)
    if not 0 < n_train < len(classes):
        raise ValueError(f"n_train must be between 1 and {len(classes) - 1}, got {n_train}.")
    perm = np.random.default_rng(seed).permutation(len(classes))
    train = sorted(classes[i] for i in perm[:n_train])
    return train, sorted(set(classes) - set(train))


@dataclass(frozen=True)
class Pair:
    """One trial: transfer the style of image ``style`` onto image ``source``; score class ``target``."""

    source: int
    style: int
    target: int  # the style image's class


def sample_pairs(
    data: ClassImages,
    classes: Sequence[int],
    relation: str,
    rng: np.random.Generator,
    n_images: int = 5,
    n_batches: int = 1,
) -> list[Pair]:
    """``n_batches`` batches of ``n_images`` source images from ``n_images`` random ``classes``.

    Intra-class: the style image is another image of the source's class. Inter-class:
    it is an image of another class from ``classes``. The target is the style image's class.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be 'intra' or 'inter', got {relation!r}.")
    classes = [int(c) for c in classes]
    if len(classes) < n_images or (relation == "inter" and len(classes) < 2):
        raise ValueError(f"Need at least {n_images} classes for batches of {n_images}, got {len(classes)}.")
    pairs = []
    for _ in range(n_batches):
        for c in rng.choice(classes, size=n_images, replace=False):
            src = int(rng.choice(data.of_class(int(c))))
            if relation == "intra":
                pool = [i for i in data.of_class(int(c)) if i != src]
                if not pool:
                    raise ValueError(f"Class {int(c)} has one image; intra-class pairs need two.")
            else:
                other = int(rng.choice([k for k in classes if k != c]))
                pool = list(data.of_class(other))
            sty = int(rng.choice(pool))
            pairs.append(Pair(src, sty, int(data.labels[sty])))
    return pairs
