"""Which network makes Gram textures that keep their structure? Measured on every texture of notebook 08.

    OMP_NUM_THREADS=1 python -m introspect_lab.experiments.texture_models

Every texture of notebook 08 (scikit-image's brick, grass and gravel; crops
of the coffee and flower photos) is synthesised at 128 px on one CPU core by
three networks, each within about 10 s:

* ``efficientnet_lite0``: the bundled classifier at the registry's texture
  settings (Adam, 300 steps, colour and TV terms), what notebook 08 does today;
* ``vgg19_random``: VGG-19 with seeded random weights, average pooling, Gram
  layers ``relu1_1 … relu5_1`` (Gatys et al. 2015), L-BFGS 20 iterations;
  ``vgg19_random_x3`` the same with 60 iterations (about 30 s), to see what
  more time buys;
* ``shallow_multiscale``: one random convolutional layer with filters of
  3 … 23 px (Ustyuzhaninov et al., ICLR 2017), L-BFGS 40 iterations.

(:mod:`introspect_lab.texture.networks`.) Each result is judged by
descriptors no loss uses (:mod:`introspect_lab.texture.look`):
colourfulness, high-frequency share, orientation energy, grey-level and
radial-spectrum distance to the exemplar, the combined look distance, and
the line-up (is the result nearest its own exemplar among all five?).
Each model's look distance is compared with Lite0's by a paired bootstrap
over textures and seeds (:func:`introspect_lab.intervals.paired_difference`).
Results go to ``data/results/texture_models.json`` with the command, every
setting, and a cheap ``slice`` (brick at 64 px, 10–40 steps per network) that
tests/test_texture_models.py recomputes with today's code.
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

from .. import __version__, load_image, sample_image, to_display
from ..intervals import compare, paired_difference
from ..settings import TextureSettings, override
from ..texture import look
from ..texture import networks as N
from ..texture.gatys import texture_synthesis

RESULT = Path(__file__).resolve().parents[2] / "data" / "results" / "texture_models.json"
#: Notebook 08's textures: bundled photo name and crop box (left, top, right, bottom).
TEXTURES = {
    "brick": None,
    "grass": None,
    "gravel": None,
    "coffee": (150, 60, 450, 360),
    "flower": (100, 100, 400, 400),
}
MODELS = ("efficientnet_lite0", "vgg19_random", "vgg19_random_x3", "shallow_multiscale")
DEFAULTS = {"size": 128, "seeds": "0,1", "net_seed": 0}
#: The slice the tests recompute: brick at 64 px, enough steps per network for the picture to leave the noise.
SLICE = {
    "texture": "brick",
    "size": 64,
    "seed": 0,
    "steps": {"efficientnet_lite0": 40, "vgg19_random": 10, "shallow_multiscale": 10},
    "dtype": "float64",
}

__all__ = [
    "RESULT",
    "TEXTURES",
    "MODELS",
    "build",
    "exemplar",
    "synthesise",
    "describe",
    "run",
    "comparisons",
    "slice_descriptors",
    "slice_features",
    "load_results",
    "table",
    "best",
    "summary",
    "main",
]


def build(name: str, net_seed: int = 0) -> tuple[torch.nn.Module, TextureSettings]:
    """The network ``name`` (one of :data:`MODELS`) and its texture settings at 128 px."""
    if name not in MODELS:
        raise ValueError(f"Unknown texture model {name!r}; choose one of {MODELS}.")
    net = N.texture_network(name.removesuffix("_x3"), net_seed)
    cfg = N.texture_settings(net)
    return net, (override(cfg, steps=3 * cfg.steps) if name.endswith("_x3") else cfg)


def exemplar(name: str, net: torch.nn.Module, size: int) -> torch.Tensor:
    """Notebook 08's texture ``name`` (a bundled photo or a crop of one), loaded for ``net`` at ``size``."""
    if name not in TEXTURES:
        raise ValueError(f"Unknown texture {name!r}; choose one of {list(TEXTURES)}.")
    img = sample_image(name)
    box = TEXTURES[name]
    return load_image(img if box is None else img.crop(box), net, size)


def synthesise(
    name: str, net: torch.nn.Module, cfg: TextureSettings, texture: torch.Tensor, seed: int
) -> tuple[np.ndarray, float]:
    """One texture by model ``name``: the picture (H×W×3 in [0, 1]) and the CPU seconds it took."""
    t = time.process_time()
    image = texture_synthesis(net, texture, cfg, seed=seed, progress=False).image
    return to_display(image, net), time.process_time() - t


def describe(result: np.ndarray, ex: np.ndarray) -> dict[str, float]:
    """Look descriptors of ``result`` and its exemplar ``ex`` (none is used by any loss)."""
    o_res, o_ex = look.orientation_spectrum(result), look.orientation_spectrum(ex)
    return {
        "colourfulness": look.colourfulness(result),
        "colourfulness_exemplar": look.colourfulness(ex),
        "hf_share": look.high_frequency_share(result),
        "hf_share_exemplar": look.high_frequency_share(ex),
        "orientation_peak": float(o_res.max()),
        "orientation_peak_exemplar": float(o_ex.max()),
        "orientation_distance": float(np.abs(o_res - o_ex).sum()),
        "grey_distance": look.grey_histogram_distance(result, ex),
        "spectrum_distance": look.spectrum_distance(result, ex),
        "structure_scale": look.structure_scale(result),
        "structure_scale_exemplar": look.structure_scale(ex),
        "look_distance": look.look_distance(result, ex),
    }


def _round(d: dict, digits: int = 5) -> dict:
    return {k: round(float(v), digits) for k, v in d.items()}


def run(size: int = 128, seeds: tuple[int, ...] = (0, 1), net_seed: int = 0, progress: bool = True):
    """Every texture × model × seed: descriptors, line-up, seconds; the pictures of seed ``seeds[0]``.

    Returns ``(results, pictures)``: ``results`` is what goes to the JSON file,
    ``pictures[model][texture]`` the first seed's results (and ``"exemplar"``).
    """
    rows, pictures, cfgs = {}, {}, {}
    for m in MODELS:
        net, cfg = build(m, net_seed)
        cfg = override(cfg, size=size)
        cfgs[m] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
        exs = {t: to_display(exemplar(t, net, size), net) for t in TEXTURES}
        pictures.setdefault("exemplar", exs)
        for seed in seeds:
            res = {}
            for t in TEXTURES:
                res[t], secs = synthesise(m, net, cfg, exemplar(t, net, size), seed)
                rows.setdefault(m, {}).setdefault(t, {})[str(seed)] = {
                    **_round(describe(res[t], exs[t])),
                    "seconds": round(secs, 1),
                }
                if progress:
                    print(f"{m:20s} {t:7s} seed {seed}: {secs:5.1f} s", file=sys.stderr, flush=True)
            names, d, matched = look.lineup(res, exs)
            for i, t in enumerate(names):
                row = rows[m][t][str(seed)]
                row["lineup_match"] = bool(matched[t])
                row["lineup_rank"] = int((d[i] < d[i, i]).sum()) + 1
                row["lineup_nearest"] = names[int(np.argmin(d[i]))]
            if seed == seeds[0]:
                pictures[m] = res
    return {
        "settings": {"size": size, "seeds": list(seeds), "net_seed": net_seed, "models": cfgs},
        "rows": rows,
        "comparisons": comparisons(rows, seeds),
    }, pictures


def comparisons(rows: dict, seeds) -> dict:
    """Each model's look distance minus Lite0's: paired bootstrap over textures within seeds."""
    out = {}
    base = rows["efficientnet_lite0"]
    for m in MODELS[1:]:
        for key in ("look_distance", "spectrum_distance", "grey_distance", "orientation_distance"):
            a = [[rows[m][t][str(s)][key] for t in TEXTURES] for s in seeds]
            b = [[base[t][str(s)][key] for t in TEXTURES] for s in seeds]
            d = paired_difference(a, b, (m, "efficientnet_lite0"), unit="textures × seeds")
            out.setdefault(m, {})[key] = [round(d.mean, 4), round(d.low, 4), round(d.high, 4)]
        out[m]["lineup_matches"] = sum(rows[m][t][str(s)]["lineup_match"] for t in TEXTURES for s in seeds)
    out["efficientnet_lite0"] = {
        "lineup_matches": sum(base[t][str(s)]["lineup_match"] for t in TEXTURES for s in seeds)
    }
    return out


def slice_features(net_seed: int = 0) -> dict[str, float]:
    """Each network's mean absolute output on the slice's exemplar: one deterministic forward pass.

    Unlike the synthesis, a forward pass drifts between CPUs only in the last bits, so the tests
    can hold it to a tight tolerance: a changed network (filters, pooling, layers) moves it.
    """
    out = {}
    for m in SLICE["steps"]:
        net, _ = build(m, net_seed)
        ex = exemplar(SLICE["texture"], net, SLICE["size"])
        with torch.no_grad():
            y = net(ex)
        y = torch.cat([v.flatten() for v in y.values()]) if isinstance(y, dict) else y
        out[m] = round(float(y.double().abs().mean()), 8)
    return out


def slice_descriptors(net_seed: int = 0) -> dict[str, dict[str, float]]:
    """The cheap slice the tests recompute: :data:`SLICE` (brick, 64 px, 10–40 steps) for every network.

    It runs in float64. In float32, L-BFGS's line search takes another branch after a change in
    the last bits (another CPU's convolution, or exemplar pixels scaled by 1 + 1e-6·noise), and the same
    slice then ends 13.7 or 17.3 in colourfulness; float64 leaves no such gap between CPUs.
    """
    out = {}
    for m, steps in SLICE["steps"].items():
        net, cfg = build(m, net_seed)
        net = net.double()
        cfg = override(cfg, size=SLICE["size"], steps=steps)
        ex = exemplar(SLICE["texture"], net, SLICE["size"]).double()
        pic, _ = synthesise(m, net, cfg, ex, SLICE["seed"])
        out[m] = _round(describe(pic, to_display(ex, net)))
    return out


def load_results(path: str | Path = RESULT) -> dict:
    """The committed results (default ``data/results/texture_models.json``)."""
    return json.loads(Path(path).read_text())


def table(res: dict) -> str:
    """The comparison as a Markdown table: every texture × model, mean over seeds (line-up: matches/seeds)."""
    seeds = [str(s) for s in res["settings"]["seeds"]]
    head = (
        "| texture | model | colourful. (ex.) | HF share (ex.) | orient. peak (ex.) | orient. dist | "
        "grey W1 | spectrum dist | look dist | line-up | s |"
    )
    lines = [head, "|" + "---|" * 11]
    for t in TEXTURES:
        for m in MODELS:
            r = [res["rows"][m][t][s] for s in seeds]

            def mean(k, r=r):
                return float(np.mean([x[k] for x in r]))

            lines.append(
                f"| {t} | {m} | {mean('colourfulness'):.1f} ({mean('colourfulness_exemplar'):.1f}) | "
                f"{mean('hf_share'):.3f} ({mean('hf_share_exemplar'):.3f}) | "
                f"{mean('orientation_peak'):.2f} ({mean('orientation_peak_exemplar'):.2f}) | "
                f"{mean('orientation_distance'):.2f} | {mean('grey_distance'):.3f} | "
                f"{mean('spectrum_distance'):.2f} | {mean('look_distance'):.2f} | "
                f"{sum(x['lineup_match'] for x in r)}/{len(r)} | {mean('seconds'):.1f} |"
            )
    lines.append("")
    for m, c in res["comparisons"].items():
        if "look_distance" in c:
            lo = c["look_distance"]
            lines.append(
                f"{m} − efficientnet_lite0, look distance: {lo[0]:+.3f} [{lo[1]:+.3f}, {lo[2]:+.3f}]; "
                f"line-up matches {c['lineup_matches']}/{len(TEXTURES) * len(seeds)}"
            )
        else:
            lines.append(f"{m}: line-up matches {c['lineup_matches']}/{len(TEXTURES) * len(seeds)}")
    return "\n".join(lines)


def best(res: dict) -> str:
    """The model whose look distance beats Lite0's by an interval that excludes zero (largest gain),
    else Lite0.
    """
    better = {
        m: c["look_distance"][0]
        for m, c in res["comparisons"].items()
        if "look_distance" in c and c["look_distance"][2] < 0
    }
    return min(better, key=better.get) if better else "efficientnet_lite0"


def summary(res: dict) -> str:
    """Per model: mean look distance, line-up and time; then its difference from Lite0 as a sentence.

    The sentence is :func:`introspect_lab.intervals.compare`'s: it names a winner only when the
    95 % interval of the difference excludes zero (lower look distance is better).
    """
    seeds = [str(s) for s in res["settings"]["seeds"]]
    n = len(TEXTURES) * len(seeds)
    lines = []
    for m in MODELS:
        r = [res["rows"][m][t][s] for t in TEXTURES for s in seeds]
        look_d = float(np.mean([x["look_distance"] for x in r]))
        secs = float(np.mean([x["seconds"] for x in r]))
        c = res["comparisons"][m]
        lines.append(
            f"{m:20s} look distance {look_d:.2f}  line-up {c['lineup_matches']}/{n}  {secs:4.1f} s/texture"
        )
        if "look_distance" in c:
            verdict = compare(m, MODELS[0], tuple(c["look_distance"]), better="lower", digits=3)
            lines.append(f"    look distance: {verdict}")
    return "\n".join(lines)


def grid(pictures: dict, path: str | Path) -> None:
    """Save a PNG: one row per texture, columns exemplar | each model (first seed)."""
    from PIL import Image

    cols = ["exemplar", *MODELS]
    rows = [np.concatenate([pictures[c][t] for c in cols], 1) for t in TEXTURES]
    Image.fromarray((np.concatenate(rows, 0) * 255).round().astype(np.uint8)).save(path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run, write ``data/results/texture_models.json`` and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=DEFAULTS["size"])
    ap.add_argument("--seeds", default=DEFAULTS["seeds"], help="comma-separated synthesis seeds")
    ap.add_argument("--net-seed", type=int, default=DEFAULTS["net_seed"])
    ap.add_argument("--out", default=str(RESULT))
    ap.add_argument("--figure", default=None, help="also save the picture grid (PNG) here")
    ap.add_argument("--slice-only", action="store_true", help="recompute only the stored file's slice")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.slice_only:
        res = load_results(args.out)
        seed = res["settings"]["net_seed"]
        res["slice"] = {
            **SLICE,
            "descriptors": slice_descriptors(seed),
            "features": slice_features(seed),
        }
        res["slice_command"] = (
            "OMP_NUM_THREADS=1 python -m introspect_lab.experiments.texture_models "
            + " ".join(argv if argv is not None else sys.argv[1:])
        )
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    seeds = tuple(int(s) for s in args.seeds.split(","))
    start = time.perf_counter()
    res, pictures = run(args.size, seeds, args.net_seed)
    res = {
        "command": "OMP_NUM_THREADS=1 python -m introspect_lab.experiments.texture_models "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "version": __version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "textures": {t: list(b) if b else None for t, b in TEXTURES.items()},
        **res,
        "slice": {
            **SLICE,
            "descriptors": slice_descriptors(args.net_seed),
            "features": slice_features(args.net_seed),
        },
        "seconds": round(time.perf_counter() - start),
    }
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    if args.figure:
        grid(pictures, args.figure)
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
