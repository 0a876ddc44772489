"""Style transfer that shifts an image's class, tuned by CMA-ES (seed 000, sections 3.1, 4.1, Table 1).

Powers & Keselman, "Introspective Neural Networks". A style transfer
``I_new = f_θ(I_src, I_style)`` (Gram style loss, a content loss as feature
distillation at one layer, TV, Adam; Gatys et al. 2016) should make the
classifier rank the style image's class higher in ``I_new``:

* **intra-class**: the style image is another image of the source's class;
* **inter-class**: the style image comes from another class.

The score is the *ordinal rank* of the style image's class,
``rank = 1 + #{classes scoring strictly higher}`` (:func:`ordinal_rank`),
averaged over batches of 5 images from 5 random classes. θ (per-layer style
weights, content weight, TV strength, learning rate, number of steps) is tuned
with CMA-ES (Hansen et al. 2003; the ``cma`` package) on one set of classes and
reported on a disjoint set (:func:`run`).

A CMA-ES generation is *one* batched optimisation: every candidate θ × every
image is one sample of the batch, with its own loss weights (per-image
``weight=`` of the objectives), its own Adam learning rate (one parameter group
per sample) and its own number of steps (a sample leaves the batch when its
steps are done).

Beyond the paper: a class-level Gram statistic averaged over several exemplars
(:func:`class_gram`, the paper's future work) and the top-5 → top-1
re-ranking its conclusion asks about (:func:`rerank`).

The whole experiment, its statistics and its results file: :mod:`.style_shift_run`::

    python -m introspect_lab.experiments.style_shift_run --out data/results/style_shift.json
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..hooks import frozen
from ..images import normalize
from ..models import model_settings
from ..synthesis import layer_features, synthesize
from ..synthesis import objectives as O
from ..synthesis import priors as R
from ..texture.gatys import style_targets
from .class_images import (
    ClassImages,
    Pair,
    dataset_images,
    load_images,
    sample_pairs,
    split_classes,
    stand_in_images,
)
from .style_shift_tuning import Theta, random_search, tune, untuned_theta

__all__ = [
    "PAPER_TABLE1",
    "ClassImages",
    "Pair",
    "Theta",
    "ordinal_rank",
    "logits",
    "style_layers",
    "untuned_theta",
    "stand_in_images",
    "dataset_images",
    "load_images",
    "split_classes",
    "sample_pairs",
    "class_gram",
    "f_theta",
    "transfer_ranks",
    "tune",
    "random_search",
    "rerank",
]

#: Table 1 of seed 000 (SqueezeNet 1.1, ImageNet validation images): mean ordinal rank
#: without transfer, with untuned transfer, with tuned transfer.
PAPER_TABLE1: dict[str, tuple[float, float, float]] = {
    "intra/train": (4.0, 53.4, 2.6),
    "intra/test": (1.9, 40.2, 1.5),
    "inter/train": (272.0, 251.2, 18.2),
    "inter/test": (590.1, 459.2, 29.8),
}


# ---------------------------------------------------------------------------
# The score
# ---------------------------------------------------------------------------


def ordinal_rank(logits: torch.Tensor, target) -> torch.Tensor:
    """``1 + #{j : s_j > s_target}`` per image: 1 is the top class; ties count in the image's favour.

    ``logits`` ``[B, C]`` (or ``[C]``), ``target`` one class index for all images or
    one per image. Returns a ``[B]`` long tensor (seed 000, sec. 3.1.1: "the ordinal
    ranking (e.g. 1st, 2nd, 80th) of the correct class").
    """
    if logits.dim() == 1:
        logits = logits.unsqueeze(0)
    if logits.dim() != 2:
        raise ValueError(f"ordinal_rank needs logits [B, C], got shape {tuple(logits.shape)}.")
    t = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(logits.shape[0])
    if t.numel() != logits.shape[0]:
        raise ValueError(f"Got {t.numel()} targets for {logits.shape[0]} images; give one or one per image.")
    if (t < 0).any() or (t >= logits.shape[1]).any():
        raise ValueError(f"Targets must be class indices in 0..{logits.shape[1] - 1}.")
    own = logits.gather(1, t.view(-1, 1))
    return 1 + (logits > own).sum(1)


# ---------------------------------------------------------------------------
# Layers and θ
# ---------------------------------------------------------------------------


def style_layers(model: nn.Module | str) -> tuple[str, tuple[str, ...]]:
    """``(content_layer, style_layers)`` of a registry model: its registry style settings."""
    style = model_settings(model).style
    return style.content_layer, tuple(style.style_layers)


# ---------------------------------------------------------------------------
# f_θ, batched over candidates × images
# ---------------------------------------------------------------------------


def class_gram(model: nn.Module, images: torch.Tensor, layers: Sequence[str], normalized: bool = True):
    """A class-level Gram target per layer from several exemplars ``[K, 3, H, W]`` (normalised inputs).

    ``normalized=False``: the plain mean ``(1/K) Σ_k G_k`` (the paper's "un-normalized
    averaging"). ``normalized=True``: each exemplar's Gram is divided by its Frobenius
    norm before averaging, and the mean is rescaled to the exemplars' mean norm,
    ``Ḡ = mean_k ‖G_k‖ · mean_k (G_k / ‖G_k‖)``, so no single high-energy exemplar
    dominates the statistic (seed 000, sec. 5).
    """
    feats = layer_features(model, images, list(layers))
    out = {}
    for n, f in feats.items():
        g = O.gram(f)
        if normalized:
            norms = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
            out[n] = (g / norms).mean(0, keepdim=True) * norms.mean()
        else:
            out[n] = g.mean(0, keepdim=True)
    return out


def f_theta(
    model: nn.Module,
    sources: torch.Tensor,
    style_grams: dict[str, torch.Tensor],
    thetas: Sequence[Theta],
    *,
    lr_drop: tuple[float, float] | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """``I_new = f_θ(I_src, I_style)`` for a whole batch at once, each sample with its own θ.

    Minimises, per sample ``b``, ``α_b ½‖F(I)−F(I_src)‖² + Σ_l w_bl E_l(I, A_bl) + γ_b TV(I)``
    (content at one layer, Gram loss ``E_l`` against the style Grams ``A_bl``
    ``style_grams[layer][b]``, TV with β = 2) with Adam at lr ``lr_b`` for ``steps_b``
    steps, from ``I = I_src`` and clamped to valid pixels: one run of the synthesis
    engine with per-image weights, learning rates and step counts. ``lr_drop=(fraction,
    factor)`` multiplies each sample's lr by ``factor`` after that fraction of its own steps
    (cs231n: ``(0.9, 0.1)``; used on real data). ``sources`` are
    normalised model inputs ``[B, 3, H, W]``; returns ``I_new`` the same way.
    """
    b = sources.shape[0]
    if len(thetas) != b:
        raise ValueError(f"Got {len(thetas)} θ for {b} images; give one per image.")
    c_layer, layers = style_layers(model)
    if set(style_grams) != set(layers):
        raise ValueError(f"style_grams must have the style layers {list(layers)}, got {sorted(style_grams)}.")
    content = layer_features(model, sources, c_layer)[c_layer]
    w = torch.tensor([t.style_weights for t in thetas], dtype=torch.float32)  # [B, L]
    alpha = torch.tensor([t.content_weight for t in thetas], dtype=torch.float32)
    gamma = torch.tensor([t.tv for t in thetas], dtype=torch.float32)
    loss = O.content_loss(c_layer, content, weight=alpha) + R.tv(weight=gamma)
    for j, n in enumerate(layers):
        loss = loss + O.gram_loss(n, style_grams[n], weight=w[:, j])
    result = synthesize(
        model,
        -loss,
        init=sources,
        size=None,
        steps=[int(t.steps) for t in thetas],
        lr=[float(t.lr) for t in thetas],
        lr_drop=lr_drop,
        optimizer="adam",
        clamp=True,
        seed=0,
        progress=progress,
        desc="f_θ (batched)",
    )
    return result.image


def logits(model: nn.Module, x: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """The model's logits for a batch (no gradient, in chunks of ``chunk`` images)."""
    with frozen(model), torch.no_grad():
        return torch.cat([model(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


def _style_targets(model, data: ClassImages, pairs: Sequence[Pair], gram: str, exemplars: int, rng):
    """Per-pair Gram targets: the style image's (``"single"``) or its class's
    (``"mean"``/``"normalized"``).
    """
    _, layers = style_layers(model)
    x = normalize(data.images[[p.style for p in pairs]], model)
    if gram == "single":
        return style_targets(model, x, layers)
    if gram not in ("mean", "normalized"):
        raise ValueError(f"gram must be 'single', 'mean' or 'normalized', got {gram!r}.")
    per_pair = []
    for p in pairs:
        pool = [i for i in data.of_class(p.target) if i not in (p.source, p.style)]
        pick = [p.style, *rng.choice(pool, size=min(exemplars - 1, len(pool)), replace=False).tolist()]
        per_pair.append(class_gram(model, normalize(data.images[pick], model), layers, gram == "normalized"))
    return {n: torch.cat([g[n] for g in per_pair]) for n in layers}


def transfer_ranks(
    model: nn.Module,
    data: ClassImages,
    pairs: Sequence[Pair],
    thetas: Sequence[Theta | None],
    *,
    gram: str = "single",
    exemplars: int = 4,
    seed: int = 0,
    lr_drop: tuple[float, float] | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Ordinal ranks ``[len(thetas), len(pairs)]`` of each pair's target class in ``f_θ(I_src, I_style)``.

    All candidates × pairs run as one batch (candidate-major). ``None`` in ``thetas``
    means no transfer (the rank in the source image itself).
    """
    src = normalize(data.images[[p.source for p in pairs]], model)
    target = torch.tensor([p.target for p in pairs])
    run_ = [t for t in thetas if t is not None]
    out = np.zeros((len(thetas), len(pairs)), dtype=np.int64)
    if any(t is None for t in thetas):
        base = ordinal_rank(logits(model, src), target).numpy()
        for k, t in enumerate(thetas):
            if t is None:
                out[k] = base
    if run_:
        grams = _style_targets(model, data, pairs, gram, exemplars, np.random.default_rng(seed))
        p = len(run_)
        new = f_theta(
            model,
            src.repeat(p, 1, 1, 1),
            {n: g.repeat(p, 1, 1) for n, g in grams.items()},
            [t for t in run_ for _ in pairs],
            lr_drop=lr_drop,
            progress=progress,
        )
        ranks = ordinal_rank(logits(model, new), target.repeat(p)).numpy().reshape(p, len(pairs))
        rows = iter(ranks)
        for k, t in enumerate(thetas):
            if t is not None:
                out[k] = next(rows)
    return out


# ---------------------------------------------------------------------------
# Top-5 → top-1 re-ranking (seed 000, sec. 6)
# ---------------------------------------------------------------------------


def rerank(
    model: nn.Module,
    data: ClassImages,
    sources: Sequence[int],
    theta: Theta,
    *,
    k: int = 5,
    seed: int = 0,
    lr_drop: tuple[float, float] | None = None,
    progress: bool | None = None,
) -> dict:
    """Transfer each source towards each of its top-``k`` classes and re-rank them (seed 000, Conclusion).

    Candidates are the ``k`` best-scoring classes *among the data's classes*; class
    ``c``'s exemplar is a random image of ``c`` other than the source. After transfer,
    ``c`` is scored by ``log p_c(I_new^c)`` (rule ``"after"``) or by its gain
    ``log p_c(I_new^c) − log p_c(I_src)`` (rule ``"gain"``); top-1 accuracy of each rule
    is compared with the model's own ranking (``"before"``). All ``len(sources)·k``
    transfers run as one batch.
    """
    rng = np.random.default_rng(seed)
    classes = torch.tensor(data.classes)
    k = min(k, len(classes))
    src = normalize(data.images[list(sources)], model)
    logp_src = torch.log_softmax(logits(model, src), 1)
    cand = classes[logp_src[:, classes].topk(k, dim=1).indices]  # [S, k] ImageNet indices, best first
    pairs = []
    for i, s in enumerate(sources):
        for c in cand[i].tolist():
            pool = [j for j in data.of_class(c) if j != s]
            pairs.append(Pair(int(s), int(rng.choice(pool)), int(c)))
    grams = _style_targets(model, data, pairs, "single", 1, rng)
    new = f_theta(
        model, src.repeat_interleave(k, 0), grams, [theta] * len(pairs), lr_drop=lr_drop, progress=progress
    )
    logp_new = torch.log_softmax(logits(model, new), 1)
    tgt = torch.tensor([p.target for p in pairs]).view(-1, 1)
    after = logp_new.gather(1, tgt).view(-1, k)
    gain = after - logp_src.gather(1, cand)
    truth = torch.tensor(data.labels[list(sources)])
    pick = {
        "before": cand[:, 0],
        "after": cand.gather(1, after.argmax(1, keepdim=True))[:, 0],
        "gain": cand.gather(1, gain.argmax(1, keepdim=True))[:, 0],
    }
    return {
        "n_sources": len(sources),
        "k": k,
        "n_classes": len(classes),
        "true_in_top_k": float((cand == truth.view(-1, 1)).any(1).float().mean()),
        "top1": {rule: float((p == truth).float().mean()) for rule, p in pick.items()},
        "correct": {rule: (p == truth).long().tolist() for rule, p in pick.items()},
        "sources": [int(s) for s in sources],
        "rank_true_before": ordinal_rank(logp_src, truth).tolist(),
    }
