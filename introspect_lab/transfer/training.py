"""A small network that trains in seconds on one core, and the one training loop of the package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..fastpath import ChannelsLast
from ..hooks import frozen
from ..models import ModelInfo
from ..validation import check_int

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
    check_int("width", width, 1)
    torch.manual_seed(seed)
    pad = kernel // 2
    model = nn.Sequential()
    model.add_module(
        "features",
        nn.Sequential(
            nn.Conv2d(3, width, kernel, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, kernel, padding=pad),
            nn.ReLU(),
        ),
    )
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten(1))
    model.add_module("classifier", nn.Linear(4 * width, len(classes)))
    model.lab_info = ModelInfo(
        name="small_cnn",
        source=f"trained here (width {width}, {kernel}×{kernel} kernels)",
        input_size=size,
        categories=tuple(classes),
    )
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


def correct(model: nn.Module, x: torch.Tensor, labels, *, batch_size: int = 64) -> np.ndarray:
    """Per image, 1.0 if the model classifies ``x`` (normalised) as ``labels``, else 0.0 (eval mode, no grad).

    The unit a paired bootstrap resamples (:func:`~introspect_lab.intervals.paired_difference`).
    """
    labels = torch.as_tensor(labels)
    hits = []
    with frozen(model), torch.no_grad():
        run = ChannelsLast(model)  # faster convolutions on a CPU
        for a in range(0, x.shape[0], batch_size):
            hits.append(run(x[a : a + batch_size]).argmax(1) == labels[a : a + batch_size])
    return torch.cat(hits).double().numpy() if hits else np.zeros(0)


def accuracy(model: nn.Module, x: torch.Tensor, labels, *, batch_size: int = 64) -> float:
    """Fraction of ``x`` (normalised) that the model classifies as ``labels`` (eval mode, no grad).

    The mean of :func:`correct`; 0 for an empty batch.
    """
    hits = correct(model, x, labels, batch_size=batch_size)
    return float(hits.mean()) if hits.size else 0.0


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
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
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
    forward = ChannelsLast.probed(model, x)  # faster convolutions and their gradients on a CPU
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
                out = forward(xb)
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
                hist.val_acc.append(accuracy(model, x_val, y_val))
    finally:
        for m, training in modes:
            m.training = training
        for p in params:
            p.grad = None
    return hist
