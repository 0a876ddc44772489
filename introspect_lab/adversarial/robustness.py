"""Measuring and training robustness: accuracy under attack, ε sweeps, adversarial training
(Madry et al. 2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..attribution.base import resolve_targets
from ..hooks import frozen
from ..images import check_batch
from ..transfer.training import accuracy, train
from ..validation import check_eps
from .attacks import fgsm, fgsm_family, pgd, quantize

# ---------------------------------------------------------------------------
# Measuring robustness
# ---------------------------------------------------------------------------


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    *,
    eps: float,
    attack: str = "pgd",
    batch_size: int = 256,
    **options,
) -> float:
    """Accuracy on adversarial versions of ``x`` made against ``model`` itself (white box).

    ``attack`` is ``"fgsm"`` or ``"pgd"`` (``options`` go to it). The standard
    measure of Madry et al. (2018): accuracy under the worst perturbation found
    in the ε-ball.
    """
    labels = torch.as_tensor(labels)
    method = _attack(attack)
    if attack == "pgd":
        options.setdefault("progress", False)
    parts = [
        method(model, x[a : a + batch_size], labels[a : a + batch_size], eps=eps, **options)
        for a in range(0, x.shape[0], batch_size)
    ]
    return accuracy(model, torch.cat(parts), labels, batch_size=batch_size)


def _attack(name: str):
    attacks = {"fgsm": fgsm, "pgd": pgd}
    if name not in attacks:
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {name!r}.")
    return attacks[name]


@dataclass
class EpsSweep:
    """Accuracy and mean true-class confidence at each ε (what :func:`eps_sweep` returns).

    ``accuracy_8bit``: accuracy once each attacked image is rounded to 8 bits
    (:func:`~introspect_lab.adversarial.quantize`), the image a file could store.
    """

    eps: list[float]
    accuracy: list[float]
    confidence: list[float]
    predictions: list[list[int]]
    attack: str = "fgsm"
    accuracy_8bit: list[float] = field(default_factory=list)

    def first_flip(self, eight_bit: bool = False) -> float | None:
        """The smallest ε at which accuracy drops below its clean value (``None`` if it never does).

        ``eight_bit=True`` reads the accuracy of the images rounded to 8 bits.
        """
        accs = self.accuracy_8bit if eight_bit else self.accuracy
        for e, a in zip(self.eps, accs):
            if a < accs[0]:
                return e
        return None


def eps_sweep(
    model: nn.Module,
    x: torch.Tensor,
    labels=None,
    eps: Sequence[float] = (0, 0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255),
    *,
    attack: str = "fgsm",
    progress: bool | None = None,
    **options,
) -> EpsSweep:
    """Untargeted attacks at each ε: accuracy against ``labels`` and softmax probability of the label.

    ``labels`` default to the model's clean predictions (so clean accuracy is 1).
    Each attacked batch is also rounded to 8 bits and scored again
    (``accuracy_8bit``): pass an 8-bit ``x`` (:func:`~introspect_lab.adversarial.quantize`)
    and a budget below half a grey level leaves the stored image unchanged.
    """
    x = check_batch(x, "x", model)
    with frozen(model), torch.no_grad():
        clean = model(x)
    labels = clean.argmax(1) if labels is None else torch.as_tensor(resolve_targets(model, labels, clean))
    method = _attack(attack)
    if attack == "pgd":
        options.setdefault("progress", False)
        attacked = partial(method, model, x, labels, **options)
    else:  # FGSM's direction does not depend on ε: one gradient serves the whole sweep
        attacked = fgsm_family(model, x, labels, **options)
    show = config.show_progress() if progress is None else progress
    accs, confs, preds, accs8 = [], [], [], []
    for e in tqdm(list(eps), desc=f"{attack} sweep", disable=not show):
        adv = x if e == 0 else attacked(eps=e)
        with frozen(model), torch.no_grad():
            probs = torch.softmax(clean if e == 0 else model(adv), 1)
            rounded = model(quantize(model, adv)).argmax(1)
        accs.append(float((probs.argmax(1) == labels).float().mean()))
        confs.append(float(probs.gather(1, labels[:, None]).mean()))
        preds.append(probs.argmax(1).tolist())
        accs8.append(float((rounded == labels).float().mean()))
    return EpsSweep([float(e) for e in eps], accs, confs, preds, attack, accs8)


# ---------------------------------------------------------------------------
# Robust training (Madry et al. 2018)
# ---------------------------------------------------------------------------


def adversarial_training(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    *,
    eps: float,
    epochs: int = 10,
    steps: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    warmup: int = 0,
    x_val: torch.Tensor | None = None,
    labels_val=None,
    progress: bool | None = None,
):
    """Train ``model`` in place on the min–max objective of Madry et al. (2018), seed 001:

    ``min_θ  Σ_i  max_{‖δ_i‖_∞ ≤ ε}  CE(f_θ(x_i + δ_i), y_i)``

    The inner max is approximated by :func:`pgd` (``steps`` steps, random
    start) against the current weights for every mini-batch; the outer min by
    Adam. ``eps=0`` is standard training. With ``warmup=k`` the budget grows
    linearly over the first ``k`` epochs (ε·epoch/k), which keeps a network
    trained from scratch from stalling at chance (a common schedule, e.g.
    Gowal et al. 2018). Training is what is asked for here,
    so the model's weights change; its train/eval mode is restored.
    Returns the :class:`~introspect_lab.transfer.History` of the run.
    """
    eps = check_eps(eps)

    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a number of epochs ≥ 0, got {warmup!r}.")

    def perturb(net, xb, yb, epoch):
        e = eps * min(1.0, epoch / warmup) if warmup else eps
        if e == 0:
            return xb
        return pgd(net, xb, yb, eps=e, steps=steps, random_start=True, seed=seed + epoch, progress=False)

    return train(
        model,
        x,
        labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        x_val=x_val,
        labels_val=labels_val,
        perturb=perturb,
        desc="adversarial training" if eps > 0 else "standard training",
        progress=progress,
    )


def neighbour_correlation(maps: torch.Tensor) -> torch.Tensor:
    """Per map ``[B, H, W]``, the correlation of each value with its right and lower neighbours (mean of the
    two).

    Near 1 for smooth, image-like maps, near 0 for pixel noise: a statistic of
    how much a gradient looks like an image, which no training loss uses
    (robust networks' gradients are the smoother ones; Tsipras et al. 2019,
    "Robustness may be at odds with accuracy", Fig. 2).
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must be [B, H, W] (one map per image), got shape {tuple(maps.shape)}.")
    m = maps - maps.mean((1, 2), keepdim=True)
    var = m.pow(2).mean((1, 2)).clamp_min(1e-20)
    right = (m[:, :, 1:] * m[:, :, :-1]).mean((1, 2))
    down = (m[:, 1:, :] * m[:, :-1, :]).mean((1, 2))
    return (right + down) / 2 / var


# ---------------------------------------------------------------------------
# A black-box attack through a substitute (seed 004; Papernot et al. 2017)
# ---------------------------------------------------------------------------


def train_substitute(
    target: nn.Module,
    substitute: nn.Module,
    x_query: torch.Tensor,
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> float:
    """Train ``substitute`` in place on the labels ``target`` predicts for ``x_query``; return their
    agreement.

    Seed 004: "You don't need access to the original network; you can train up
    a new network to match its predictions, and then construct adversarial
    examples for that." The attacker only *queries* the target's top-1 labels
    (Papernot et al. 2017, "Practical black-box attacks against machine
    learning", without their Jacobian-based data augmentation). Returns the
    fraction of ``x_query`` on which the trained substitute agrees with the target.
    """
    with frozen(target), torch.no_grad():
        labels = target(x_query).argmax(1)
    train(substitute, x_query, labels, epochs=epochs, lr=lr, seed=seed, desc="substitute", progress=progress)
    return accuracy(substitute, x_query, labels)
