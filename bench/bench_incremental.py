"""Incremental occlusion (Krypton) against plain occlusion and Captum's ``Occlusion``, in one run.

    python bench/bench_incremental.py [--threads 1] [--sizes 224 448] [--window 16] [--stride 8]
    python bench/bench_incremental.py --sizes 448 --sample 48   # a quick per-copy estimate instead

Nakandala, Kumar & Papakonstantinou (SIGMOD 2019). Same model (EfficientNet-Lite0, bundled weights),
same photo (chelsea), baseline 0, one thread. For each image size: CPU seconds of introspect-lab's
plain occlusion, of its incremental occlusion, and of Captum (defaults, ``perturbations_per_eval=1``),
the ratio incremental / Captum (goal <= 0.2 at 224 px), the largest map difference, and the share of
multiply-adds saved per convolution: done by the engine vs the theory from receptive-field sizes
(:func:`introspect_lab.attribution.cone.cone_share`). Then, from the theory alone, how the possible
speed-up grows with the image size and shrinks with the window; and Krypton's approximate
projective-field threshold ``tau`` at the first size: time and error against the exact map.
Times are CPU seconds (``time.process_time``, one thread), which a busy machine disturbs less than
wall time. Results go to ``bench/results/incremental.json`` (one entry per size).
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
from introspect_lab.attribution import IncrementalForward, occlusion, spearman  # noqa: E402
from introspect_lab.attribution.cone import cone_share  # noqa: E402
from introspect_lab.receptive import receptive_field  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "incremental.json"


def timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def one_size(model, size: int, window: int, stride: int, taus: list[float]) -> dict:
    from captum.attr import Occlusion

    x = load_image(sample_image("chelsea"), model, size=size)
    target = int(model(x).argmax())
    kw = dict(window=window, stride=stride)
    occlusion(model, x[:, :, :64, :64], target, window=16, stride=16, method="plain")  # warm-up
    plain, t_plain = timed(lambda: occlusion(model, x, target, method="plain", **kw))
    engine = IncrementalForward(model)
    ours, t_inc = timed(lambda: occlusion(model, x, target, method=engine, **kw))
    theirs, t_captum = timed(
        lambda: Occlusion(model).attribute(
            x,
            target=target,
            sliding_window_shapes=(3, window, window),
            strides=(3, stride, stride),
            baselines=0.0,
        )[:, 0]
    )
    copies = engine.costs["fc"].full // (1280 * 1000)
    layers = []
    for name, c in engine.costs.items():
        theory = 0.0 if name == "fc" else 1 - cone_share(receptive_field(model, name, size), window, stride)
        layers.append(
            dict(
                layer=name,
                full_mmacs_per_copy=round(c.full / copies / 1e6, 2),
                saved=round(c.saved, 4),
                saved_theory=round(theory, 4),
                incremental_s=round(c.seconds, 3),
            )
        )
    full = sum(c.full for c in engine.costs.values())
    done = sum(c.done for c in engine.costs.values())
    theory_done = sum(c.full * (1 - lay["saved_theory"]) for c, lay in zip(engine.costs.values(), layers))
    out = dict(
        size=size,
        window=window,
        stride=stride,
        copies=copies,
        plain_s=round(t_plain, 2),
        incremental_s=round(t_inc, 2),
        captum_s=round(t_captum, 2),
        ratio_vs_captum=round(t_inc / t_captum, 3),
        plain_ratio_vs_captum=round(t_plain / t_captum, 3),
        max_rel_diff_vs_plain=rel(ours, plain),
        max_rel_diff_vs_captum=rel(ours, theirs),
        macs_saved=round(1 - done / full, 4),
        macs_saved_theory=round(1 - theory_done / full, 4),
        region_layers_s=round(sum(c.seconds for c in engine.costs.values()), 2),
        tail_from=engine.tail_from,
        layers=layers,
    )
    out["tau"] = []
    for tau in taus:
        approx = IncrementalForward(model, cap=tau)
        got, t = timed(lambda approx=approx: occlusion(model, x, target, method=approx, **kw))
        done_tau = sum(c.done for c in approx.costs.values())
        out["tau"].append(
            dict(
                tau=tau,
                seconds=round(t, 2),
                ratio_vs_captum=round(t / t_captum, 3),
                macs_saved=round(1 - done_tau / full, 4),
                max_rel_error=rel(got, ours),
                spearman=round(float(spearman(got.flatten(), ours.flatten())), 4),
            )
        )
    return out


def sampled(model, size: int, window: int, stride: int, n: int) -> dict:
    """Per-copy CPU seconds on ``n`` random windows, times the number of windows (an estimate, said so).

    Plain: the TorchScript-frozen model on batches of 4 (what ``method="plain"`` runs); Captum: the
    eager model on one copy at a time (what ``Occlusion`` runs with ``perturbations_per_eval=1``);
    incremental: the engine on batches of 16 after caching and compiling its tail.
    """
    x = load_image(sample_image("chelsea"), model, size=size)
    starts = list(range(0, size - window + stride, stride))
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(starts) ** 2, generator=gen)[:n].tolist()
    pos = [(starts[i // len(starts)], starts[i % len(starts)]) for i in pick]
    tops, lefts = [min(r, size - window) for r, _ in pos], [min(c, size - window) for _, c in pos]
    grey = torch.zeros(n, 3, window, window)
    copies = x.expand(n, -1, -1, -1).clone()
    for k, (t, c) in enumerate(zip(tops, lefts)):
        copies[k, :, t : t + window, c : c + window] = 0
    engine = IncrementalForward(model)
    with torch.inference_mode():
        engine.cache(x)
        engine.compile_tail((window, window), 16)
        engine.costs = {k: type(v)(k) for k, v in engine.costs.items()}
        _, t_inc = timed(
            lambda: [engine(grey[i : i + 16], tops[i : i + 16], lefts[i : i + 16]) for i in range(0, n, 16)]
        )
        net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model.eval(), copies[:4])))
        fast = copies.contiguous(memory_format=torch.channels_last)
        net(fast[:4])
        _, t_plain = timed(lambda: [net(fast[i : i + 4]) for i in range(0, n, 4)])
        _, t_captum = timed(lambda: [model(copies[i : i + 1]) for i in range(n)])
    total = len(starts) ** 2 / n
    full = sum(c.full for c in engine.costs.values())
    done = sum(c.done for c in engine.costs.values())
    return dict(
        size=size,
        window=window,
        stride=stride,
        copies=len(starts) ** 2,
        sampled=n,
        plain_s=round(t_plain * total, 1),
        incremental_s=round(t_inc * total, 1),
        captum_s=round(t_captum * total, 1),
        ratio_vs_captum=round(t_inc / t_captum, 3),
        plain_ratio_vs_captum=round(t_plain / t_captum, 3),
        macs_saved=round(1 - done / full, 4),
        tail_from=engine.tail_from,
    )


def theory_sweep(model, sizes: list[int], windows: list[int]) -> list[dict]:
    """Whole-network multiply-adds saved, from receptive fields only, over image sizes and windows."""
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    rows = []
    for size in sizes:
        fields = {n: receptive_field(model, n, size) for n in convs}
        x = torch.zeros(1, 3, size, size)
        engine = IncrementalForward(model)
        engine.cache(x)
        engine(x[:, :, :8, :8], [0], [0])  # one copy: the full multiply-adds per layer
        full = {n: engine.costs[n].full for n in [*convs, "fc"]}
        for window in windows:
            cone = sum(full[n] * cone_share(fields[n], window, window // 2) for n in convs) + full["fc"]
            saved = 1 - cone / sum(full.values())
            rows.append(
                dict(
                    size=size,
                    window=window,
                    stride=window // 2,
                    macs_saved_theory=round(saved, 4),
                    max_speedup_theory=round(1 / (1 - saved), 2),
                )
            )
            print(
                f"  theory {size:4d} px window {window:3d}: saved {saved:6.1%}  speed-up "
                f"<= {1 / (1 - saved):5.2f}x"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--taus", type=float, nargs="*", default=[0.5, 0.3])
    parser.add_argument("--sweep-sizes", type=int, nargs="*", default=[112, 224, 448])
    parser.add_argument("--sweep-windows", type=int, nargs="*", default=[8, 16, 32, 64])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sample", type=int, default=0, help="estimate from this many random windows")
    args = parser.parse_args()
    out = args.out
    torch.set_num_threads(args.threads)
    model = load_model(verbose=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    for size in args.sizes if args.sample else []:
        r = sampled(model, size, args.window, args.stride, args.sample)
        results[f"lite0_{size}px_sampled"] = r
        out.write_text(json.dumps(results, indent=2))
        print(
            f"ESTIMATE from {r['sampled']} of {r['copies']} windows, {size} px (CPU s): "
            f"plain {r['plain_s']}, incremental {r['incremental_s']}, captum {r['captum_s']}, "
            f"ratio {r['ratio_vs_captum']}, saved {r['macs_saved']:.1%}"
        )
    for i, size in enumerate([] if args.sample else args.sizes):
        r = one_size(model, size, args.window, args.stride, args.taus if i == 0 else [])
        results[f"lite0_{size}px"] = r
        out.write_text(json.dumps(results, indent=2))
        print(
            f"occlusion {size} px, window {args.window}, stride {args.stride}, "
            f"{r['copies']} copies, 1 thread (CPU s)"
        )
        print(
            f"  plain {r['plain_s']:7.1f}   incremental {r['incremental_s']:7.1f}   captum "
            f"{r['captum_s']:7.1f}"
        )
        print(
            f"  incremental / captum {r['ratio_vs_captum']:.3f} (goal <= 0.2)   plain / captum "
            f"{r['plain_ratio_vs_captum']:.3f}"
        )
        print(
            f"  multiply-adds saved {r['macs_saved']:.1%} (theory {r['macs_saved_theory']:.1%}); "
            f"max |diff| vs plain {r['max_rel_diff_vs_plain']:.1e}, "
            f"vs captum {r['max_rel_diff_vs_captum']:.1e}"
        )
        for lay in r["layers"]:
            print(
                f"    {lay['layer']:26s} saved {lay['saved']:6.1%} theory {lay['saved_theory']:6.1%}"
                f"  {lay['incremental_s']:6.2f} s"
            )
        for t in r["tau"]:
            print(
                f"  tau {t['tau']}: {t['seconds']:.1f} s ({t['ratio_vs_captum']:.3f} x captum), "
                f"saved {t['macs_saved']:.1%}, max rel error {t['max_rel_error']:.2f}, "
                f"spearman {t['spearman']:.3f}"
            )
    if args.sweep_sizes:
        results["theory_sweep"] = theory_sweep(model, args.sweep_sizes, args.sweep_windows)
        out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
