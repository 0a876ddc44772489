"""Per-layer features, the seen/unseen detectors, the baselines and the metrics of the novelty experiment.

Part of :mod:`introspect_lab.experiments.novelty` (seed 000, §3.2 and §4.2), which re-exports
everything here:

* :func:`layer_embeddings` / :func:`cached_layer_embeddings` — activations of named layers,
  spatially capped, cached on disk;
* :class:`FCDetector`, :class:`ConvDetector`, :func:`train_detector` — the paper's two classifiers;
* :func:`msp_scores` (Hendrycks & Gimpel 2017) and :func:`mahalanobis_scores` (Lee et al. 2018);
* :func:`detection_accuracy` (at a threshold, the paper's metric) and :func:`auroc`.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import nullcontext

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .. import config
from ..hooks import capture, frozen

__all__ = [
    "INPUT",
    "FCDetector",
    "ConvDetector",
    "DETECTORS",
    "layer_embeddings",
    "cached_layer_embeddings",
    "train_detector",
    "detector_scores",
    "msp_scores",
    "mahalanobis_scores",
    "detection_accuracy",
    "auroc",
]

INPUT = "input"  # the name used for layer 0 (the normalised image)
_CACHE_VERSION = 1


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Indices ``0..n-1`` in a random order drawn from ``gen``, cut into batches of ``batch_size`` (the last
    may be short).
    """
    order = torch.randperm(n, generator=gen)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# ---------------------------------------------------------------------------
# Per-layer features
# ---------------------------------------------------------------------------


def _shrink(act: torch.Tensor, max_side: int) -> torch.Tensor:
    if act.dim() == 2:
        return act[:, :, None, None]
    h, w = act.shape[-2:]
    if max(h, w) > max_side:
        act = F.adaptive_avg_pool2d(act, (min(h, max_side), min(w, max_side)))
    return act


def layer_embeddings(
    model: nn.Module,
    x: torch.Tensor,
    layers: list[str],
    *,
    max_side: int = 8,
    batch_size: int = 64,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Activations ``[N, C, h, w]`` of each named layer (``"input"`` = the image) for a normalised batch.

    Maps larger than ``max_side`` are average-pooled to ``max_side`` × ``max_side``; vectors
    become ``[N, C, 1, 1]``. Eval mode, one forward pass per mini-batch, stopped after the
    deepest layer; the model is left unchanged.
    """
    modules = sorted({n for n in layers if n != INPUT})
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    show = config.show_progress() if progress is None else progress
    hooks = capture(model, modules, stop=True) if modules else nullcontext()
    with frozen(model), torch.no_grad(), hooks as cap:
        for start in tqdm(range(0, len(x), batch_size), desc="Features", disable=not show):
            xb = x[start : start + batch_size]
            if modules:
                cap.run(xb)
            for n in parts:
                parts[n].append(_shrink(xb if n == INPUT else cap.activations[n], max_side).clone())
    return {n: torch.cat(p) for n, p in parts.items()}


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(p, nn.Module):
            for k, v in p.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:20]


def cached_layer_embeddings(
    model: nn.Module,
    x: torch.Tensor,
    layers: list[str],
    *,
    max_side: int = 8,
    progress: bool | None = None,
    cache: bool = True,
) -> dict[str, torch.Tensor]:
    """:func:`layer_embeddings`, cached per layer under ``config.data_dir()/novelty_features``.

    The key hashes the model's weights, the layer, the input batch and ``max_side``. Files are
    written as ``.part`` and renamed into place, so an interrupted run leaves nothing half-written.
    """
    folder = config.data_dir() / "novelty_features"
    model_key, data_key = _fingerprint(model), _fingerprint(x)
    paths = {
        n: folder / f"{_fingerprint(_CACHE_VERSION, model_key, n, data_key, max_side)}.pt" for n in layers
    }
    out = {n: torch.load(p, weights_only=True) for n, p in paths.items() if cache and p.is_file()}
    missing = [n for n in dict.fromkeys(layers) if n not in out]
    if missing:
        fresh = layer_embeddings(model, x, missing, max_side=max_side, progress=progress)
        out.update(fresh)
        if cache:
            folder.mkdir(parents=True, exist_ok=True)
            for n, t in fresh.items():
                part = paths[n].with_name(paths[n].name + f".{os.getpid()}.part")
                torch.save(t, part)
                os.replace(part, paths[n])
    return {n: out[n] for n in layers}


# ---------------------------------------------------------------------------
# Detectors, baselines, metrics
# ---------------------------------------------------------------------------


class _Standardize(nn.Module):
    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        std = x.std(0)
        self.register_buffer("mean", x.mean(0))
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FCDetector(nn.Sequential):
    """The paper's FC classifier: 3 fully connected layers with ReLUs → one logit for "unseen".

    Inputs are standardised per feature with the training set's mean and std.
    """

    def __init__(self, train_x: torch.Tensor, hidden: tuple[int, int] = (256, 64)) -> None:
        d = train_x[0].numel()
        super().__init__(
            _Standardize(train_x),
            nn.Flatten(1),
            nn.Linear(d, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 1),
        )


class ConvDetector(nn.Sequential):
    """The paper's Conv classifier: 2 conv layers (3×3, ``width`` channels, ReLU), then the FC layers."""

    def __init__(self, train_x: torch.Tensor, width: int = 32, hidden: tuple[int, int] = (256, 64)) -> None:
        c, h, w = train_x.shape[1:]
        super().__init__(
            _Standardize(train_x),
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(1),
            nn.Linear(width * h * w, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 1),
        )


DETECTORS = {"fc": FCDetector, "conv": ConvDetector}


def train_detector(
    kind: str,
    train_x: torch.Tensor,
    train_y,
    *,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """Train a seen (0) vs unseen (1) detector (``"fc"`` or ``"conv"``) with Adam and a logistic loss."""
    if kind not in DETECTORS:
        raise ValueError(f"kind must be 'fc' or 'conv', got {kind!r}.")
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        det = DETECTORS[kind](train_x)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(det.parameters(), lr=lr)
    for _ in range(epochs):
        for b in shuffled_batches(len(y), batch_size, gen):
            loss = F.binary_cross_entropy_with_logits(det(train_x[b])[:, 0], y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return det.eval()


def detector_scores(det: nn.Module, x: torch.Tensor) -> np.ndarray:
    """P(unseen) for each row of ``x``."""
    with torch.no_grad():
        return torch.sigmoid(det(x)[:, 0]).numpy()


def msp_scores(logits) -> np.ndarray:
    """Novelty score ``1 − max_c softmax(z)_c`` (Hendrycks & Gimpel 2017, maximum softmax probability)."""
    return 1.0 - torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).amax(1).numpy()


def mahalanobis_scores(
    train_x, train_labels, test_x, shrinkage: str | float | None = "ledoit-wolf"
) -> np.ndarray:
    """Novelty score ``min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c)`` (Lee et al. 2018).

    μ_c are the class means of the seen training features, Σ their shared (within-class)
    covariance ``Σ = 1/N Σ_c Σ_{i∈c} (x_i − μ_c)(x_i − μ_c)ᵀ``. ``shrinkage``: ``None``
    (empirical, pseudo-inverse), a float ρ (``(1−ρ)Σ + ρ·tr(Σ)/d·I``) or ``"ledoit-wolf"``
    (scikit-learn's estimate of ρ). Lee et al. average each feature map over space first.

    Σ is never formed: with the centred features ``C = U·diag(s)·Vᵀ`` (thin SVD), Σ has the
    eigenvalues ``λ_k = (1−ρ)s_k²/N + ρ·tr(Σ)/d`` along V and ``ρ·tr(Σ)/d`` elsewhere, so
    ``qᵀΣ⁻¹q = Σ_k (v_kᵀq)²/λ_k + ‖q − VVᵀq‖²/(ρ·tr(Σ)/d)``. That costs O(N²d) instead of
    O(d³) when there are fewer images N than features d. Without shrinkage the second term is
    dropped and λ below 10⁻¹⁵·max λ are cut (``numpy.linalg.pinv``'s rule).
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    x = np.asarray(train_x, dtype=np.float64).reshape(len(train_x), -1)
    t = np.asarray(test_x, dtype=np.float64).reshape(len(test_x), -1)
    labels = np.asarray(train_labels)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(0) for c in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    if shrinkage == "ledoit-wolf":
        rho = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
    elif shrinkage is None or (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1):
        rho = float(shrinkage or 0.0)
    else:
        raise ValueError(f"shrinkage must be None, 'ledoit-wolf' or a number in [0, 1], got {shrinkage!r}.")
    n, dim = centred.shape
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    floor = rho * (s**2).sum() / (n * dim)  # ρ·tr(Σ)/d: the eigenvalue off the span of the features
    lam = (1 - rho) * s**2 / n + floor
    keep = lam > 1e-15 * lam.max() if floor == 0 else np.ones_like(lam, dtype=bool)
    vt, lam = vt[keep], lam[keep]
    d = (t[:, None, :] - means[None]).reshape(-1, dim)
    along = d @ vt.T  # coordinates in the span of the centred features
    score = (along**2 / lam).sum(1)
    if floor > 0 and len(lam) < dim:
        score += ((d - along @ vt) ** 2).sum(1) / floor
    return score.reshape(len(t), len(means)).min(1)


def detection_accuracy(y, scores, threshold: float = 0.5) -> float:
    """Fraction of correct seen/unseen calls at ``threshold`` (the paper's metric)."""
    return float(((np.asarray(scores) > threshold) == np.asarray(y).astype(bool)).mean())


def auroc(y, scores) -> float:
    """Area under the ROC curve of ``scores`` for "unseen" (scikit-learn ``roc_auc_score``); 0.5 is chance."""
    return float(roc_auc_score(np.asarray(y), np.asarray(scores)))
