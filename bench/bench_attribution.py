"""Occlusion speed against Captum's ``Occlusion`` on the bundled model (one run each).

    python bench/bench_attribution.py [--threads 1] [--size 224]

Same model (EfficientNet-Lite0), same photo (chelsea), window 16, stride 8,
baseline 0, one 224 px image: 27 × 27 = 729 occluded copies. Captum runs with
its defaults (``perturbations_per_eval=1``); introspect-lab with its defaults
(batches of 4 under ``torch.inference_mode``, BatchNorm folded, channels-last).
The goal is a ratio (ours / Captum) of at most 0.5. Also checks the two maps
agree. Results go to ``bench/results/attribution.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")

import torch  # noqa: E402

from introspect_lab import load_image, load_model, sample_image  # noqa: E402
from introspect_lab.attribution import occlusion  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "attribution.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from captum.attr import Occlusion

    model = load_model(verbose=False)
    x = load_image(sample_image("chelsea"), model, size=args.size)
    target = int(model(x).argmax())
    occlusion(model, x[:, :, :64, :64], target, window=16, stride=16)  # warm-up

    start = time.perf_counter()
    ours = occlusion(model, x, target, window=args.window, stride=args.stride)
    t_ours = time.perf_counter() - start

    start = time.perf_counter()
    theirs = Occlusion(model).attribute(
        x,
        target=target,
        sliding_window_shapes=(3, args.window, args.window),
        strides=(3, args.stride, args.stride),
        baselines=0.0,
    )[:, 0]
    t_captum = time.perf_counter() - start

    err = float((ours - theirs).abs().max() / theirs.abs().max())
    ratio = t_ours / t_captum
    result = {
        "occlusion": {
            "model": "efficientnet_lite0",
            "size": args.size,
            "window": args.window,
            "stride": args.stride,
            "threads": args.threads,
            "introspect_lab_s": round(t_ours, 2),
            "captum_s": round(t_captum, 2),
            "ratio": round(ratio, 3),
            "goal_ratio": 0.5,
            "max_rel_difference": err,
        }
    }
    print(f"occlusion {args.size} px, window {args.window}, stride {args.stride}, {args.threads} thread(s)")
    print(f"  introspect-lab {t_ours:6.1f} s")
    print(f"  captum         {t_captum:6.1f} s")
    print(f"  ratio          {ratio:6.2f}  (goal <= 0.5) {'met' if ratio <= 0.5 else 'NOT met'}")
    print(f"  max |difference| / max |captum| = {err:.2e}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old.update(result)
    RESULTS.write_text(json.dumps(old, indent=2))


if __name__ == "__main__":
    main()
