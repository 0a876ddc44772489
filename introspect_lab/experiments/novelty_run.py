"""The whole novelty experiment (seed 000, §3.2/§4.2, Figures 4–5) over several class partitions.

Each partition (a seed) draws its own S1/S2/S3, fine-tunes its own networks and trains its
own detectors. A quarter of the detector's training set (S1 seen vs S2 unseen, stratified)
is held out as the *selection* set: the layer of each method and the detectors' threshold
are chosen there, never on the test set (S1 vs S3). Every number is reported as the mean
over partitions with a Student-t 95 % interval (:func:`~.intervals.across_partitions`), and
:func:`verdict` names a winner only when the interval of the paired difference excludes 0.

    python -m introspect_lab.experiments.novelty_run --out data/results/novelty.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__, config
from ..intervals import across_partitions, compare
from ..models import load_model, model_info
from .novelty import (
    PAPER_EPOCHS,
    PAPER_LAYERS,
    STAND_IN_LIMITS,
    NoveltySettings,
    describe_layers,
    fine_tune,
    load_data,
    partition,
    quick_settings,
    stages,
    stand_in_settings,
)
from .novelty_detectors import (
    auroc,
    cached_layer_embeddings,
    detection_accuracy,
    detector_scores,
    mahalanobis_scores,
    msp_scores,
    train_detector,
)

__all__ = [
    "RESULTS_FILE",
    "holdout",
    "evaluate_partition",
    "aggregate",
    "run",
    "verdict",
    "save_results",
    "load_results",
    "main",
]

RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "novelty.json"
CLI = "python -m introspect_lab.experiments.novelty_run"
METRICS = ("train_acc", "select_auroc", "test_auroc", "test_acc", "test_acc_tuned")


def holdout(unseen: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(fit, select)`` in the detector's training set: ``fraction`` of each side held out."""
    rng = np.random.default_rng(seed)
    sel = np.concatenate(
        [
            rng.permutation(np.flatnonzero(unseen == v))[: int(round(fraction * (unseen == v).sum()))]
            for v in (0, 1)
        ]
    )
    return np.setdiff1d(np.arange(len(unseen)), sel), np.sort(sel)


def _threshold(y, scores) -> float:
    """The threshold with the best accuracy on (held-out) ``scores``: midpoints between sorted scores."""
    s = np.unique(scores)
    cuts = np.concatenate([[s[0] - 1e-9], (s[1:] + s[:-1]) / 2]) if len(s) > 1 else s
    return float(max(cuts, key=lambda t: detection_accuracy(y, scores, t)))


def evaluate_partition(
    net, part, data, names, layers, kinds, s: NoveltySettings, seed: int, progress=None
) -> dict:
    """Per layer: each detector's train/selection/test numbers, Mahalanobis; MSP; all on one fine-tuned
    net.
    """
    cols = [names[k] for k in layers]
    x_train, x_test = data.batch(net.backbone, part.train), data.batch(net.backbone, part.test)
    f_train = cached_layer_embeddings(net.backbone, x_train, cols, max_side=s.max_side, progress=progress)
    f_test = cached_layer_embeddings(net.backbone, x_test, cols, max_side=s.max_side, progress=progress)
    fit, sel = holdout(part.train_unseen, s.select_fraction, seed)
    y_fit, y_sel, y_te = part.train_unseen[fit], part.train_unseen[sel], part.test_unseen
    out: dict = {k: {m: [] for m in METRICS} for k in kinds}
    out["mahalanobis"] = {"select_auroc": [], "test_auroc": []}
    show = config.show_progress() if progress is None else progress
    for col in tqdm(cols, desc="Detectors per layer", disable=not show):
        tr, te = f_train[col], f_test[col]
        for kind in kinds:
            det = train_detector(kind, tr[fit], y_fit, epochs=s.detector_epochs, seed=seed)
            p_fit, p_sel, p_te = (detector_scores(det, x) for x in (tr[fit], tr[sel], te))
            t = _threshold(y_sel, p_sel)
            for m, v in zip(
                METRICS,
                (
                    detection_accuracy(y_fit, p_fit),
                    auroc(y_sel, p_sel),
                    auroc(y_te, p_te),
                    detection_accuracy(y_te, p_te),
                    detection_accuracy(y_te, p_te, t),
                ),
            ):
                out[kind][m].append(v)
        seen = fit[y_fit == 0]
        both = torch.cat([tr[sel], te]).mean(
            (2, 3)
        )  # one fit of the class means and covariance for both sets
        maha = mahalanobis_scores(tr[seen].mean((2, 3)), data.labels[part.train][seen], both)
        out["mahalanobis"]["select_auroc"].append(auroc(y_sel, maha[: len(sel)]))
        out["mahalanobis"]["test_auroc"].append(auroc(y_te, maha[len(sel) :]))
    with torch.no_grad():
        logits = torch.cat([net(x_test[i : i + 128]) for i in range(0, len(x_test), 128)])
    out["msp_auroc"] = auroc(y_te, msp_scores(logits))
    for kind in (*kinds, "mahalanobis"):  # the layer chosen on the selection set, and its test AUROC
        k = int(np.argmax(out[kind]["select_auroc"]))
        out[kind]["chosen_layer"], out[kind]["chosen_test_auroc"] = layers[k], out[kind]["test_auroc"][k]
    out["finetune_loss"] = [[phase, round(v, 4)] for phase, v in net.history]
    return out


def aggregate(parts: list[dict], kinds, layers) -> dict:
    """Across partitions: ``[mean, low, high]`` per layer and metric, and for the chosen layers."""
    block: dict = {"layers": list(layers), "partitions": parts}
    for kind in (*kinds, "mahalanobis"):
        block[kind] = {
            m: [across_partitions([p[kind][m][i] for p in parts]) for i in range(len(layers))]
            for m in parts[0][kind]
            if isinstance(parts[0][kind][m], list)
        }
        block[kind]["chosen_test_auroc"] = across_partitions([p[kind]["chosen_test_auroc"] for p in parts])
        block[kind]["chosen_layers"] = [p[kind]["chosen_layer"] for p in parts]
    block["msp_auroc"] = across_partitions([p["msp_auroc"] for p in parts])
    fc = [p["fc"]["chosen_test_auroc"] for p in parts]
    block["diff"] = {
        "fc-msp": across_partitions(np.subtract(fc, [p["msp_auroc"] for p in parts])),
        "fc-mahalanobis": across_partitions(
            np.subtract(fc, [p["mahalanobis"]["chosen_test_auroc"] for p in parts])
        ),
    }
    if "conv" in kinds:
        block["diff"]["conv-fc"] = across_partitions(
            np.subtract([p["conv"]["chosen_test_auroc"] for p in parts], fc)
        )
        late, early = ([np.mean(p["fc"]["test_auroc"][a:b]) for p in parts] for a, b in ((6, 10), (1, 6)))
        block["diff"]["fc layers 6-9 - layers 1-5"] = across_partitions(np.subtract(late, early))
    return block


def run(
    settings: NoveltySettings | None = None,
    model=None,
    data=None,
    progress: bool | None = None,
    command: str = "",
) -> dict:
    """Figures 4 and 5 plus the baselines over ``settings.partitions`` partitions, as JSON-able results."""
    s = settings or stand_in_settings()
    t0 = time.time()
    model = model if model is not None else load_model(s.model, fallback=s.fallback)
    names = stages(model)
    print(describe_layers(model))
    if data is None:
        data = load_data(s.data, s.size, **({"per_class": s.per_class} if s.per_class else {}))
    kinds4, all_layers = ("fc", "conv"), list(range(len(names)))
    raw = {"figure4": [], "without": [], "with": []}
    parts_meta = []
    for p in range(s.partitions):
        seed = s.seed + p
        part = partition(data.labels, data.split, seed)
        parts_meta.append(
            {
                "seed": seed,
                "S1": part.s1,
                "S2": part.s2,
                "S3": part.s3,
                "dropped": part.dropped,
                "counts": part.counts(),
            }
        )
        for key, epochs, layers, kinds in (
            ("figure4", s.figure4, all_layers, kinds4),
            ("without", s.figure5_without, list(s.figure5_layers), ("fc",)),
            ("with", s.figure5_with, list(s.figure5_layers), ("fc",)),
        ):
            print(f"[{time.time() - t0:.0f} s] partition {p + 1}/{s.partitions}: {key}, {epochs}", flush=True)
            net = fine_tune(
                model,
                data,
                part.finetune,
                head_epochs=epochs[0],
                full_epochs=epochs[1],
                seed=seed,
                freeze_bn=s.freeze_bn,
                batch_size=s.batch_size,
                progress=progress,
            )
            raw[key].append(evaluate_partition(net, part, data, names, layers, kinds, s, seed, progress))
    info = model_info(model)
    ran = {
        "figure4": s.figure4,
        "figure5_without": s.figure5_without,
        "figure5_with": s.figure5_with,
        "detector": s.detector_epochs,
    }
    fig5 = {k: aggregate(raw[k], ("fc",), s.figure5_layers) for k in ("without", "with")}
    fig5["layers"] = list(s.figure5_layers)
    fig5["diff_with-without"] = [
        across_partitions(
            [b["fc"]["test_auroc"][i] - a["fc"]["test_auroc"][i] for a, b in zip(raw["without"], raw["with"])]
        )
        for i in range(len(s.figure5_layers))
    ]
    results = {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "library_version": __version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": {
            "requested": s.model,
            "ran": info.name,
            "source": info.source,
            "layers": [[k, p, n] for k, (p, n) in enumerate(zip(PAPER_LAYERS, names))],
        },
        "data": {
            "name": data.name,
            "description": data.description,
            "stand_in": data.stand_in,
            "cannot_show": STAND_IN_LIMITS if data.stand_in else "",
            "image_size": int(data.images.shape[-1]),
        },
        "partitions": parts_meta,
        "epochs": {"paper": PAPER_EPOCHS, "this_run": ran},
        "settings": asdict(s),
        "figure4": aggregate(raw["figure4"], kinds4, all_layers),
        "figure5": fig5,
    }
    results["verdict"] = verdict(results)
    results["seconds"] = round(time.time() - t0, 1)
    return results


def verdict(results: dict) -> list[str]:
    """Sentences computed from the intervals over partitions (a winner only when the interval excludes 0)."""
    n = len(results["partitions"])
    lines = []
    blocks = [("Figure 4 network", results["figure4"])]
    blocks += [(f"Figure 5 network {k} fine-tuning", results["figure5"][k]) for k in ("without", "with")]
    for label, b in blocks:
        fc = b["fc"]["chosen_test_auroc"]
        head = (
            f"{label} ({n} partitions): FC detector at the layer chosen on held-out S2 "
            f"(layers {b['fc']['chosen_layers']}), test AUROC {fc[0]:.3f} [{fc[1]:.3f}, {fc[2]:.3f}]."
        )
        lines.append(head)
        for key, other in (
            ("fc-msp", "maximum softmax probability"),
            ("fc-mahalanobis", "Mahalanobis (chosen on S2)"),
            ("conv-fc", None),
            ("fc layers 6-9 - layers 1-5", None),
        ):
            if key not in b["diff"]:
                continue
            a, o = (
                ("Conv detector", "FC detector")
                if key == "conv-fc"
                else ("FC layers 6-9", "FC layers 1-5")
                if other is None
                else ("FC detector", other)
            )
            lines.append(f"  {label}: " + compare(a, o, b["diff"][key], better="higher", digits=3))
    for layer, d in zip(results["figure5"]["layers"], results["figure5"]["diff_with-without"]):
        lines.append(
            f"Figure 5, layer {layer}: "
            + compare("with fine-tuning", "without", d, better="higher", digits=3)
        )
    return lines


def save_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as JSON (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | Path | None = None) -> dict:
    """The committed results (default ``data/results/novelty.json`` of the repository)."""
    path = Path(path) if path else RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No results at {path}; make them with `{CLI} --out {path}`.")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Command line: run the experiment and write its JSON results."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog=CLI, description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(RESULTS_FILE))
    ap.add_argument("--preset", choices=("stand-in", "paper", "quick"), default="stand-in")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--data", default="auto", choices=("auto", "flowers102", "digits"))
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="image size (default: 224 Flowers, 48 digits)")
    args = ap.parse_args(argv)
    s = {"stand-in": stand_in_settings, "paper": NoveltySettings, "quick": quick_settings}[args.preset]()
    s.model, s.data = args.model, args.data
    s.partitions = args.partitions or s.partitions
    s.size = args.size or s.size
    results = run(s, command=" ".join([CLI, *argv]))
    print("\n".join(results["verdict"]))
    print(f"Wrote {save_results(results, args.out)} in {results['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
