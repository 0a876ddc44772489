"""Benchmark for the style-shift experiment (notebook 11): one CMA-ES generation, batched vs sequential.

    python bench/bench_style_shift.py [--popsize 6] [--steps 12] [--size 96]

One population of ``popsize`` candidate θ is evaluated on one batch of 5 (source,
style) pairs of the offline stand-in, at the full run's image size:

* **batched**: :func:`~introspect_lab.experiments.style_shift.evaluate` runs all
  candidates × pairs as one optimisation (what a CMA-ES generation does);
* **per candidate**: a Python loop over candidates, each with its 5 pairs batched;
* **sequential**: a Python loop over every (candidate, pair), one image at a time.

Reported as ratios from one run (goal: sequential / batched ≥ 2); the ranks of the
three ways are compared too. Results go to ``bench/results/style_shift.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from introspect_lab import load_model
from introspect_lab.experiments import style_shift as S
from introspect_lab.experiments import style_shift_tuning as T

RESULTS = Path(__file__).parent / "results" / "style_shift.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--popsize", type=int, default=6)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args(argv)
    model = load_model("efficientnet_lite0")
    data = S.stand_in_images(model, per_class=8, size=args.size)
    train, _ = S.split_classes(data.classes, 5, 0)
    pairs = S.sample_pairs(data, train, "inter", np.random.default_rng(0), n_images=5)
    # a population as CMA-ES would draw it around the untuned θ, with the steps fixed
    start = S.untuned_theta(model)
    rng = np.random.default_rng(1)
    x0 = T._encode(start)
    thetas = []
    for _ in range(args.popsize):
        t = T._decode(x0 + np.r_[rng.normal(0, 0.5, len(x0) - 1), 0.0])
        thetas.append(S.Theta(t.style_weights, t.content_weight, t.tv, t.lr, args.steps))
    S.transfer_ranks(model, data, pairs[:1], thetas[:1], progress=False)  # warm-up

    t = time.perf_counter()
    batched = S.transfer_ranks(model, data, pairs, thetas, progress=False)
    t_batched = time.perf_counter() - t

    t = time.perf_counter()
    per_cand = np.concatenate([S.transfer_ranks(model, data, pairs, [th], progress=False) for th in thetas])
    t_per_cand = time.perf_counter() - t

    t = time.perf_counter()
    seq = np.array(
        [[S.transfer_ranks(model, data, [p], [th], progress=False)[0, 0] for p in pairs] for th in thetas]
    )
    t_seq = time.perf_counter() - t

    out = {
        "population": args.popsize,
        "pairs": len(pairs),
        "steps": args.steps,
        "size": args.size,
        "threads": torch.get_num_threads(),
        "seconds": {
            "batched": round(t_batched, 2),
            "per_candidate": round(t_per_cand, 2),
            "sequential": round(t_seq, 2),
        },
        "ratio_sequential_over_batched": round(t_seq / t_batched, 2),
        "ratio_per_candidate_over_batched": round(t_per_cand / t_batched, 2),
        "goal": "sequential / batched >= 2",
        "max_rank_difference": int(max(np.abs(batched - seq).max(), np.abs(batched - per_cand).max())),
    }
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
