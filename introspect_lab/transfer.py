"""Transfer learning: feature extraction, fine-tuning, per-layer linear probes, offline tasks.

Seed 001 (HKUST, "Transfer Learning: Feature Extraction and Fine Tuning") and
seed 003 (Landwehr, "Existing model as feature extractor", "Fine tuning
pre-trained model", "Pretraining on artificial data"):

* **feature extraction** freezes the pretrained network and trains only a new
  linear head on its features (:func:`feature_extraction`). The frozen part
  runs in eval mode, so BatchNorm uses its stored ImageNet statistics;
* **fine-tuning** starts from that head and also retrains the last block(s) or
  everything (:func:`fine_tune`). By default (``bn="frozen"``) BatchNorm keeps
  its stored ImageNet statistics in the retrained blocks too (only its scale
  and shift learn): with a few dozen labelled images, statistics re-estimated
  from mini-batches are noisy. ``bn="train"`` re-estimates them on the new
  data; the frozen blocks always keep theirs;
* **linear probes** on each stage (:func:`layer_probes`) show which depth
  transfers best, the "linear classifier from different stages" of the 2×2
  table in seed 001.

Offline tasks that ship: scikit-learn's digits upsampled (:func:`digits`, far
from ImageNet), scikit-image's ``lfw_subset`` faces vs non-faces (:func:`faces`),
tiles of the bundled photos (:func:`photo_tiles`, close to ImageNet), and
rendered shapes (:func:`synthetic_shapes`) for pretraining on artificial data.
The pretrained model passed in is never changed: training happens on a copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import config
from .hooks import capture, frozen
from .images import normalize
from .models import ModelInfo, get_layer, model_info

__all__ = [
    "Task",
    "digits",
    "faces",
    "photo_tiles",
    "synthetic_shapes",
    "SHAPES",
    "per_class_split",
    "small_cnn",
    "History",
    "train",
    "TransferModel",
    "feature_extraction",
    "fine_tune",
    "stage_layers",
    "layer_probes",
    "linear_probe",
    "examples_per_class",
    "pretrained_vs_scratch",
]


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
    _check_int("size", size, 8)
    t = torch.as_tensor(np.asarray(gray, dtype=np.float32))[:, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return Task(name, t.expand(-1, 3, -1, -1).contiguous(), torch.as_tensor(labels).long(), list(classes),
                description)  # fmt: skip


def digits(size: int = 32) -> Task:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), upsampled to ``size`` px, RGB.

    White strokes on black: very far from ImageNet photos.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    return _gray_to_task("digits", d.images / 16.0, d.target, [str(i) for i in range(10)], size,
                         f"scikit-learn load_digits, 8×8 upsampled to {size} px")  # fmt: skip


def faces(size: int = 64) -> Task:
    """scikit-image's ``lfw_subset``: 100 faces and 100 non-faces (25×25 grey), upsampled to ``size``."""
    from skimage.data import lfw_subset

    imgs = lfw_subset()
    labels = np.r_[np.ones(100), np.zeros(100)].astype(int)
    return _gray_to_task("faces", imgs, labels, ["non-face", "face"], size,
                         f"scikit-image lfw_subset (faces vs non-faces), 25×25 upsampled to {size} px")  # fmt: skip


def photo_tiles(per_class: int = 30, size: int = 64, seed: int = 0) -> Task:
    """Square tiles of the ten bundled photos, labelled by photo: natural images, close to ImageNet.

    Built by :func:`introspect_lab.datasets.offline_pool` (its digits are left out).
    """
    from .datasets import OFFLINE_PHOTOS, offline_pool

    pool = offline_pool(per_class=per_class, size=size, seed=seed)
    keep = np.flatnonzero(pool.labels < len(OFFLINE_PHOTOS))
    return Task("photo tiles", pool.float01(torch.as_tensor(keep)), torch.as_tensor(pool.labels[keep]).long(),
                list(OFFLINE_PHOTOS), f"{per_class} random tiles of each of 10 bundled photos, {size} px")  # fmt: skip


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
    from PIL import Image, ImageDraw, ImageFilter

    _check_int("per_class", per_class, 1)
    _check_int("size", size, 8)
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
    return Task("shapes", t, torch.as_tensor(labels), list(SHAPES),
                f"{per_class} rendered drawings of each of {len(SHAPES)} shapes, {size} px")  # fmt: skip


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}.")


def per_class_split(labels, n_per_class: int, *, seed: int = 0, test_size: float | int | None = None):
    """Indices ``(train, test)``: ``n_per_class`` random training examples of each class, the rest for testing.

    ``test_size`` caps the test set (a fraction of the remainder or a count),
    drawn stratified with :func:`sklearn.model_selection.train_test_split`.
    """
    from sklearn.model_selection import train_test_split

    _check_int("n_per_class", n_per_class, 1)
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
        rest, _ = train_test_split(rest, train_size=test_size, stratify=y[rest], random_state=seed)
        rest = np.sort(rest)
    return train_idx, rest


# ---------------------------------------------------------------------------
# A small network that trains in seconds on one core
# ---------------------------------------------------------------------------


def small_cnn(
    classes: Sequence[str] = tuple(str(i) for i in range(10)),
    *,
    width: int = 16,
    kernel: int = 3,
    size: int = 32,
    seed: int = 0,
) -> nn.Module:
    """A three-conv network for ``size``-px RGB input in ImageNet-normalised space.

    ``features`` (conv–ReLU–maxpool ×2, conv–ReLU) → global average pool →
    ``classifier`` (linear). With :class:`~introspect_lab.models.ModelInfo`
    attached, so every library function (attacks, :func:`predict`, probes)
    treats it like the pretrained models.
    """
    _check_int("width", width, 1)
    torch.manual_seed(seed)
    pad = kernel // 2
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(
        nn.Conv2d(3, width, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, kernel, padding=pad), nn.ReLU(),
    ))  # fmt: skip
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten(1))
    model.add_module("classifier", nn.Linear(4 * width, len(classes)))
    model.lab_info = ModelInfo(name="small_cnn", source=f"trained here (width {width}, {kernel}×{kernel} kernels)",
                               input_size=size, categories=tuple(classes))  # fmt: skip
    return model.eval()


# ---------------------------------------------------------------------------
# One training loop
# ---------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch learning curves: training loss and accuracy, validation accuracy."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    label: str = ""

    @property
    def final(self) -> float:
        """Validation accuracy after the last epoch (``nan`` without validation data)."""
        return self.val_acc[-1] if self.val_acc else float("nan")


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    correct = 0
    with frozen(model), torch.no_grad():
        for a in range(0, x.shape[0], batch_size):
            correct += int((model(x[a : a + batch_size]).argmax(1) == y[a : a + batch_size]).sum())
    return correct / max(int(x.shape[0]), 1)


def train(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    seed: int = 0,
    x_val: torch.Tensor | None = None,
    labels_val=None,
    perturb: Callable | None = None,
    desc: str = "training",
    label: str = "",
    progress: bool | None = None,
) -> History:
    """Train the parameters of ``model`` that require grad, in place, with Adam and cross-entropy.

    ``x`` is a normalised batch, ``labels`` class indices. ``perturb(model, xb,
    yb, epoch)`` may replace each mini-batch before the step (adversarial
    training). After each epoch, accuracy on ``(x_val, labels_val)`` is recorded.
    The model's train/eval flags are restored at the end.
    """
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    y = torch.as_tensor(labels).long()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"Got {x.shape[0]} images and {y.shape[0]} labels; give one label per image.")
    y_val = None if labels_val is None else torch.as_tensor(labels_val).long()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("No parameter of the model requires grad: nothing to train.")
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    modes = [(m, m.training) for m in model.modules()]
    hist = History(label=label or desc)
    show = config.show_progress() if progress is None else progress
    try:
        for epoch in tqdm(range(1, epochs + 1), desc=desc, disable=not show):
            order = torch.randperm(x.shape[0], generator=gen)
            total, correct, count = 0.0, 0, 0
            for a in range(0, x.shape[0], batch_size):
                idx = order[a : a + batch_size]
                xb, yb = x[idx], y[idx]
                if perturb is not None:
                    xb = perturb(model, xb, yb, epoch)
                model.train()
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                correct += int((out.argmax(1) == yb).sum())
                count += len(idx)
            opt.zero_grad(set_to_none=True)
            hist.epoch.append(epoch)
            hist.train_loss.append(total / count)
            hist.train_acc.append(correct / count)
            if x_val is not None and y_val is not None:
                hist.val_acc.append(_accuracy(model, x_val, y_val))
    finally:
        for m, training in modes:
            m.training = training
        for p in params:
            p.grad = None
    return hist


# ---------------------------------------------------------------------------
# Feature extraction and fine-tuning of a pretrained model
# ---------------------------------------------------------------------------


def stage_layers(model: nn.Module) -> list[str]:
    """The network's stages in forward order, each a layer with parameters and C×H×W output.

    ``stem``, ``blocks.0`` … ``blocks.15``, ``head`` for the bundled model;
    ``conv1``, ``layer1`` … ``layer4`` for ResNet; ``features.N`` for the others.
    """
    from .widgets import default_layers

    return [n for n in default_layers(model) if any(True for _ in get_layer(model, n).parameters())]


class TransferModel(nn.Module):
    """A pretrained backbone read at ``layer`` (spatially averaged if C×H×W) plus a new linear ``head``.

    Layers named in ``trainable`` (and the head) learn; the rest of the
    backbone is frozen and stays in eval mode even when the model is put in
    train mode, so its BatchNorm layers keep their ImageNet statistics.
    """

    def __init__(self, backbone: nn.Module, layer: str, head: nn.Linear, classes: Sequence[str],
                 trainable: Sequence[str] = (), bn: str = "train") -> None:  # fmt: skip
        super().__init__()
        self.backbone = backbone
        self.layer = layer
        self.head = head
        self.trainable = list(trainable)
        self.bn = bn
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        for name in self.trainable:
            for p in get_layer(self.backbone, name).parameters():
                p.requires_grad_(True)
        info = model_info(backbone)
        self.lab_info = ModelInfo(name=f"{info.name}+head", source=f"{info.name} features at {layer}",
                                  input_size=info.input_size, mean=info.mean, std=info.std,
                                  categories=tuple(classes))  # fmt: skip

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        if mode:
            for name in self.trainable:
                get_layer(self.backbone, name).train()
                if self.bn == "frozen":
                    for m in get_layer(self.backbone, name).modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with capture(self.backbone, self.layer, detach=False, stop=True) as cap:
            cap.run(x)
        f = cap.activations[self.layer]
        return f.flatten(2).mean(2) if f.dim() == 4 else f.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _resolve_trainable(model: nn.Module, layers) -> list[str]:
    if layers == "all":
        return [n for n, _ in model.named_children()]
    if layers == "last":
        return stage_layers(model)[-2:]
    if isinstance(layers, str):
        layers = [layers]
    for name in layers:
        get_layer(model, name)
    return list(layers)


def feature_extraction(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    classes: Sequence[str],
    *,
    layer: str | None = None,
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 32,
    x_val: torch.Tensor | None = None,
    labels_val=None,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[TransferModel, History]:
    """Frozen pretrained backbone + a new linear head trained on its features (seed 001/003).

    The features of ``layer`` (default the penultimate layer,
    :func:`~introspect_lab.features.penultimate_layer`) are computed once with
    the backbone in eval mode — BatchNorm uses its frozen ImageNet statistics —
    and the head ``W·φ(x) + b`` is trained on them with Adam. Returns a
    :class:`TransferModel` (on a copy of ``model``) and its learning curves.
    """
    from .features import extract_features, penultimate_layer

    layer = layer or penultimate_layer(model)
    show = config.show_progress() if progress is None else progress
    feats = _pooled(extract_features(model, x, layer, batch_size=64, progress=show))
    val = (
        None
        if x_val is None
        else _pooled(extract_features(model, x_val, layer, batch_size=64, progress=show))
    )
    torch.manual_seed(seed)
    head = nn.Linear(feats.shape[1], len(classes))
    hist = train(head, feats, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, x_val=val,
                 labels_val=labels_val, desc="feature extraction (head only)", label="feature extraction",
                 progress=progress)  # fmt: skip
    tm = TransferModel(copy.deepcopy(model), layer, head, classes).eval()
    return tm, hist


def _pooled(f: torch.Tensor) -> torch.Tensor:
    return f.flatten(2).mean(2) if f.dim() == 4 else f.flatten(1)


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    classes: Sequence[str],
    *,
    layers: str | Sequence[str] = "last",
    layer: str | None = None,
    epochs: int = 10,
    lr: float = 3e-4,
    head_epochs: int = 30,
    batch_size: int = 32,
    bn: str = "frozen",
    x_val: torch.Tensor | None = None,
    labels_val=None,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[TransferModel, History]:
    """Fine-tuning (seed 003): train the head on frozen features first, then also retrain ``layers``.

    ``layers``: ``"last"`` (the last two stages, :func:`stage_layers`; for the
    bundled model ``blocks.15`` and ``head``), ``"all"``, or a list of names.
    BatchNorm in the retrained layers: ``bn="frozen"`` (default) keeps the ImageNet
    statistics and learns only the scale and shift; ``bn="train"`` re-estimates
    the statistics on the new data (train mode). The frozen layers always keep theirs. The model passed in is not changed
    (training runs on a copy). Returns the fine-tuned :class:`TransferModel` and
    the learning curves of the fine-tuning epochs, numbered after the ``head_epochs``
    of head-only training (its first point is the head alone).
    """
    if bn not in ("train", "frozen"):
        raise ValueError(f"bn must be 'train' (re-estimate statistics) or 'frozen', got {bn!r}.")
    tm, head_hist = feature_extraction(model, x, labels, classes, layer=layer, epochs=head_epochs,
                                       batch_size=batch_size, x_val=x_val, labels_val=labels_val, seed=seed,
                                       progress=progress)  # fmt: skip
    trainable = _resolve_trainable(tm.backbone, layers)
    tm = TransferModel(tm.backbone, tm.layer, tm.head, classes, trainable, bn)
    what = "everything" if layers == "all" else ", ".join(trainable)
    hist = train(tm, x, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, x_val=x_val,
                 labels_val=labels_val, desc=f"fine-tuning ({what})", label=f"fine-tuning ({what})",
                 progress=progress)  # fmt: skip
    hist.epoch = [head_epochs + e for e in hist.epoch]  # the curve continues where the head's ended
    if head_hist.val_acc:
        hist.epoch.insert(0, head_epochs)
        hist.train_loss.insert(0, head_hist.train_loss[-1])
        hist.train_acc.insert(0, head_hist.train_acc[-1])
        hist.val_acc.insert(0, head_hist.val_acc[-1])
    for p in tm.parameters():
        p.requires_grad_(False)
    return tm.eval(), hist


# ---------------------------------------------------------------------------
# Linear probes per layer, accuracy against labelled examples
# ---------------------------------------------------------------------------


def linear_probe(f_train, y_train, f_test, y_test, *, C: float = 1.0) -> float:
    """Test accuracy of a logistic-regression classifier on standardised features (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    clf.fit(np.asarray(f_train), np.asarray(y_train))
    return float(clf.score(np.asarray(f_test), np.asarray(y_test)))


def _stage_features(model: nn.Module, x: torch.Tensor, layers: Sequence[str], batch_size: int = 64,
                    progress: bool | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """Spatially averaged activations of several layers in one forward pass per batch."""
    show = config.show_progress() if progress is None else progress
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with frozen(model), torch.no_grad(), capture(model, list(layers), stop=True) as cap:
        for a in tqdm(range(0, x.shape[0], batch_size), desc="features per stage", disable=not show):
            cap.run(x[a : a + batch_size])
            for name in layers:
                out[name].append(_pooled(cap.activations[name]))
    return {name: torch.cat(parts) for name, parts in out.items()}


def layer_probes(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    n_per_class: int | Sequence[int],
    *,
    layers: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    test_size: int | None = None,
    progress: bool | None = None,
) -> dict[int, dict[str, float]]:
    """Linear-probe accuracy of each stage, for each number of labelled examples per class.

    Features are the spatial averages of each layer's output (one forward pass
    for all layers); for each ``n`` in ``n_per_class`` and each seed, a
    :func:`linear_probe` is trained on ``n`` examples per class and tested on
    the rest. Returns ``{n: {layer: mean accuracy}}``.
    """
    layers = list(layers or stage_layers(model))
    feats = _stage_features(model, x, layers, progress=progress)
    y = np.asarray(labels)
    ns = [n_per_class] if isinstance(n_per_class, int) else list(n_per_class)
    result: dict[int, dict[str, float]] = {}
    for n in ns:
        acc = {name: 0.0 for name in layers}
        for seed in seeds:
            tr, te = per_class_split(y, n, seed=seed, test_size=test_size)
            for name in layers:
                f = feats[name].numpy()
                acc[name] += linear_probe(f[tr], y[tr], f[te], y[te]) / len(seeds)
        result[n] = acc
    return result


def examples_per_class(
    model: nn.Module,
    task: Task,
    ns: Sequence[int],
    *,
    layers: str | Sequence[str] = "last",
    epochs: int = 8,
    head_epochs: int = 30,
    test_size: int | None = 300,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, list[float]]:
    """Test accuracy of feature extraction and of fine-tuning for each number of labelled examples per class.

    Returns ``{"n": [...], "feature extraction": [...], "fine-tuning": [...]}``
    (the same split per ``n`` for both methods; fine-tuning retrains ``layers``).
    """
    y = task.labels.numpy()
    rows: dict[str, list[float]] = {"n": [], "feature extraction": [], "fine-tuning": []}
    x_all = task.batch(model)
    for n in ns:
        tr, te = per_class_split(y, n, seed=seed, test_size=test_size)
        y_te = torch.as_tensor(y[te])
        fe, _ = feature_extraction(model, x_all[tr], y[tr], task.classes, epochs=head_epochs, seed=seed,
                                   progress=progress)  # fmt: skip
        ft, _ = fine_tune(model, x_all[tr], y[tr], task.classes, layers=layers, epochs=epochs,
                          head_epochs=head_epochs, seed=seed, progress=progress)  # fmt: skip
        rows["n"].append(n)
        rows["feature extraction"].append(_accuracy(fe, x_all[te], y_te))
        rows["fine-tuning"].append(_accuracy(ft, x_all[te], y_te))
    return rows


def pretrained_vs_scratch(
    pretrained: nn.Module,
    task: Task,
    ns: Sequence[int],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 16,
    test_size: int | None = 500,
    progress: bool | None = None,
) -> dict[str, list[float]]:
    """Fine-tune a pretrained :func:`small_cnn` on ``task`` against the same network from scratch.

    For each ``n`` in ``ns`` and each seed, both networks see the same ``n``
    labelled examples per class and the same schedule (Adam, ``epochs``); only
    the starting weights of ``features`` differ (copied from ``pretrained``, or
    random). The classifier is new in both. Returns ``{"n": ns, "pretrained":
    [mean test accuracy], "scratch": [...]}`` (seed 003, "Pretraining on
    artificial data").
    """
    info = model_info(pretrained)
    width = pretrained.features[0].out_channels
    kernel = pretrained.features[0].kernel_size[0]
    y = task.labels.numpy()
    rows: dict[str, list[float]] = {"n": list(ns), "pretrained": [], "scratch": []}
    show = config.show_progress() if progress is None else progress
    for n in tqdm(list(ns), desc="pretrained vs scratch", disable=not show):
        acc = {"pretrained": 0.0, "scratch": 0.0}
        for seed in seeds:
            tr, te = per_class_split(y, n, seed=seed, test_size=test_size)
            for kind in acc:
                net = small_cnn(task.classes, width=width, kernel=kernel, size=info.input_size, seed=seed)
                if kind == "pretrained":
                    net.features.load_state_dict(pretrained.features.state_dict())
                train(net, task.batch(net, tr), y[tr], epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      progress=False)  # fmt: skip
                acc[kind] += _accuracy(net, task.batch(net, te), torch.as_tensor(y[te])) / len(seeds)
        rows["pretrained"].append(acc["pretrained"])
        rows["scratch"].append(acc["scratch"])
    return rows
