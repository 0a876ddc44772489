"""The whole style-shift experiment (seed 000, sec. 3.1/4.1, Table 1): two folds, a baseline, intervals.

For each fold (fold 2 swaps the train and test classes of fold 1) and each relation
(intra, inter), θ is tuned by CMA-ES (population ``4 + ⌊3 ln n⌋``) on the train pairs and,
as a baseline, by uniform random search with the same number of evaluations; then each
row is measured on its own pairs with no transfer, the untuned θ, the CMA-ES θ and the
random-search θ. Every mean and every difference carries a 95 % interval from a
bootstrap clustered by source photo (:func:`~.intervals.cluster_bootstrap`), and the
sentences of :func:`claims` name a winner only when the interval excludes zero.

    python -m introspect_lab.experiments.style_shift_run --out data/results/style_shift.json
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
from ..intervals import cluster_bootstrap, compare, fmt_interval
from ..models import load_model, model_info, model_settings
from .class_images import RELATIONS, ClassImages, Pair, load_images, resolve_data, sample_pairs, split_classes
from .style_shift import PAPER_TABLE1, rerank, style_layers, transfer_ranks
from .style_shift_tuning import Theta, random_search, tune, untuned_theta

__all__ = [
    "RESULTS_FILE",
    "RUN_DEFAULTS",
    "COLUMNS",
    "resolve_config",
    "run",
    "table1",
    "claims",
    "save_results",
    "load_results",
    "main",
]

#: The committed results of a full run (in a source checkout of the repository).
RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "style_shift.json"

#: Defaults of a full run (the committed one: 680 s of CPU on one core with the curated photos).
#: ``size=0``: the data set's size (224 px real, 96 px photos); ``popsize=0``: CMA-ES's default;
#: ``steps_max=0``: 24 offline, the paper's 200 on real data.
RUN_DEFAULTS = dict(
    seed=0,
    per_class=8,
    size=0,
    n_train_classes=3,
    n_images=3,
    train_batches=2,
    test_batches=3,
    generations=6,
    popsize=0,
    sigma0=1.0,
    steps_min=8,
    steps_max=0,
    folds=2,
    exemplars=3,
    rerank_sources=6,
    n_boot=2000,
)
COLUMNS = ("no_transfer", "untuned", "tuned", "random")


def _cluster(ranks, sources, n_boot, seed) -> list[float]:
    return list(cluster_bootstrap(ranks, sources, n_boot=n_boot, seed=seed))


def _row(model, data, pairs, thetas: dict, cfg, progress) -> dict:
    """One row of Table 1: per-pair ranks of every column, their means and the differences, with intervals."""
    ranks = transfer_ranks(
        model, data, pairs, [thetas.get(c) for c in COLUMNS], lr_drop=cfg["lr_drop"], progress=progress
    )
    src = [int(data.sources[p.source]) for p in pairs]
    row = {
        "pairs": [asdict(p) for p in pairs],
        "source_photos": src,
        "ranks": {c: ranks[i].tolist() for i, c in enumerate(COLUMNS)},
    }
    return row


def _summarise(rows: list[dict], cfg: dict) -> dict:
    """Pool rows (e.g. both folds' test rows): mean rank per column and differences, cluster-bootstrapped."""
    src = sum((r["source_photos"] for r in rows), [])
    r = {c: np.concatenate([x["ranks"][c] for x in rows]).astype(float) for c in COLUMNS}
    n, seed = cfg["n_boot"], cfg["seed"]
    out = {
        "n_pairs": len(src),
        "n_source_photos": len(set(src)),
        "mean": {c: _cluster(r[c], src, n, seed) for c in COLUMNS},
        "median": {c: float(np.median(r[c])) for c in COLUMNS},
    }
    out["diff"] = {
        f"{a}-{b}": _cluster(r[a] - r[b], src, n, seed)
        for a, b in (
            ("tuned", "no_transfer"),
            ("untuned", "no_transfer"),
            ("tuned", "untuned"),
            ("tuned", "random"),
        )
    }
    return out


def _fold(model, data, train, test, untuned, cfg, rng, state_dir, tag, progress) -> dict:
    steps_range = (cfg["steps_min"], cfg["steps_max"])
    fold = {"train_classes": train, "test_classes": test, "theta": {}, "tuning": {}, "rows": {}}
    for rel in RELATIONS:
        tr = sample_pairs(data, train, rel, rng, cfg["n_images"], cfg["train_batches"])
        te = sample_pairs(data, test, rel, rng, cfg["n_images"], cfg["test_batches"])

        def objective(thetas, tr=tr):
            return transfer_ranks(model, data, tr, thetas, lr_drop=cfg["lr_drop"], progress=progress).mean(1)

        state = Path(state_dir) / f"cma_{tag}_{rel}.pkl" if state_dir else None
        cma = tune(
            objective,
            untuned,
            generations=cfg["generations"],
            popsize=cfg["popsize"] or None,
            sigma0=cfg["sigma0"],
            seed=cfg["seed"],
            steps_range=steps_range,
            state_path=state,
            progress=progress,
        )
        rs = random_search(
            objective,
            untuned,
            evaluations=cma["settings"]["evaluations"],
            batch=cma["settings"]["popsize"],
            seed=cfg["seed"],
            steps_range=steps_range,
            progress=progress,
        )
        thetas = {"untuned": untuned, "tuned": cma["best"], "random": rs["best"]}
        fold["theta"][rel] = {k: t.to_dict() for k, t in thetas.items() if k != "untuned"}
        fold["tuning"][rel] = {
            "cmaes": {**cma["settings"], "history": cma["history"]},
            "random": {**rs["settings"], "history": rs["history"]},
        }
        for split, ps in (("train", tr), ("test", te)):
            fold["rows"][f"{rel}/{split}"] = _row(model, data, ps, thetas, cfg, progress)
    return fold


def _extras(model, data, fold, cfg, rng, progress) -> dict:
    """Beyond the paper: class-level Gram (fold 1's inter/test pairs) and top-k → top-1 re-ranking."""
    best = Theta.from_dict(fold["theta"]["inter"]["tuned"])
    row = fold["rows"]["inter/test"]
    pairs = [Pair(**p) for p in row["pairs"]]
    cg = {"pairs": "fold 1 inter/test", "theta": "inter (CMA-ES)", "exemplars": cfg["exemplars"], "ranks": {}}
    for mode in ("single", "mean", "normalized"):
        cg["ranks"][mode] = transfer_ranks(
            model,
            data,
            pairs,
            [best],
            gram=mode,
            exemplars=cfg["exemplars"],
            seed=cfg["seed"],
            lr_drop=cfg["lr_drop"],
            progress=progress,
        )[0].tolist()
    src = row["source_photos"]
    for mode in ("mean", "normalized"):
        d = np.subtract(cg["ranks"][mode], cg["ranks"]["single"])
        cg[f"{mode}-single"] = _cluster(d, src, cfg["n_boot"], cfg["seed"])
    images = [int(i) for c in fold["test_classes"] for i in data.of_class(c)]
    pick = sorted(
        int(i) for i in rng.choice(images, size=min(cfg["rerank_sources"], len(images)), replace=False)
    )
    rr = rerank(model, data, pick, best, seed=cfg["seed"], lr_drop=cfg["lr_drop"], progress=progress)
    photos = [int(data.sources[i]) for i in pick]
    for rule in ("after", "gain"):
        d = np.subtract(rr["correct"][rule], rr["correct"]["before"]).astype(float)
        rr[f"{rule}-before"] = _cluster(d, photos, cfg["n_boot"], cfg["seed"])
    rr["top1_interval"] = {
        r: _cluster(np.asarray(rr["correct"][r], float), photos, cfg["n_boot"], cfg["seed"])
        for r in ("before", "after", "gain")
    }
    rr["theta"] = "inter (CMA-ES)"
    return {"class_gram": cg, "rerank": rr}


def lr_drop(model: nn.Module | str) -> tuple[float, float]:
    """The lr decay on real data: the model's style settings' ``lr_drop``, else cs231n's ``(0.9, 0.1)``."""
    return tuple(model_settings(model).style.lr_drop or (0.9, 0.1))


def resolve_config(data: ClassImages, model: nn.Module | str = "squeezenet1_1", **cfg) -> dict:
    """:data:`RUN_DEFAULTS` overridden by ``cfg``, with the data-dependent values filled in.

    On real data (Imagenette, Imagewoof) the step range ends at the paper's 200 steps (with the
    lr decay of the model's style settings); offline at 24 (what the shared machine affords). ``size`` becomes
    the data's image size.
    """
    unknown = set(cfg) - set(RUN_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown settings {sorted(unknown)}; settings are {sorted(RUN_DEFAULTS)}.")
    cfg = {**RUN_DEFAULTS, **cfg}
    real = data.data in ("imagenette", "imagewoof")
    cfg["steps_max"] = cfg["steps_max"] or (200 if real else 24)
    cfg["lr_drop"] = list(lr_drop(model) if real else ()) or None
    cfg["size"] = int(data.images.shape[-1])
    return cfg


def run(
    model: nn.Module,
    data: ClassImages,
    *,
    state_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    **cfg,
) -> dict:
    """The whole experiment (both folds, baseline, class-level Gram, re-ranking) as a JSON-able dict.

    ``cfg`` overrides :data:`RUN_DEFAULTS`; every setting that made the numbers is stored.
    """
    cfg = resolve_config(data, model, **cfg)
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg["seed"])
    first, second = split_classes(data.classes, cfg["n_train_classes"], cfg["seed"])
    untuned = untuned_theta(model).capped(cfg["steps_max"])
    content_layer, layers = style_layers(model)
    out = {
        "config": cfg,
        "image_size": cfg["size"],
        "classes": {
            "names": {str(c): data.names[c] for c in data.classes},
            "fold1_train": first,
            "fold1_test": second,
        },
        "layers": {"content": content_layer, "style": list(layers)},
        "theta": {"untuned": untuned.to_dict()},
        "folds": [],
    }
    splits = [(first, second), (second, first)][: cfg["folds"]]
    for k, (train, test) in enumerate(splits):
        out["folds"].append(
            _fold(model, data, train, test, untuned, cfg, rng, state_dir, f"fold{k + 1}", progress)
        )
    out.update(_extras(model, data, out["folds"][0], cfg, rng, progress))
    out["table1"] = {}
    for rel in RELATIONS:
        for split in ("train", "test"):
            key = f"{rel}/{split}"
            out["table1"][key] = {
                **_summarise([f["rows"][key] for f in out["folds"]], cfg),
                "paper": list(PAPER_TABLE1[key]),
            }
    out["claims"] = claims(out)
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return out


_LABEL = {
    "no_transfer": "no transfer",
    "untuned": "untuned transfer",
    "tuned": "tuned transfer (CMA-ES)",
    "random": "random-search θ",
}


def claims(results: dict) -> list[str]:
    """Sentences computed from the intervals: a winner is named only when the interval of the difference
    excludes 0.
    """
    lines = []
    for key in PAPER_TABLE1:
        row = results["table1"][key]
        for d, iv in row["diff"].items():
            a, b = d.split("-")
            lines.append(
                f"{key} (n = {row['n_pairs']} pairs, {row['n_source_photos']} photos): "
                + compare(_LABEL[a], _LABEL[b], iv, better="lower", unit=" ranks")
            )
    cg = results["class_gram"]
    for mode in ("mean", "normalized"):
        lines.append("class-level Gram: " + compare(f"{mode} Gram", "single exemplar", cg[f"{mode}-single"]))
    rr = results["rerank"]
    for rule in ("after", "gain"):
        lines.append(
            "re-ranking top-1: "
            + compare(
                f"rule '{rule}'", "the model's own ranking", rr[f"{rule}-before"], better="higher", digits=2
            )
        )
    return lines


def table1(results: dict) -> str:
    """Table 1 (mean ordinal rank [95 % cluster-bootstrap interval]), pooled over folds, the paper's
    beside.
    """
    head = ["condition", "n", *(_LABEL[c] for c in COLUMNS), "paper (none / untuned / tuned)"]
    rows = []
    for key in PAPER_TABLE1:
        r = results["table1"][key]
        rel, split = key.split("/")
        cells = [fmt_interval(*r["mean"][c]) for c in COLUMNS]
        rows.append(
            [
                f"{rel}-class {split}",
                f"{r['n_pairs']}/{r['n_source_photos']}",
                *cells,
                " / ".join(f"{p:g}" for p in r["paper"]),
            ]
        )
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


def load_results(path: str | os.PathLike = RESULTS_FILE) -> dict:
    """Read a results file written by :func:`save_results`."""
    return json.loads(Path(path).read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the experiment and write its results file (with this very command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="python -m introspect_lab.experiments.style_shift_run", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", required=True, help="results JSON, e.g. data/results/style_shift.json")
    ap.add_argument("--model", default="squeezenet1_1")
    ap.add_argument("--fallback", default="efficientnet_lite0")
    ap.add_argument("--data", default="auto", help="auto, imagenette, imagewoof, photos or stand-in")
    ap.add_argument("--state-dir", default=None, help="keep CMA-ES states here (resumable)")
    for key, value in RUN_DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    model = load_model(args.model, fallback=args.fallback)
    info = model_info(model)
    data = load_images(model, resolve_data(args.data), per_class=args.per_class, size=args.size or None)
    cfg = {k: getattr(args, k) for k in RUN_DEFAULTS}
    results = run(model, data, state_dir=args.state_dir, **cfg)
    results.update(
        {
            "experiment": "seed 000 (Introspective Neural Networks), sec. 3.1/4.1, Table 1",
            "command": "python -m introspect_lab.experiments.style_shift_run "
            + " ".join(shlex.quote(a) for a in argv),
            "model": info.name,
            "model_source": info.source,
            "model_requested": args.model,
            "frozen_bn": True,
            "data": {"name": data.data, "description": data.description, "limits": data.limits},
            "library_version": __version__,
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    )
    save_results(args.out, results)
    print(table1(results))
    print("\n".join(results["claims"]))
    print(f"Wrote {args.out} ({results['wall_seconds']} s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
