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

Run it from the command line (writes the results JSON with the command)::

    python -m introspect_lab.experiments.style_shift --out data/results/style_shift.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..hooks import frozen
from ..images import normalize
from ..models import load_model, model_info, settings
from ..synthesis import layer_features, synthesize
from ..synthesis import objectives as O
from ..synthesis import priors as R
from ..texture.gatys import style_targets
from .class_images import (
    RELATIONS,
    ClassImages,
    Pair,
    dataset_images,
    load_images,
    sample_pairs,
    split_classes,
    stand_in_images,
)
from .style_shift_tuning import LOG_RANGE, LR_LOG_BOUNDS, STEPS_MAX, STEPS_MIN, Theta, tune, untuned_theta

__all__ = [
    "PAPER_TABLE1",
    "ClassImages",
    "Pair",
    "Theta",
    "RESULTS_FILE",
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
    "rerank",
    "run",
    "table1",
    "save_results",
    "load_results",
    "main",
]

#: Table 1 of seed 000 (SqueezeNet 1.1, ImageNet validation images): mean ordinal rank
#: without transfer, with untuned transfer, with tuned transfer.
PAPER_TABLE1: dict[str, tuple[float, float, float]] = {
    "intra/train": (4.0, 53.4, 2.6),
    "intra/test": (1.9, 40.2, 1.5),
    "inter/train": (272.0, 251.2, 18.2),
    "inter/test": (590.1, 459.2, 29.8),
}

#: The committed results of a full run (in a source checkout of the repository).
RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "style_shift.json"


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
    style = settings(model).style
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
    progress: bool | None = None,
) -> torch.Tensor:
    """``I_new = f_θ(I_src, I_style)`` for a whole batch at once, each sample with its own θ.

    Minimises, per sample ``b``, ``α_b ½‖F(I)−F(I_src)‖² + Σ_l w_bl E_l(I, A_bl) + γ_b TV(I)``
    (content at one layer, Gram loss ``E_l`` against the style Grams ``A_bl``
    ``style_grams[layer][b]``, TV with β = 2) with Adam at lr ``lr_b`` for ``steps_b``
    steps, from ``I = I_src`` and clamped to valid pixels: one run of the synthesis
    engine with per-image weights, learning rates and step counts. ``sources`` are
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
    """Per-pair Gram targets: the style image's (``"single"``) or its class's (``"mean"``/``"normalized"``)."""
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
    model: nn.Module, data: ClassImages, pairs: Sequence[Pair], thetas: Sequence[Theta | None], *,
    gram: str = "single", exemplars: int = 4, seed: int = 0, progress: bool | None = None,
) -> np.ndarray:  # fmt: skip
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
        new = f_theta(model, src.repeat(p, 1, 1, 1), {n: g.repeat(p, 1, 1) for n, g in grams.items()},
                      [t for t in run_ for _ in pairs], progress=progress)  # fmt: skip
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
    model: nn.Module, data: ClassImages, sources: Sequence[int], theta: Theta, *, k: int = 5, seed: int = 0,
    progress: bool | None = None,
) -> dict:  # fmt: skip
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
    new = f_theta(model, src.repeat_interleave(k, 0), grams, [theta] * len(pairs), progress=progress)
    logp_new = torch.log_softmax(logits(model, new), 1)
    tgt = torch.tensor([p.target for p in pairs]).view(-1, 1)
    after = logp_new.gather(1, tgt).view(-1, k)
    gain = after - logp_src.gather(1, cand)
    truth = torch.tensor(data.labels[list(sources)])
    pick = {"before": cand[:, 0], "after": cand.gather(1, after.argmax(1, keepdim=True))[:, 0],
            "gain": cand.gather(1, gain.argmax(1, keepdim=True))[:, 0]}  # fmt: skip
    return {
        "n_sources": len(sources),
        "k": k,
        "n_classes": len(classes),
        "true_in_top_k": float((cand == truth.view(-1, 1)).any(1).float().mean()),
        "top1": {rule: float((p == truth).float().mean()) for rule, p in pick.items()},
        "rank_true_before": ordinal_rank(logp_src, truth).tolist(),
    }


# ---------------------------------------------------------------------------
# The whole experiment, its results file and Table 1
# ---------------------------------------------------------------------------

#: A full run on this repository's machine (2-core CPU); see ``data/results/style_shift.json``.
RUN_DEFAULTS = dict(seed=0, per_class=8, size=96, n_train_classes=5, n_images=5, train_batches=2,
                    test_batches=2, generations=3, popsize=6, exemplars=4, rerank_sources=10,
                    steps_cap=STEPS_MAX)  # fmt: skip


def _summary(ranks: np.ndarray) -> dict:
    return {"mean": float(ranks.mean()), "median": float(np.median(ranks)), "ranks": ranks.tolist()}


def run(model: nn.Module, data: ClassImages, *, state_dir: str | os.PathLike | None = None,
        progress: bool | None = None, **cfg) -> dict:  # fmt: skip
    """The whole experiment: Table 1, the class-level Gram comparison and the re-ranking.

    ``cfg`` overrides :data:`RUN_DEFAULTS`. For each relation (intra, inter), θ is tuned
    by CMA-ES on the mean ordinal rank over ``train_batches`` fixed batches of
    ``n_images`` images from the train classes, then every row is measured on its own
    pairs with no transfer, the untuned θ and the tuned θ (one batch). ``state_dir``
    keeps the CMA-ES states, so an interrupted run resumes.
    """
    unknown = set(cfg) - set(RUN_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown settings {sorted(unknown)}; settings are {sorted(RUN_DEFAULTS)}.")
    cfg = {**RUN_DEFAULTS, **cfg}
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg["seed"])
    train, test = split_classes(data.classes, cfg["n_train_classes"], cfg["seed"])
    untuned = untuned_theta(model).capped(cfg["steps_cap"])
    content_layer, layers = style_layers(model)
    out = {"config": cfg, "classes": {"train": train, "test": test,
                                      "names": {str(c): data.names[c] for c in data.classes}},
           "layers": {"content": content_layer, "style": list(layers)},
           "search_space": {"steps": [STEPS_MIN, STEPS_MAX], "log10_range": LOG_RANGE,
                            "log10_lr": list(LR_LOG_BOUNDS)},
           "theta": {"untuned": untuned.to_dict()}, "table1": {}, "tuning": {}}  # fmt: skip
    pairs = {}
    for rel in RELATIONS:
        pairs[rel, "train"] = sample_pairs(data, train, rel, rng, cfg["n_images"], cfg["train_batches"])
        pairs[rel, "test"] = sample_pairs(data, test, rel, rng, cfg["n_images"], cfg["test_batches"])
    for rel in RELATIONS:
        train_pairs = pairs[rel, "train"]

        def objective(thetas, train_pairs=train_pairs):
            ranks = transfer_ranks(model, data, train_pairs, [t.capped(cfg["steps_cap"]) for t in thetas],
                             progress=progress)  # fmt: skip
            return ranks.mean(1)

        state = Path(state_dir) / f"cma_{rel}.pkl" if state_dir else None
        tuned = tune(objective, untuned, generations=cfg["generations"], popsize=cfg["popsize"],
                     seed=cfg["seed"], state_path=state, progress=progress)  # fmt: skip
        best = tuned["best"].capped(cfg["steps_cap"])
        out["theta"][rel] = best.to_dict()
        out["tuning"][rel] = tuned["history"]
        for split in ("train", "test"):
            ps = pairs[rel, split]
            ranks = transfer_ranks(model, data, ps, [None, untuned, best], progress=progress)
            out["table1"][f"{rel}/{split}"] = {
                "pairs": [asdict(p) for p in ps],
                "no_transfer": _summary(ranks[0]),
                "untuned": _summary(ranks[1]),
                "tuned": _summary(ranks[2]),
                "paper": list(PAPER_TABLE1[f"{rel}/{split}"]),
            }
    best = Theta.from_dict(out["theta"]["inter"])
    ps = pairs["inter", "test"]
    out["class_gram"] = {"pairs": "inter/test", "theta": "inter (tuned)", "exemplars": cfg["exemplars"]}
    for mode in ("single", "mean", "normalized"):
        ranks = transfer_ranks(model, data, ps, [best], gram=mode, exemplars=cfg["exemplars"], seed=cfg["seed"],
                         progress=progress)[0]  # fmt: skip
        out["class_gram"][mode] = _summary(ranks)
    test_images = [int(i) for c in test for i in data.of_class(c)]
    pick = rng.choice(test_images, size=min(cfg["rerank_sources"], len(test_images)), replace=False)
    out["rerank"] = rerank(
        model, data, sorted(int(i) for i in pick), best, seed=cfg["seed"], progress=progress
    )
    out["rerank"]["theta"] = "inter (tuned)"
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _cell(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def table1(results: dict) -> str:
    """Table 1 laid out as in the paper (mean ordinal rank), ours beside the paper's: ``ours (paper)``."""
    head = ["condition", "no transfer", "untuned transfer", "tuned transfer"]
    rows = []
    for key in ("intra/train", "intra/test", "inter/train", "inter/test"):
        r = results["table1"][key]
        rel, split = key.split("/")
        cells = [f"{_cell(r[col]['mean'])} ({_cell(p)})" for col, p in
                 zip(("no_transfer", "untuned", "tuned"), r["paper"])]  # fmt: skip
        rows.append([f"{rel}-class {split}", *cells])
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def save_results(path: str | os.PathLike, results: dict) -> Path:
    """Write ``results`` as JSON (atomically: a ``.part`` file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | os.PathLike) -> dict:
    """Read a results file written by :func:`save_results`."""
    return json.loads(Path(path).read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the experiment and write its results file (with this very command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m introspect_lab.experiments.style_shift",
                                 description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("--out", required=True, help="results JSON, e.g. data/results/style_shift.json")
    ap.add_argument("--model", default="squeezenet1_1")
    ap.add_argument("--fallback", default="efficientnet_lite0")
    ap.add_argument("--data", default="auto", help="auto, imagewoof, imagenette or stand-in")
    ap.add_argument("--state-dir", default=None, help="keep CMA-ES states here (resumable)")
    for key, value in RUN_DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=value)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    model = load_model(args.model, fallback=args.fallback)
    info = model_info(model)
    data = load_images(model, args.data, per_class=args.per_class, size=args.size)
    cfg = {k: getattr(args, k) for k in RUN_DEFAULTS}
    results = run(model, data, state_dir=args.state_dir, **cfg)
    results.update({
        "experiment": "seed 000 (Introspective Neural Networks), sec. 3.1/4.1, Table 1",
        "command": "python -m introspect_lab.experiments.style_shift " + " ".join(shlex.quote(a) for a in argv),
        "model": info.name, "model_source": info.source, "model_requested": args.model,
        "data": {"name": data.data, "description": data.description, "limits": data.limits},
        "library_version": __version__, "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    })  # fmt: skip
    save_results(args.out, results)
    print(table1(results))
    print(f"Wrote {args.out} ({results['wall_seconds']} s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
