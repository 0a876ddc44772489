"""Seed 002, Table 1: conv-map inversion error with and without the patch prior, at a feature-error threshold.

    python -m introspect_lab.experiments.patch_prior_table1 [--model alexnet] [--size 96] [--steps 60]

Three methods, as in the paper: Mahendran & Vedaldi's inversion from noise
("[8]+rand"), the same from the retrieved-patch average ("[8]+[7]"), and the
same plus the patch prior ("ours"), all with Eq. 3's ``R_α‖I‖² + R_β‖∇I‖²``.
A fourth column, "ours, tile-normalised", builds the patch database as the
code did before: every retrieved cell normalised by its *own* mean and std,
while the paper (and the query patches) use the whole photo's; it tests
whether that mismatch explains a reversed ordering. Each bundled colour photo
is inverted from the model's last conv map (pool5 on AlexNet) with the
*other* photos as the retrieval database (leave one out). A run counts if
its feature error is below ``tau``; the table reports the mean relative
error ``‖I₀ − Î‖/‖I₀‖`` in the model's normalised space (the dataset mean
taken out, as the paper's Caffe inputs) and in [0, 1] pixels, with a
bootstrap interval over photos for each difference from "[8]+[7]".

Offline stand-in: 4 bundled photos by default (the paper: 100 ImageNet validation images),
the bundled EfficientNet-Lite0 when AlexNet is not cached, no whitening, and a
retrieval database of crops of the 6 other colour photos (the paper: 1 M pool5 patches).
Results go to ``data/results/patch_prior_table1.json`` with this command,
every setting, and a cheap ``slice`` (one photo, few steps) that the tests
recompute with today's code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__, load_image, load_model, sample_image
from .. import pathways as P
from ..config import show_progress
from ..images import normalize
from ..settings import InversionSettings
from ..synthesis import invert
from ..synthesis import patch_prior as PP

PAPER = {"[8]+rand": 0.51, "[8]+[7]": 0.45, "ours": 0.32}
METHODS = ("[8]+rand", "[8]+[7]", "ours", "ours, tile-normalised")
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle", "china", "flower")
RESULT = Path(__file__).resolve().parents[2] / "data" / "results" / "patch_prior_table1.json"
#: Every setting of the stored run (the CLI's defaults).
DEFAULTS = {
    "model": "alexnet",
    "size": 96,
    "steps": 60,
    "lr": 0.05,
    "tv_weight": 1e-4,
    "alpha_weight": 1e-5,
    "prior_weight": 3.0,
    "tau": 0.2,
    "k": 10,
    "crops": 3,
    "patch": 8,
    "patch_stride": 4,
    "every": 10,
    "init_scale": 0.1,
    "seed": 0,
    "photos": "chelsea,coffee,rocket,astronaut",
}


def inversion_settings(s: dict) -> InversionSettings:
    """Eq. 3's priors as :class:`InversionSettings`: Adam, no lr drop, ``R_α‖I‖²`` (α = 2) and ``R_β‖∇I‖²``
    (β = 2).
    """
    return InversionSettings(
        size=s["size"],
        steps=s["steps"],
        optimizer="adam",
        lr=s["lr"],
        lr_drop=None,
        tv_weight=s["tv_weight"],
        tv_beta=2.0,
        alpha_weight=s["alpha_weight"],
        alpha=2.0,
    )


def invert_photo(
    model: nn.Module, name: str, s: dict, methods=METHODS
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Seed 002's Table 1 runs for one photo: ``({method: SynthesisResult}, photo, retrieved start)``,
    normalised.
    """
    layer = P.pathway_layers(model).location
    info = model.lab_info
    photo = load_image(sample_image(name), model, s["size"])
    others, _ = P.photo_crops([n for n in PHOTOS if n != name], n=s["crops"], size=s["size"])
    found = PP.retrieve(model, photo, layer, normalize(others, model), k=s["k"])
    start = normalize(found.average, model)
    db = {
        "ours": PP.PatchDatabase.from_images(
            found.normalised, size=s["patch"], stride=s["patch_stride"], normalised=True
        ),
        "ours, tile-normalised": PP.PatchDatabase.from_images(
            found.patches, size=s["patch"], stride=s["patch_stride"]
        ),
    }
    cfg = inversion_settings(s)
    out = {}
    for m in methods:
        prior = PP.PatchPrior(db[m], mean=info.mean, std=info.std, every=s["every"]) if m in db else None
        out[m] = invert(
            model,
            photo,
            layer,
            settings=cfg,
            init="noise" if m == "[8]+rand" else start,
            init_scale=s["init_scale"],
            prior=prior,
            prior_weight=s["prior_weight"],
            seed=s["seed"],
            progress=False,
        )
    return out, photo, start


def errors(runs: dict) -> dict:
    """``{method: {feature_error, relative_error, pixel_error}}`` of :func:`invert_photo`'s runs."""
    return {
        m: {k: r.extra[k] for k in ("feature_error", "relative_error", "pixel_error")}
        for m, r in runs.items()
    }


def run(settings: dict | None = None, progress: bool | None = None, out: Path | None = None) -> dict:
    """Run Table 1 on the bundled photos and return the results (see the module docstring).

    With ``out``, the results so far are written there after every photo (``"complete": false`` until the
    end).
    """
    s = dict(DEFAULTS, **(settings or {}))
    torch.manual_seed(s["seed"])
    model = load_model(s["model"], fallback="efficientnet_lite0")
    slice_settings = dict(s, steps=5, crops=2)
    res = {
        "command": "python -m introspect_lab.experiments.patch_prior_table1 " + " ".join(sys.argv[1:]),
        "model": model.lab_info.name,
        "layer": P.pathway_layers(model).location,
        "data": (
            f"offline stand-in: bundled photos at {s['size']} px, leave-one-out retrieval from {s['crops']} "
            "crops of each other photo"
        ),
        "settings": s,
        "inversion_settings": asdict(inversion_settings(s)),
        "version": __version__,
        "paper": PAPER,
        "slice": {
            "photo": "chelsea",
            "settings": slice_settings,
            "result": errors(invert_photo(model, "chelsea", slice_settings, ("[8]+rand", "ours"))[0]),
        },
        "per_photo": {},
        "complete": False,
    }
    for name in tqdm(
        s["photos"].split(","),
        desc="Table 1",
        disable=not (show_progress() if progress is None else progress),
    ):
        res["per_photo"][name] = errors(invert_photo(model, name, s)[0])
        res["table"] = summarize(res["per_photo"], s["tau"])
        print(name, {k: round(v["relative_error"], 3) for k, v in res["per_photo"][name].items()}, flush=True)
        if out is not None:
            out.write_text(json.dumps(res, indent=2))
    res["complete"] = True
    return res


def summarize(per_photo: dict, tau: float, seed: int = 0, n_boot: int = 2000) -> dict:
    """Mean errors per method over the photos on which *every* method's feature error is below ``tau``.

    With a 95 % bootstrap interval over those photos (resampled together) of
    each method's difference from "[8]+[7]", in both spaces.
    """
    methods = list(next(iter(per_photo.values())))
    kept = [n for n, p in per_photo.items() if all(p[k]["feature_error"] < tau for k in methods)]
    table: dict = {"photos_below_tau": kept}
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(kept), size=(n_boot, len(kept))) if kept else None
    for k in methods:
        row = {}
        for space in ("relative_error", "pixel_error"):
            v = np.array([per_photo[n][k][space] for n in kept])
            ref = np.array([per_photo[n]["[8]+[7]"][space] for n in kept])
            row[space] = float(v.mean()) if kept else None
            if kept and k != "[8]+[7]":
                d = (v - ref)[boot].mean(1)
                row[f"{space}_minus_[8]+[7]"] = [
                    float((v - ref).mean()),
                    *map(float, np.percentile(d, [2.5, 97.5])),
                ]
        table[k] = row
    return table


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run and write ``data/results/patch_prior_table1.json``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for key, value in DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    res = run(vars(args), out=RESULT)
    res["seconds"] = round(time.perf_counter() - start)
    RESULT.write_text(json.dumps(res, indent=2))
    print(f"{'Method':<10}" + "".join(f"{k:>24}" for k in METHODS))
    print(f"{'Paper':<10}" + "".join(f"{PAPER.get(k, float('nan')):>24.2f}" for k in METHODS))
    for space in ("relative_error", "pixel_error"):
        print(f"{space:<10}" + "".join(f"{(res['table'][k][space] or float('nan')):>24.2f}" for k in METHODS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
