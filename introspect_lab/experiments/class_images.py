"""Labelled images of ImageNet classes for the paper experiments: a real subset, or the offline stand-in.

:func:`load_images` reads Imagenette (random ImageNet classes, as the paper drew them)
or Imagewoof (ten dog breeds, the fine-grained variant) through the dataset registry
when they are cached, at 224 px. Offline it uses the curated real photos of
``data/photos`` (:func:`photo_images`: several distinct photos per class, public
domain/CC0, :mod:`introspect_lab.photos`); :func:`stand_in_images` (crops of single
photos) is kept for quick tests. It prints which one it used and what it cannot show.
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
from ..photos import PHOTOS_DIR, load_photos

__all__ = [
    "ClassImages",
    "Pair",
    "STAND_IN_LIMITS",
    "stand_in_images",
    "photo_images",
    "PHOTO_LIMITS",
    "DATASET_SIZE",
    "dataset_images",
    "load_images",
    "split_classes",
    "sample_pairs",
    "resolve_data",
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
    sources: np.ndarray | None = None  # the source photo of each image (clusters for the bootstrap)

    def __post_init__(self) -> None:
        if self.sources is None:
            self.sources = np.arange(len(self.labels))

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
        sources=np.array([photos.index(pool.label_of(i)) for i in keep]),
    )


PHOTO_LIMITS = (
    "The curated photos are real and distinct (several photos per class, labelled by hand from their file "
    "names, kept when the model ranks their class in its top 5), but few: 3 to 7 photos of each of 7 "
    "classes (castles, dams, hammers, palaces, screwdrivers, solar dishes, triumphal arches). Train and "
    "test classes are 3 and 4 classes, not the paper's 5 and 5 of ImageNet's 1000, and the photos were "
    "selected for being recognised, so a photo's own class starts near the top (the intra-class rows) and "
    "the effective sample is the number of distinct source photos, not of pairs. Numbers are not "
    "comparable with the paper's ImageNet-validation numbers."
)


def photo_images(size: int = 128, folder=None) -> ClassImages:
    """The curated real photos of ``data/photos`` (:func:`introspect_lab.photos.load_photos`), ``size`` px.

    Labels are hand labels (ImageNet indices); every image is its own source photo.
    """
    images, recs = load_photos(folder or PHOTOS_DIR, size=size)
    labels = np.array([r.label for r in recs])
    counts = {r.class_name: int((labels == r.label).sum()) for r in recs}
    return ClassImages(
        images=images.float() / 255.0,
        labels=labels,
        names={r.label: r.class_name for r in recs},
        data="photos",
        description=(
            f"curated real photos (data/photos, GCompris, public domain/CC0), {size} px: "
            + ", ".join(f"{n} {k}" for n, k in sorted(counts.items()))
        ),
        limits=PHOTO_LIMITS,
    )


#: Image size per data set: the paper's 224 px on real ImageNet subsets.
DATASET_SIZE = {"imagenette": 224, "imagewoof": 224, "photos": 96, "stand-in": 96}


def dataset_images(dataset: str = "imagenette", per_class: int = 8, size: int = 224) -> ClassImages:
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
        description=(
            f"{dataset} validation split, the first {per_class} images of each of its 10 classes, {size} px"
        ),
        limits=(
            f"{per_class} images per class of 10 ImageNet classes, not the paper's ImageNet validation "
            "subset over all classes; rank is still over all 1000 classes."
        ),
    )


def resolve_data(data: str = "auto") -> str:
    """``"auto"`` → Imagenette if cached, else Imagewoof if cached, else the curated ``"photos"``."""
    if data == "auto":
        return use_data("style shift").dataset or "photos"
    if data not in DATASET_SIZE:
        raise ValueError(f"data must be 'auto' or one of {sorted(DATASET_SIZE)}, got {data!r}.")
    return data


def load_images(
    model: nn.Module, data: str = "auto", per_class: int = 8, size: int | None = None
) -> ClassImages:
    """Imagenette / Imagewoof when cached (224 px), else the curated photos (printed); ``size`` overrides."""
    data = resolve_data(data)
    size = size or DATASET_SIZE[data]
    if data == "stand-in":
        out = stand_in_images(model, per_class=per_class, size=size)
    elif data == "photos":
        out = photo_images(size=size)
    else:
        out = dataset_images(data, per_class=per_class, size=size)
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
