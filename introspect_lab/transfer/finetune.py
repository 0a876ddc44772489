"""Feature extraction, fine-tuning, per-layer linear probes, and their figures (notebook 10)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..features import extract_features, penultimate_layer
from ..hooks import capture, frozen
from ..intervals import Difference, paired_difference
from ..lazy import lazy_import
from ..models import ModelInfo, get_layer, list_layers, model_info
from .tasks import Task, per_class_split, val_test_split
from .training import History, correct, small_cnn, train

linear_model = lazy_import("sklearn.linear_model")
pipeline = lazy_import("sklearn.pipeline")
preprocessing = lazy_import("sklearn.preprocessing")

# ---------------------------------------------------------------------------
# Feature extraction and fine-tuning of a pretrained model
# ---------------------------------------------------------------------------


def stage_layers(model: nn.Module) -> list[str]:
    """The network's stages in forward order: layers with parameters and a C×H×W output.

    Top-level layers, with long sequences (more than 4 children) opened up:
    ``stem``, ``blocks.0`` … ``blocks.15``, ``head`` for the bundled model;
    ``conv1``, ``layer1`` … ``layer4`` for ResNet; ``features.N`` for the others.
    """
    shapes = {r.name: r.shape for r in list_layers(model, depth=2) if len(r.shape) == 3 and r.shape[1] > 1}
    names = []
    for name, module in model.named_children():
        children = [f"{name}.{c}" for c, _ in module.named_children()]
        names += children if isinstance(module, nn.Sequential) and len(children) > 4 else [name]
    return [n for n in names if n in shapes and any(True for _ in get_layer(model, n).parameters())]


class TransferModel(nn.Module):
    """A pretrained backbone read at ``layer`` (spatially averaged if C×H×W) plus a new linear ``head``.

    Layers named in ``trainable`` (and the head) learn; the rest of the
    backbone is frozen and stays in eval mode even when the model is put in
    train mode, so its BatchNorm layers keep their ImageNet statistics.
    """

    def __init__(
        self,
        backbone: nn.Module,
        layer: str,
        head: nn.Linear,
        classes: Sequence[str],
        trainable: Sequence[str] = (),
        bn: str = "train",
    ) -> None:
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
        self.lab_info = ModelInfo(
            name=f"{info.name}+head",
            source=f"{info.name} features at {layer}",
            input_size=info.input_size,
            mean=info.mean,
            std=info.std,
            categories=tuple(classes),
        )

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
    hist = train(
        head,
        feats,
        labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        x_val=val,
        labels_val=labels_val,
        desc="feature extraction (head only)",
        label="feature extraction",
        progress=progress,
    )
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
    start: tuple[TransferModel, History] | None = None,
) -> tuple[TransferModel, History]:
    """Fine-tuning (seed 003): train the head on frozen features first, then also retrain ``layers``.

    ``layers``: ``"last"`` (the last two stages, :func:`stage_layers`; for the
    bundled model ``blocks.15`` and ``head``), ``"all"``, or a list of names.
    BatchNorm in the retrained layers: ``bn="frozen"`` (default) keeps the ImageNet
    statistics and learns only the scale and shift; ``bn="train"`` re-estimates
    the statistics on the new data (train mode). The frozen layers always keep theirs. The model passed in is
    not changed (training runs on a copy). Returns the fine-tuned :class:`TransferModel` and
    the learning curves of the fine-tuning epochs, numbered after the ``head_epochs``
    of head-only training (its first point is the head alone).

    ``start``: the ``(model, history)`` that :func:`feature_extraction` returned for this
    ``model``, ``x``, ``labels`` and ``seed``. Fine-tuning then starts from a copy of that head
    instead of training the same head again (``layer`` and ``head_epochs`` are then ``start``'s);
    ``start`` itself is not changed.
    """
    if bn not in ("train", "frozen"):
        raise ValueError(f"bn must be 'train' (re-estimate statistics) or 'frozen', got {bn!r}.")
    options = dict(lr=lr, batch_size=batch_size, seed=seed, x_val=x_val, labels_val=labels_val)
    if start is not None:
        tm, head_hist = _check_start(start, model, classes, layer)
        return _retrain(
            copy.deepcopy(tm), head_hist, x, labels, layers, bn, epochs, progress=progress, **options
        )
    tm, head_hist = feature_extraction(
        model,
        x,
        labels,
        classes,
        layer=layer,
        epochs=head_epochs,
        batch_size=batch_size,
        x_val=x_val,
        labels_val=labels_val,
        seed=seed,
        progress=progress,
    )
    return _retrain(tm, head_hist, x, labels, layers, bn, epochs, progress=progress, **options)


def _check_start(start, model: nn.Module, classes: Sequence[str], layer: str | None):
    ok = isinstance(start, tuple) and len(start) == 2
    if not (ok and isinstance(start[0], TransferModel) and isinstance(start[1], History)):
        raise ValueError(
            "start must be the (model, history) pair that feature_extraction returned, "
            f"got {type(start).__name__}."
        )
    tm = start[0]
    if type(tm.backbone) is not type(model) or tuple(tm.lab_info.categories) != tuple(classes):
        raise ValueError(
            f"start was made from a {type(tm.backbone).__name__} for the classes "
            f"{list(tm.lab_info.categories)[:5]}…, not from this {type(model).__name__} for "
            f"{list(classes)[:5]}…; run feature_extraction on this model and task first."
        )
    if layer is not None and layer != tm.layer:
        raise ValueError(f"start reads the features at {tm.layer!r}, not {layer!r}; leave layer out.")
    return start


def _retrain(tm, head_hist, x, labels, layers, bn, epochs, **options) -> tuple[TransferModel, History]:
    """:func:`fine_tune` after its head-only stage: retrain ``layers`` of ``tm`` (in place) with its head.

    ``options`` go to :func:`~introspect_lab.transfer.training.train`.
    """
    head_epochs = head_hist.epoch[-1]
    trainable = _resolve_trainable(tm.backbone, layers)
    tm = TransferModel(tm.backbone, tm.layer, tm.head, tm.lab_info.categories, trainable, bn)
    what = "everything" if layers == "all" else ", ".join(trainable)
    hist = train(
        tm, x, labels, epochs=epochs, desc=f"fine-tuning ({what})", label=f"fine-tuning ({what})", **options
    )
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


def _probe(f_train, y_train, C: float = 1.0):
    clf = pipeline.make_pipeline(
        preprocessing.StandardScaler(), linear_model.LogisticRegression(C=C, max_iter=2000)
    )
    return clf.fit(np.asarray(f_train), np.asarray(y_train))


def linear_probe(f_train, y_train, f_test, y_test, *, C: float = 1.0) -> float:
    """Test accuracy of a logistic-regression classifier on standardised features (scikit-learn).

    The "linear classifier on the top layer / from different stages" of seed 001's
    table; on ImageNet features it is the off-the-shelf baseline of Donahue et al.
    2014 (DeCAF) and Razavian et al. 2014 (a linear SVM there).
    """
    return float(_probe(f_train, y_train, C).score(np.asarray(f_test), np.asarray(y_test)))


def _stage_features(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    batch_size: int = 64,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Spatially averaged activations of several layers in one forward pass per batch."""
    show = config.show_progress() if progress is None else progress
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with frozen(model), torch.no_grad(), capture(model, list(layers), stop=True) as cap:
        for a in tqdm(range(0, x.shape[0], batch_size), desc="features per stage", disable=not show):
            cap.run(x[a : a + batch_size])
            for name in layers:
                out[name].append(_pooled(cap.activations[name]))
    return {name: torch.cat(parts) for name, parts in out.items()}


@dataclass
class Probes:
    """Linear-probe accuracy per layer for one number of labelled examples (what :func:`layer_probes`
    returns).

    ``val``: mean accuracy on the validation split (for choosing a layer);
    ``test``: mean accuracy on the test split (for reporting); ``hits[layer]``:
    per seed, 0/1 correctness of each test example (for intervals).
    """

    val: dict[str, float]
    test: dict[str, float]
    hits: dict[str, list[np.ndarray]] = field(repr=False)

    @property
    def best(self) -> str:
        """The layer with the best *validation* accuracy (ties: the earlier layer)."""
        return max(self.val, key=self.val.get)

    def gap(self, layer: str, **options) -> Difference:
        """Test accuracy of :attr:`best` minus that of ``layer``, with a paired bootstrap interval over seeds
        and examples.
        """
        return paired_difference(self.hits[self.best], self.hits[layer], (self.best, layer), **options)


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
) -> dict[int, Probes]:
    """Linear-probe accuracy of each stage, for each number of labelled examples per class.

    Features are the spatial averages of each layer's output (one forward pass
    for all layers); for each ``n`` in ``n_per_class`` and each seed, a
    :func:`linear_probe` is trained on ``n`` examples per class; the rest is
    split in half, stratified: a **validation** half to choose the best layer
    and a **test** half to report it (choosing the maximum of ~10 layers on
    the test split would flatter the winner). Returns ``{n: Probes}``.
    """
    layers = list(layers or stage_layers(model))
    feats = {k: v.numpy() for k, v in _stage_features(model, x, layers, progress=progress).items()}
    y = np.asarray(labels)
    ns = [n_per_class] if isinstance(n_per_class, int) else list(n_per_class)
    result: dict[int, Probes] = {}
    for n in ns:
        val = {name: 0.0 for name in layers}
        test = {name: 0.0 for name in layers}
        hits: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        for seed in seeds:
            tr, rest = per_class_split(y, n, seed=seed, test_size=test_size)
            va, te = val_test_split(y, rest, seed=seed)
            for name in layers:
                f = feats[name]
                clf = _probe(f[tr], y[tr])
                val[name] += clf.score(f[va], y[va]) / len(seeds)
                hit = (clf.predict(f[te]) == y[te]).astype(float)
                test[name] += hit.mean() / len(seeds)
                hits[name].append(hit)
        result[n] = Probes(val, test, hits)
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
) -> dict[str, list]:
    """Test accuracy of feature extraction and of fine-tuning for each number of labelled examples per class.

    Returns ``{"n": [...], "feature extraction": [...], "fine-tuning": [...],
    "difference": [...]}`` (the same split per ``n`` for both methods;
    fine-tuning retrains ``layers``). ``difference[i]`` is fine-tuning minus
    feature extraction with a paired bootstrap interval over the test examples
    (:class:`~introspect_lab.intervals.Difference`): name a winner only when it
    excludes zero.
    """
    y = task.labels.numpy()
    rows: dict[str, list] = {"n": [], "feature extraction": [], "fine-tuning": [], "difference": []}
    own = fine_tune.__kwdefaults__  # fine-tuning at fine_tune's lr, batch size and BatchNorm handling
    options = dict(lr=own["lr"], batch_size=own["batch_size"], seed=seed, progress=progress)
    for n in ns:
        tr, te = per_class_split(y, n, seed=seed, test_size=test_size)
        x_tr, x_te = task.batch(model, tr), task.batch(model, te)  # only these (a whole task can be 50 MB)
        fe, head_hist = feature_extraction(
            model, x_tr, y[tr], task.classes, epochs=head_epochs, seed=seed, progress=progress
        )
        hit_fe = correct(fe, x_te, y[te])
        # fine-tuning starts from this head, as fine_tune(start=...) does, but retrains it in place: fe is
        # scored already, so it needs no copy (a whole backbone per n)
        ft, _ = _retrain(fe, head_hist, x_tr, y[tr], layers, own["bn"], epochs, **options)
        hit_ft = correct(ft, x_te, y[te])
        rows["n"].append(n)
        rows["feature extraction"].append(float(hit_fe.mean()))
        rows["fine-tuning"].append(float(hit_ft.mean()))
        rows["difference"].append(paired_difference(hit_ft, hit_fe, ("fine-tuning", "feature extraction")))
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
) -> dict[str, list]:
    """Fine-tune a pretrained :func:`small_cnn` on ``task`` against the same network from scratch.

    For each ``n`` in ``ns`` and each seed, both networks see the same ``n``
    labelled examples per class and the same schedule (Adam, ``epochs``); only
    the starting weights of ``features`` differ (copied from ``pretrained``, or
    random). The classifier is new in both. Returns ``{"n": ns, "pretrained":
    [mean test accuracy], "scratch": [...], "gain": [...]}`` (seed 003,
    "Pretraining on artificial data"); ``gain[i]`` is pretrained minus scratch
    with a bootstrap interval over seeds and, within each, test examples.
    """
    info = model_info(pretrained)
    width = pretrained.features[0].out_channels
    kernel = pretrained.features[0].kernel_size[0]
    y = task.labels.numpy()
    rows: dict[str, list] = {"n": list(ns), "pretrained": [], "scratch": [], "gain": []}
    show = config.show_progress() if progress is None else progress
    for n in tqdm(list(ns), desc="pretrained vs scratch", disable=not show):
        hits: dict[str, list[np.ndarray]] = {"pretrained": [], "scratch": []}
        for seed in seeds:
            tr, te = per_class_split(y, n, seed=seed, test_size=test_size)
            for kind in hits:
                net = small_cnn(task.classes, width=width, kernel=kernel, size=info.input_size, seed=seed)
                if kind == "pretrained":
                    net.features.load_state_dict(pretrained.features.state_dict())
                train(
                    net,
                    task.batch(net, tr),
                    y[tr],
                    epochs=epochs,
                    lr=lr,
                    batch_size=batch_size,
                    seed=seed,
                    progress=False,
                )
                hits[kind].append(correct(net, task.batch(net, te), y[te]))
        for kind in hits:
            rows[kind].append(float(np.mean([h.mean() for h in hits[kind]])))
        rows["gain"].append(
            paired_difference(
                hits["pretrained"], hits["scratch"], ("pretrained", "scratch"), unit="seeds and test examples"
            )
        )
    return rows
