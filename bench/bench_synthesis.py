"""Benchmarks for the synthesis engine (notebooks 05–08).

    python bench/bench_synthesis.py [--notebooks]

1. Style-transfer step time of the engine (truncated forward pass, targets
   computed once) against a straightforward cs231n-style loop with the same
   model, layers and size (every step runs the whole network, collects all
   the features, then computes the losses). Reported as a ratio; goal ≤ 0.7.
2. Time to first preview after a slider change in the live widget.
3. With ``--notebooks``: wall time and peak RSS of notebooks 05–08 at their
   default settings (through ``bench/notebooks.py``); otherwise the last
   stored numbers are repeated.

Results are printed and written to ``bench/results/synthesis.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import torch

from introspect_lab import load_image, load_model, sample_image
from introspect_lab.hooks import capture, frozen
from introspect_lab.models import model_settings
from introspect_lab.synthesis import layer_features, synthesize
from introspect_lab.synthesis import objectives as O
from introspect_lab.synthesis import priors as R
from introspect_lab.texture.gatys import style_targets

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "synthesis.json"
NOTEBOOKS = [
    "notebooks/05_activation_maximization.ipynb",
    "notebooks/06_deepdream.ipynb",
    "notebooks/07_feature_inversion.ipynb",
    "notebooks/08_texture_and_style.ipynb",
]


def reference_style_loop(model, content, style, cfg, steps: int) -> float:
    """cs231n-style: each step runs the whole network, keeps every layer's features, then the losses."""
    layers = list(cfg.style_layers)
    c_layer = cfg.content_layer
    every_layer = ["stem"] + [f"blocks.{i}" for i in range(16)] + ["head"]
    with frozen(model), torch.no_grad(), capture(model, every_layer) as cap:
        model(style)
        targets = {n: O.gram(cap.activations[n]) for n in layers}
        model(content)
        p = cap.activations[c_layer].clone()
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    with frozen(model), capture(model, every_layer, detach=False) as cap:
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            model(x)
            feats = dict(cap.activations)  # all features computed, then losses
            loss = cfg.content_weight * 0.5 * (feats[c_layer] - p).pow(2).sum()
            for n, w in zip(layers, cfg.style_weights):
                a = feats[n]
                g = O.gram(a)
                loss = loss + w * (g - targets[n]).pow(2).sum() / (
                    4.0 * a.shape[1] ** 2 * (a.shape[2] * a.shape[3]) ** 2
                )
            loss = loss + cfg.tv_weight * R.total_variation(x)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps


def engine_style_loop(model, content, style, cfg, steps: int) -> float:
    layers = list(cfg.style_layers)
    c_layer = cfg.content_layer
    targets = style_targets(model, style, layers)
    p = layer_features(model, content, c_layer)[c_layer]
    loss = cfg.content_weight * O.content_loss(c_layer, p) + O.style_loss(targets, cfg.style_weights)
    loss = loss + cfg.tv_weight * R.tv()
    res = synthesize(model, -loss, init=content, steps=steps, lr=cfg.lr, progress=False, seed=0)
    return res.seconds / steps


def bench_style(model, size: int = 128, steps: int = 20, repeats: int = 5) -> dict:
    cfg = model_settings(model).style
    content = load_image(sample_image("chelsea"), model, size)
    style = load_image(sample_image("gravel"), model, size)
    engine_style_loop(model, content, style, cfg, 3)  # warm-up
    reference_style_loop(model, content, style, cfg, 3)
    ref, eng = [], []
    for _ in range(repeats):  # interleaved, so background load hits both alike
        ref.append(reference_style_loop(model, content, style, cfg, steps))
        eng.append(engine_style_loop(model, content, style, cfg, steps))
    r, e = median(ref), median(eng)
    return {
        "size": size,
        "layers": list(cfg.style_layers),
        "content_layer": cfg.content_layer,
        "reference_ms_per_step": round(1000 * r, 1),
        "engine_ms_per_step": round(1000 * e, 1),
        "ratio": round(e / r, 3),
        "goal": "≤ 0.7",
    }


def bench_preview(model, changes: int = 5) -> dict:
    import ipywidgets as W

    from introspect_lab.synthesis import visualize_class
    from introspect_lab.widgets import LiveOptimization

    jitter = W.IntSlider(value=4, min=0, max=16)
    live = LiveOptimization(
        lambda **kw: visualize_class(model, "tabby", seed=0, **kw),
        {"jitter": jitter},
        size=128,
        steps=100,
        preview_size=64,
        preview_steps=10,
        every=5,
    )
    times = []
    try:
        time.sleep(1.0)
        for i in range(changes):
            jitter.value = 5 + i
            end = time.perf_counter() + 30
            while live.first_preview_after_change is None and time.perf_counter() < end:
                time.sleep(0.005)
            times.append(live.first_preview_after_change)
            time.sleep(0.5)
    finally:
        live.stop()
    return {"seconds": [round(t, 3) for t in times], "median_s": round(median(times), 3), "goal": "≈ 1 s"}


def bench_notebooks(run: bool) -> dict:
    if run:
        subprocess.run([sys.executable, str(HERE / "notebooks.py"), *NOTEBOOKS], check=False)
    stored = HERE / "results" / "notebooks.json"
    data = json.loads(stored.read_text()) if stored.exists() else {}
    return {Path(n).name: data.get(Path(n).name) for n in NOTEBOOKS}


def main(argv: list[str]) -> int:
    torch.manual_seed(0)
    model = load_model(verbose=False)
    out = {"style_step": bench_style(model)}
    print(
        f"style transfer step: engine {out['style_step']['engine_ms_per_step']} ms vs reference "
        f"{out['style_step']['reference_ms_per_step']} ms  →  ratio {out['style_step']['ratio']} (goal ≤ 0.7)"
    )
    out["first_preview"] = bench_preview(model)
    print(
        f"first preview after a slider change: median {out['first_preview']['median_s']} s "
        f"({out['first_preview']['seconds']})"
    )
    out["notebooks"] = bench_notebooks("--notebooks" in argv)
    for name, r in out["notebooks"].items():
        if r:
            print(f"{name:<40} {r['wall_s']:>7.1f} s {r['peak_rss_mb']:>6} MB peak RSS")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
