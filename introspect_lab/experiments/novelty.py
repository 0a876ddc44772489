"""Detecting novel classes from a fine-tuned network's activations (seed 000, §3.2 and §4.2).

Powers & Keselman, "Introspective Neural Networks": fine-tune an ImageNet network (plus a
fully connected *adaptation layer* to the new classes) on a set of classes S1, then train a
small classifier on the activations of one layer to tell S1 images ("seen") from images of
other classes S2 ("unseen"), and test it on S1 against yet other classes S3 (Figures 4–5).

* :func:`load_data` — Oxford Flowers 102 through :mod:`introspect_lab.datasets` when it is
  cached, otherwise the offline stand-in: scikit-learn's digits, upsampled (said aloud).
* :func:`partition` — the paper's three-way class partition and its image partition.
* :func:`fine_tune` — adaptation layer alone, then everything; works on a copy.
* :func:`layer_embeddings` / :func:`cached_layer_embeddings` — layers 0–9 in the paper's
  numbering (the registry's ``model_settings(model).novelty_layers`` for every model), cached on disk.
* :class:`FCDetector`, :class:`ConvDetector`, :func:`train_detector` — the two detectors.
* :func:`msp_scores` (Hendrycks & Gimpel 2017), :func:`mahalanobis_scores` (Lee et al.
  2018) — baselines the paper does not try. Metrics: accuracy at 0.5 and AUROC.
* :mod:`.novelty_run` — the whole experiment over several partitions, with intervals, as JSON;
  ``python -m introspect_lab.experiments.novelty_run``.
Detectors, baselines and features live in :mod:`.novelty_detectors` (re-exported here),
plots in :mod:`.novelty_plots`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .. import config, datasets
from ..classroom import use_data
from ..hooks import frozen
from ..images import normalize, to_rgb
from ..inferred import recognise
from ..models import MODELS, get_layer, model_info, model_settings
from .novelty_detectors import (
    INPUT,
    ConvDetector,
    FCDetector,
    auroc,
    cached_layer_embeddings,
    detection_accuracy,
    detector_scores,
    layer_embeddings,
    mahalanobis_scores,
    msp_scores,
    shuffled_batches,
    train_detector,
)

__all__ = [
    "PAPER_LAYERS",
    "NoveltyData",
    "Partition",
    "AdaptedNet",
    "FCDetector",
    "ConvDetector",
    "NoveltySettings",
    "stages",
    "describe_layers",
    "digits_data",
    "flowers_data",
    "load_data",
    "partition",
    "fine_tune",
    "layer_embeddings",
    "cached_layer_embeddings",
    "train_detector",
    "msp_scores",
    "mahalanobis_scores",
    "detection_accuracy",
    "auroc",
    "detector_scores",
    "INPUT",
    "stand_in_settings",
    "quick_settings",
    "STAND_IN_LIMITS",
    "PAPER_EPOCHS",
]

# Layer k of the paper: 0 is the image, 1–9 the children of torchvision's ResNet-18 up to avgpool.
PAPER_LAYERS = ("image", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")

STAND_IN_LIMITS = (
    "The digits stand-in cannot show fine-grained novelty: its classes are ten handwritten digits "
    "far from ImageNet, 8x8 pixels upsampled, so (i) a seen/unseen boundary between digit shapes "
    "is much easier than between flower species, (ii) fine-tuning adapts the network to a domain "
    "shift (grey strokes vs photos) as well as to the classes, and (iii) with 3 classes per set "
    "the result depends on which digits fall in S1/S2/S3, and (iv) the raw pixels (layer 0) already "
    "separate the digit classes, so it cannot show the paper's layer trend (deeper layers detecting "
    "novelty better). Numbers are not comparable with the paper's Flowers-102 accuracies; what carries "
    "over is the protocol and the comparison with the baselines on this data."
)


def stages(model: nn.Module) -> list[str]:
    """Module names of layers 0–9 for ``model`` (``"input"`` for layer 0):
    ``model_settings(model).novelty_layers``.
    """
    name = model_info(model).name
    if name not in MODELS and recognise(model) is None:
        raise ValueError(
            f"{name} is not a registry model: seed 000's layers 1–9 are mapped by role only for "
            f"{', '.join(MODELS)} (model_settings(model).novelty_layers)."
        )
    names = [INPUT, *model_settings(model).novelty_layers]
    for n in names[1:]:
        get_layer(model, n)
    return names


def describe_layers(model: nn.Module) -> str:
    """One line naming the model and its mapping onto the paper's layers 0–9."""
    pairs = ", ".join(f"{k} {p}→{n}" for k, (p, n) in enumerate(zip(PAPER_LAYERS, stages(model))))
    return f"Model that ran: {model_info(model).name}. Paper layer → this model: {pairs}"


# ---------------------------------------------------------------------------
# Data and partition
# ---------------------------------------------------------------------------


@dataclass
class NoveltyData:
    """Labelled images (uint8 ``[N, 3, S, S]``) with a train (0) / validation (1) split per image."""

    name: str
    images: torch.Tensor
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    description: str
    stand_in: bool

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, model: nn.Module, indices) -> torch.Tensor:
        """The images at ``indices`` as a normalised model input."""
        return normalize(self.images[torch.as_tensor(indices)].float() / 255.0, model)


def digits_data(size: int = 48, val_fraction: float = 1 / 3, seed: int = 0, per_class: int | None = None):
    """scikit-learn's 1,797 8×8 digits, bilinearly upsampled to ``size`` px, grey → 3 channels.

    A seeded, stratified train/validation split (``val_fraction`` of each class to validation).
    ``per_class`` keeps only that many images per class (fast runs).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    keep, split = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == c))[:per_class]
        n_val = int(round(len(idx) * val_fraction))
        keep.extend(idx)
        split.extend([1] * n_val + [0] * (len(idx) - n_val))
    keep = np.asarray(keep)
    x = torch.from_numpy(digits.images[keep] / 16.0).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    images = (x.expand(-1, 3, -1, -1) * 255).round().to(torch.uint8).contiguous()
    return NoveltyData(
        "digits",
        images,
        digits.target[keep],
        np.asarray(split),
        [str(d) for d in range(10)],
        f"scikit-learn digits (offline stand-in for Oxford Flowers 102): {len(keep)} images "
        f"8x8 upsampled to {size} px, seeded {1 - val_fraction:.0%}/{val_fraction:.0%} "
        "train/validation split",
        True,
    )


def flowers_data(size: int = 224) -> NoveltyData:
    """Oxford Flowers 102 from the dataset cache (train and val splits), resized and centre-cropped.

    Reads the files as ``torchvision.datasets.Flowers102`` does, without re-hashing them at every
    load (:func:`~introspect_lab.datasets.fetch_dataset` checked their MD5s)."""
    from PIL import Image
    from scipy.io import loadmat

    base = datasets.fetch_dataset("flowers102") / datasets.DATASETS["flowers102"].root
    set_ids = loadmat(base / "setid.mat", squeeze_me=True)
    label_of = np.atleast_1d(loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"]).astype(int) - 1
    images, labels, split = [], [], []
    for s, key in enumerate(("trnid", "valid")):
        for image_id in np.atleast_1d(set_ids[key]).tolist():
            with Image.open(base / "jpg" / f"image_{image_id:05d}.jpg") as im:
                images.append(datasets._resize_crop(to_rgb(im), size))
            labels.append(int(label_of[image_id - 1]))
            split.append(s)
    return NoveltyData(
        "flowers102",
        torch.from_numpy(np.stack(images)),
        np.asarray(labels),
        np.asarray(split),
        [str(c) for c in range(102)],
        f"Oxford Flowers 102 train+val, {size} px",
        False,
    )


def load_data(name: str = "auto", size: int | None = None, **kwargs) -> NoveltyData:
    """Flowers 102 when cached (``"auto"``/``"flowers102"``), else the digits stand-in; prints which."""
    if name not in ("auto", "flowers102", "digits"):
        raise ValueError(f"data must be 'auto', 'flowers102' or 'digits', got {name!r}.")
    if name == "auto":
        name = use_data("novelty").dataset or "digits"
    data = flowers_data(size or 224) if name == "flowers102" else digits_data(size or 48, **kwargs)
    print(f"Data: {data.description}.")
    return data


@dataclass
class Partition:
    """The paper's partition (§3.2). ``*_unseen`` is 1 for an image of a class not in S1."""

    s1: list[int]
    s2: list[int]
    s3: list[int]
    dropped: list[int]
    finetune: np.ndarray
    train: np.ndarray
    train_unseen: np.ndarray
    test: np.ndarray
    test_unseen: np.ndarray

    def counts(self) -> dict[str, int]:
        """Image counts of each role."""
        return {
            "finetune": len(self.finetune),
            "train_seen": int((self.train_unseen == 0).sum()),
            "train_unseen": int(self.train_unseen.sum()),
            "test_seen": int((self.test_unseen == 0).sum()),
            "test_unseen": int(self.test_unseen.sum()),
        }


def partition(labels: np.ndarray, split: np.ndarray, seed: int = 0) -> Partition:
    """Three even class sets S1, S2, S3 (leftover classes dropped) and the image roles.

    S1's training images are halved per class: one half fine-tunes, the other trains the
    detector as "seen". S2's training images are halved, one half is the detector's "unseen"
    and the other is discarded; the two sides are then cut to the same size. The test set is
    every validation image of S1 (seen) and S3 (unseen).
    """
    labels, split = np.asarray(labels), np.asarray(split)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    k = len(classes) // 3
    if k == 0:
        raise ValueError("partition() needs at least 3 classes.")
    s1, s2, s3 = (sorted(int(c) for c in classes[i * k : (i + 1) * k]) for i in range(3))

    def halves(cls):
        first, second = [], []
        for c in cls:
            idx = rng.permutation(np.flatnonzero((labels == c) & (split == 0)))
            first.extend(idx[: len(idx) // 2])
            second.extend(idx[len(idx) // 2 :])
        return np.asarray(first, dtype=int), np.asarray(second, dtype=int)

    finetune, seen = halves(s1)
    unseen, _discarded = halves(s2)
    n = min(len(seen), len(unseen))
    seen, unseen = (np.sort(rng.choice(a, n, replace=False)) for a in (seen, unseen))
    test = np.flatnonzero(np.isin(labels, s1 + s3) & (split == 1))
    return Partition(
        s1,
        s2,
        s3,
        sorted(int(c) for c in classes[3 * k :]),
        np.sort(finetune),
        np.concatenate([seen, unseen]),
        np.repeat([0, 1], n),
        test,
        np.isin(labels[test], s3).astype(int),
    )


# ---------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------


class AdaptedNet(nn.Module):
    """The ImageNet network followed by the paper's fully connected adaptation layer (1000 → classes)."""

    def __init__(self, backbone: nn.Module, n_classes: int, n_outputs: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        self.adapt = nn.Linear(n_outputs, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapt(self.backbone(x))


def fine_tune(
    model: nn.Module,
    data: NoveltyData,
    indices,
    *,
    head_epochs: int = 20,
    full_epochs: int = 5,
    batch_size: int = 32,
    lr_head: float = 1e-3,
    lr_full: float = 1e-4,
    seed: int = 0,
    in_place: bool = False,
    freeze_bn: bool = True,
    progress: bool | None = None,
) -> AdaptedNet:
    """Train the adaptation layer alone for ``head_epochs``, then everything for ``full_epochs``.

    Works on a deep copy of ``model`` unless ``in_place=True``. ``freeze_bn`` keeps BatchNorm
    in eval mode while everything trains (its weights still learn, its running statistics stay):
    with batches of 32 and the bundled model's BatchNorm momentum of 0.01, batch statistics in
    training and running statistics in eval would otherwise disagree. The head-only phase reads the
    frozen network's outputs once (same result as re-running it every epoch: eval mode, no
    augmentation). Adam, cross-entropy over the classes of ``indices``. Returns the adapted
    network in eval mode, with ``history`` (loss per epoch) attached.
    """
    indices = np.asarray(indices)
    classes = sorted(set(data.labels[indices].tolist()))
    target = torch.as_tensor([classes.index(c) for c in data.labels[indices]])
    backbone = model if in_place else copy.deepcopy(model)
    backbone.lab_info = model_info(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = AdaptedNet(backbone, len(classes))
    net.classes, net.history = classes, []
    show = config.show_progress() if progress is None else progress
    with frozen(backbone), torch.no_grad():
        outs = torch.cat(
            [backbone(data.batch(backbone, indices[b : b + 64])) for b in range(0, len(indices), 64)]
        )
    opt = torch.optim.Adam(net.adapt.parameters(), lr=lr_head)
    bar = tqdm(total=head_epochs + full_epochs, desc="Fine-tuning", disable=not show)
    for _ in range(head_epochs):
        for b in shuffled_batches(len(indices), batch_size, gen):
            loss = F.cross_entropy(net.adapt(outs[b]), target[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.history.append(("head", loss.item()))
        bar.update()
    if full_epochs:
        net.train()
        if freeze_bn:  # keep the running statistics: small batches, and no train/eval mismatch
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        for p in net.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(net.parameters(), lr=lr_full)
        with torch.random.fork_rng():  # dropout's masks come from the seed, not from the caller's state
            torch.manual_seed(seed)
            for _ in range(full_epochs):
                for b in shuffled_batches(len(indices), batch_size, gen):
                    loss = F.cross_entropy(net(data.batch(backbone, indices[b.numpy()])), target[b])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                net.history.append(("full", loss.item()))
                bar.update()
    bar.close()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
        p.grad = None
    return net


# ---------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------

PAPER_EPOCHS = {"figure4": (20, 5), "figure5_without": (120, 0), "figure5_with": (20, 100), "detector": 50}


@dataclass
class NoveltySettings:
    """Everything a run depends on. Epoch pairs are (adaptation layer alone, then everything).

    The defaults are the paper's (Figure 4: 20+5; Figure 5: 120+0 vs 20+100; detectors 50
    epochs), over 5 class partitions, each with its own fine-tuning; a quarter of the detector's
    training set is held out to choose layers and thresholds. :func:`stand_in_settings` and
    :func:`quick_settings` scale down. The whole run is :func:`.novelty_run.run`.
    """

    model: str = "resnet18"
    fallback: str = "efficientnet_lite0"
    data: str = "auto"
    size: int | None = None  # None: the data set's (224 px Flowers 102, 48 px digits)
    per_class: int | None = None
    figure4: tuple[int, int] = (20, 5)
    figure5_without: tuple[int, int] = (120, 0)
    figure5_with: tuple[int, int] = (20, 100)
    detector_epochs: int = 50
    partitions: int = 5
    select_fraction: float = 0.25
    batch_size: int = 32
    max_side: int = 8
    seed: int = 0
    figure5_layers: tuple[int, ...] = (6, 7, 8, 9)
    freeze_bn: bool = True
    extra: dict = field(default_factory=dict)


def stand_in_settings() -> NoveltySettings:
    """The committed run on the digits stand-in: 100 digits per class, 5 partitions (352 s of CPU on one
    core).

    The paper's epochs (Figure 4: 20 + 5; Figure 5 without fine-tuning: 120 + 0; detectors 50),
    except Figure 5 with fine-tuning, 20 + 30 (the paper: 20 + 100). :class:`NoveltySettings` has the paper's.
    """
    return NoveltySettings(per_class=100, figure5_with=(20, 30))


def quick_settings() -> NoveltySettings:
    """A tiny run for fast mode and tests: 12 digits per class, 48 px, 1–2 epochs, two partitions."""
    return NoveltySettings(
        size=48,  # the digits' size; Flowers 102 too, which would otherwise run at 224 px
        per_class=12,
        figure4=(1, 1),
        figure5_without=(2, 0),
        figure5_with=(1, 1),
        detector_epochs=4,
        partitions=2,
    )
