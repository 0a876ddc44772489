"""Feed-forward texture and style networks: one forward pass instead of hundreds of optimisation steps.

Seed 004, "Fast Neural Style Transfer" and "One Network, Many Styles":

* Johnson, Alahi & Fei-Fei (2016), "Perceptual Losses for Real-Time Style
  Transfer": train a generator ``f_W`` so that ``f_W(content)`` has the
  content features of its input and the Gram statistics of the style,
  ``min_W E_x [ α L_content(f_W(x), x) + Σ_l w_l E_l(f_W(x), style) ]``;
* Ulyanov, Lebedev, Vedaldi & Lempitsky (2016), "Texture Networks": the same
  with noise as input and the Gram loss alone gives a texture generator;
* Ulyanov, Vedaldi & Lempitsky (2016), "Instance Normalization": replacing
  batch normalisation by instance normalisation,
  ``IN(x)_bc = γ_c (x_bc − μ_bc) / σ_bc + β_c`` (statistics per image *and*
  channel), improves results;
* Dumoulin, Shlens & Kudlur (2017), "A Learned Representation for Artistic
  Style": conditional instance normalisation keeps one ``(γ_s, β_s)`` per
  style ``s``; everything else is shared, and mixing two styles' ``γ, β``
  interpolates between them.

The loss is notebook 08's: the Gram loss ``E_l`` (one formula,
:func:`introspect_lab.synthesis.objectives.gram_error`), the pixels' colour statistics and
TV, with the layers and weights of the loss network's style settings
(``models.model_settings(model).style``), on a frozen loss network (any registry
model), plus a content loss for style networks.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..config import show_progress
from ..hooks import capture, frozen
from ..images import denormalize, load_image, normalize, sample_image, sample_names
from ..lazy import lazy_import
from ..models import load_model, model_info, model_settings
from ..settings import StyleSettings
from ..synthesis.objectives import colour_statistics, gram, gram_error
from ..synthesis.priors import total_variation
from .stylenet import StyleNet

stats = lazy_import("scipy.stats")

__all__ = [
    "TrainedNet",
    "StyleTarget",
    "style_target",
    "style_loss",
    "range_penalty",
    "train_texture_net",
    "train_style_net",
    "stylize",
    "save_nets",
    "load_nets",
    "sample01",
    "content_images",
    "held_out_losses",
    "norm_study",
    "TRAIN",
    "NOISE_SEEDS",
]


@dataclass
class TrainedNet:
    """A trained :class:`StyleNet` with its loss history and training time."""

    net: StyleNet
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    layers: list[str] = field(default_factory=list)


#: Weight of :func:`range_penalty` in training.
RANGE_WEIGHT = 1e4


@dataclass(frozen=True)
class StyleTarget:
    """A style image's statistics: Gram matrices ``A^l`` per style layer, pixel colour mean and covariance."""

    grams: dict[str, torch.Tensor]
    colour_mean: torch.Tensor
    colour_cov: torch.Tensor


def _features(model: nn.Module, images01: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Loss-network features of [0, 1] images, truncated after the deepest layer, in the graph."""
    with capture(model, list(layers), detach=False, stop=True) as cap:
        cap.run(normalize(images01, model))
        return {n: cap.activations[n] for n in layers}


def style_target(model: nn.Module, style01: torch.Tensor, cfg: StyleSettings | None = None) -> StyleTarget:
    """The statistics a result must match (no gradient; the model is left unchanged)."""
    cfg = cfg or model_settings(model).style
    style01 = _check_image01(style01, "style01")
    with frozen(model), torch.no_grad():
        feats = _features(model, style01, cfg.style_layers)
        mean, cov = colour_statistics(normalize(style01, model))
    return StyleTarget({n: gram(f) for n, f in feats.items()}, mean, cov)


def _style_terms(model, images01, target: StyleTarget, cfg: StyleSettings, feats=None) -> torch.Tensor:
    """Per image ``Σ_l w_l E_l + λ_c (‖μ − μ̂‖² + ‖Σ − Σ̂‖²)``: notebook 08's texture loss without TV,
    ``[B]``.
    """
    feats = feats if feats is not None else _features(model, images01, cfg.style_layers)
    total = sum(
        w * gram_error(feats[n], target.grams[n]) for n, w in zip(cfg.style_layers, cfg.style_weights)
    )
    if cfg.colour_weight:
        mean, cov = colour_statistics(normalize(images01, model))
        colour = (mean - target.colour_mean).pow(2).sum(1) + (cov - target.colour_cov).pow(2).sum((1, 2))
        total = total + cfg.colour_weight * colour
    return total


def style_loss(
    model: nn.Module, images01: torch.Tensor, target: StyleTarget, cfg: StyleSettings | None = None
) -> torch.Tensor:
    """Each image's texture loss against ``target`` (``[B]``; no gradient, model unchanged), for reports.

    The Gram loss ``E_l`` is :func:`introspect_lab.synthesis.objectives.gram_error` and the colour term
    :func:`introspect_lab.synthesis.objectives.colour_statistics`: the same loss as
    :func:`introspect_lab.texture.gatys.texture_synthesis`, without its TV term.
    """
    cfg = cfg or model_settings(model).style
    images01 = _check_image01(images01, "images01")
    with frozen(model), torch.no_grad():
        return _style_terms(model, images01, target, cfg)


def _tv(model: nn.Module, images01: torch.Tensor) -> torch.Tensor:
    """TV^2 of the normalised images, per image on average (as texture synthesis weighs it)."""
    return total_variation(normalize(images01, model), 2.0) / images01.shape[0]


def range_penalty(images: torch.Tensor) -> torch.Tensor:
    """``mean(relu(x − 1)² + relu(−x)²)`` per image: how far pixels stray outside [0, 1] (``[B]``)."""
    return (F.relu(images - 1).pow(2) + F.relu(-images).pow(2)).mean(dim=(1, 2, 3))


def _check_image01(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{name}: expected [B,3,H,W] (or [3,H,W]) images in [0, 1].")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values; pass finite images in [0, 1].")
    return x.unsqueeze(0) if x.dim() == 3 else x


def train_texture_net(
    model: nn.Module,
    texture01: torch.Tensor,
    *,
    cfg: StyleSettings | None = None,
    norm: str = "instance",
    size: int = 64,
    batch: int = 4,
    steps: int = 300,
    lr: float = 1e-3,
    width: int = 16,
    seed: int | None = 0,
    progress: bool | None = None,
) -> TrainedNet:
    """Train a texture network (Ulyanov et al. 2016): noise → an image with the texture's statistics.

    Minimises ``E_z [Σ_l w_l E_l + λ_c L_colour + λ_TV R_{V²}](f_W(z))`` over fresh
    uniform noise batches ``z`` with Adam: notebook 08's texture loss, with the
    layers and weights of ``cfg`` (default: the model's style settings). The
    loss network is frozen and left unchanged.
    """
    cfg = cfg or model_settings(model).style
    target = style_target(model, texture01, cfg)
    g = _seeded(seed)
    net = StyleNet(norm=norm, width=width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    net.train()
    with frozen(model):
        for _ in tqdm(range(steps), desc=f"texture net ({norm} norm)", disable=not _bar(progress)):
            out = net(torch.rand(batch, 3, size, size, generator=g))
            loss = (_style_terms(model, out, target, cfg) + RANGE_WEIGHT * range_penalty(out)).mean()
            loss = loss + cfg.tv_weight * _tv(model, out)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
    net.eval()
    return TrainedNet(net, history, time.perf_counter() - start, list(cfg.style_layers))


def train_style_net(
    model: nn.Module,
    styles01: Sequence[torch.Tensor],
    contents01: torch.Tensor,
    *,
    cfg: StyleSettings | None = None,
    content_weight: float = 100.0,
    norm: str = "instance",
    size: int = 64,
    batch: int = 4,
    steps: int = 300,
    lr: float = 1e-3,
    width: int = 16,
    seed: int | None = 0,
    progress: bool | None = None,
) -> TrainedNet:
    """Train a style network (Johnson et al. 2016; several styles: Dumoulin et al. 2017).

    Each step draws ``batch`` random crops of ``contents01`` and one style
    index per crop, and minimises ``α · mean (F(f_W(x, s)) − F(x))² / 2`` at
    the content layer plus the texture loss against ``style_s`` (as
    :func:`train_texture_net`). With several styles the network uses
    conditional instance norm: one ``(γ, β)`` per style, all else shared.
    """
    cfg = cfg or model_settings(model).style
    contents01 = _check_image01(contents01, "contents01")
    if not styles01:
        raise ValueError("styles01 needs at least one style image.")
    targets = [style_target(model, s, cfg) for s in styles01]
    layers = list(dict.fromkeys([*cfg.style_layers, cfg.content_layer]))
    g = _seeded(seed)
    net = StyleNet(norm=norm, n_styles=len(targets), width=width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    net.train()
    with frozen(model):
        for _ in tqdm(range(steps), desc=f"style net ({len(targets)} style(s))", disable=not _bar(progress)):
            x = _random_crops(contents01, batch, size, g)
            s = torch.randint(len(targets), (batch,), generator=g)
            out = net(x, s)
            feats = _features(model, torch.cat([out, x]), layers)
            gen = {n: f[:batch] for n, f in feats.items()}
            c = 0.5 * F.mse_loss(gen[cfg.content_layer], feats[cfg.content_layer][batch:].detach())
            style_term = torch.cat(
                [
                    _style_terms(
                        model, out[i : i + 1], targets[int(s[i])], cfg, {n: gen[n][i : i + 1] for n in gen}
                    )
                    for i in range(batch)
                ]
            ).mean()
            loss = content_weight * c + style_term + cfg.tv_weight * _tv(model, out)
            loss = loss + RANGE_WEIGHT * range_penalty(out).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
    net.eval()
    return TrainedNet(net, history, time.perf_counter() - start, list(cfg.style_layers))


def _seeded(seed: int | None) -> torch.Generator | None:
    """A generator for the data (noise, crops) and a seeded network initialisation, or ``None``."""
    if seed is None:
        return None
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _random_crops(images: torch.Tensor, n: int, size: int, g: torch.Generator | None) -> torch.Tensor:
    """``n`` random ``size``-px crops (with random horizontal flips) from a batch of images."""
    b, _, h, w = images.shape
    if h < size or w < size:
        images = F.interpolate(
            images, size=(max(h, size), max(w, size)), mode="bilinear", align_corners=False
        )
        b, _, h, w = images.shape
    out = []
    for _ in range(n):
        k = int(torch.randint(b, (1,), generator=g))
        i = int(torch.randint(h - size + 1, (1,), generator=g))
        j = int(torch.randint(w - size + 1, (1,), generator=g))
        crop = images[k, :, i : i + size, j : j + size]
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return torch.stack(out)


def stylize(net: StyleNet, content01: torch.Tensor, style: int | torch.Tensor = 0) -> torch.Tensor:
    """One forward pass: ``f_W(content, style)`` in [0, 1] (no gradient; the network is left in eval mode).

    ``style`` is a style index or mixing weights ``[n_styles]`` / ``[B, n_styles]``
    (e.g. ``torch.tensor([0.3, 0.7])`` for 30 % style 0 and 70 % style 1).
    """
    content01 = _check_image01(content01, "content01")
    with torch.no_grad():
        return net.eval()(content01, style).clamp(0, 1)


def _bar(progress: bool | None) -> bool:
    return show_progress() if progress is None else bool(progress)


# ---------------------------------------------------------------------------
# The loss set-up, and trained networks on disk
# ---------------------------------------------------------------------------


def save_nets(path, nets: dict[str, TrainedNet], meta: dict) -> None:
    """Write trained networks (state, architecture, loss history) and ``meta`` to ``path`` atomically."""
    path = Path(path)
    payload = {
        "meta": dict(meta),
        "nets": {
            name: {
                "state": {k: v.half() if v.is_floating_point() else v for k, v in t.net.state_dict().items()},
                "norm": t.net.norm_kind,
                "n_styles": t.net.n_styles,
                "width": t.net.width,
                "n_res": len(t.net.res) // 2,
                "history": [float(h) for h in t.history],
                "seconds": float(t.seconds),
                "layers": list(t.layers),
            }
            for name, t in nets.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_nets(path) -> tuple[dict[str, TrainedNet], dict]:
    """Read networks written by :func:`save_nets`: ``({name: TrainedNet}, meta)``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    nets = {}
    for name, d in payload["nets"].items():
        net = StyleNet(norm=d["norm"], n_styles=d["n_styles"], width=d["width"], n_res=d.get("n_res", 3))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in d["state"].items()})
        nets[name] = TrainedNet(net.eval(), d["history"], d["seconds"], d["layers"])
    return nets, payload["meta"]


#: What the committed networks (``data/weights/fast_style.pt``) were trained on.
TEXTURE, STYLES, HELD_OUT = "brick", ("flower", "gravel"), "chelsea"


def sample01(name: str, model: nn.Module, size: int) -> torch.Tensor:
    """A bundled photo as a ``[1, 3, size, size]`` image in [0, 1] (centre crop)."""
    return denormalize(load_image(sample_image(name), model, size), model).clamp(0, 1)


def content_images(model: nn.Module, size: int = 96) -> torch.Tensor:
    """The style network's training photos: every bundled photo but the held-out one, the texture, the
    styles.
    """
    names = [n for n in sample_names() if n not in (HELD_OUT, TEXTURE, *STYLES)]
    return torch.cat([sample01(n, model, size) for n in names])


#: The committed networks' training settings (the CLI's defaults; ``meta["train"]`` of the weights file).
TRAIN = {
    "size": 64,
    "steps": 1000,
    "batch": 4,
    "lr": 1e-3,
    "width": 16,
    "n_res": 3,
    "seed": 0,
    "content_weight": 100.0,
    "range_weight": RANGE_WEIGHT,
}
#: Held-out noise (generator seeds) on which texture networks are scored; training never draws these.
NOISE_SEEDS = (101, 102, 103)


@torch.no_grad()
def held_out_losses(
    model: nn.Module,
    net: StyleNet,
    target: StyleTarget,
    *,
    size: int,
    noise_seeds: Sequence[int] = NOISE_SEEDS,
    batch: int = 4,
    batch_stats: bool = False,
    cfg: StyleSettings | None = None,
) -> list[float]:
    """Mean texture loss of ``f_W(z)`` on unseen noise batches ``z``, one per noise seed (Ulyanov et
    al. 2016).

    ``batch_stats=True`` runs batch norm with each test batch's own statistics
    (a copy of the network in train mode) instead of the running averages
    of training: the test of the train/test-mismatch hypothesis.
    """
    net = copy.deepcopy(net).train() if batch_stats else net.eval()
    out = []
    for s in noise_seeds:
        z = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(int(s)))
        out.append(float(style_loss(model, net(z).clamp(0, 1), target, cfg).mean()))
    return out


def norm_study(
    model: nn.Module,
    texture01: torch.Tensor,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 150,
    size: int = 64,
    cfg: StyleSettings | None = None,
    progress: bool | None = None,
) -> dict:
    """Batch vs instance norm over several training runs (Ulyanov, Vedaldi & Lempitsky 2016's comparison).

    For each training seed, one texture network per normalisation, each
    scored by :func:`held_out_losses` averaged over :data:`NOISE_SEEDS`;
    the batch-norm network also with test-batch statistics. Returns the
    per-seed lists ``instance``, ``batch``, ``batch_stats`` and the settings.
    """
    cfg = cfg or model_settings(model).style
    target = style_target(model, texture01, cfg)
    res: dict = {"seeds": list(seeds), "steps": steps, "size": size, "noise_seeds": list(NOISE_SEEDS)}
    for key in ("instance", "batch", "batch_stats"):
        res[key] = []
    for seed in seeds:
        for norm in ("instance", "batch"):
            t = train_texture_net(
                model, texture01, cfg=cfg, norm=norm, size=size, steps=steps, seed=seed, progress=progress
            )
            res[norm].append(
                sum(held_out_losses(model, t.net, target, size=size, cfg=cfg)) / len(NOISE_SEEDS)
            )
            if norm == "batch":
                stats_ = held_out_losses(model, t.net, target, size=size, cfg=cfg, batch_stats=True)
                res["batch_stats"].append(sum(stats_) / len(NOISE_SEEDS))
    return res


def main(argv: list[str] | None = None) -> int:
    """Train the notebook's networks and write them with the command that made them (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m introspect_lab.texture.feedforward", description=main.__doc__
    )
    parser.add_argument("--out", default="data/weights/fast_style.pt")
    parser.add_argument("--model", default="efficientnet_lite0", help="the loss network")
    parser.add_argument("--steps", type=int, default=TRAIN["steps"])
    parser.add_argument("--size", type=int, default=TRAIN["size"])
    parser.add_argument(
        "--content-weight", type=float, default=TRAIN["content_weight"], help="α of the style network"
    )
    parser.add_argument(
        "--study-seeds", type=int, default=5, help="training runs per norm in the batch/instance study"
    )
    parser.add_argument("--study-steps", type=int, default=150, help="steps of each study run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model)
    cfg = model_settings(model).style
    train = dict(TRAIN, steps=args.steps, size=args.size, content_weight=args.content_weight)
    texture = sample01(TEXTURE, model, args.size)
    styles = [sample01(s, model, args.size) for s in STYLES]
    common = dict(
        cfg=cfg,
        size=train["size"],
        steps=train["steps"],
        batch=train["batch"],
        lr=train["lr"],
        width=train["width"],
        seed=train["seed"],
    )
    nets = {
        f"texture_{norm}": train_texture_net(model, texture, norm=norm, **common)
        for norm in ("instance", "batch")
    }
    nets["styles"] = train_style_net(
        model, styles, content_images(model), content_weight=args.content_weight, **common
    )
    target = style_target(model, texture, cfg)
    held_out = {k: held_out_losses(model, nets[k].net, target, size=args.size) for k in nets if k != "styles"}
    held_out["texture_batch_stats"] = held_out_losses(
        model, nets["texture_batch"].net, target, size=args.size, batch_stats=True
    )
    study = norm_study(
        model, texture, seeds=range(args.study_seeds), steps=args.study_steps, size=args.size, cfg=cfg
    )
    meta = {
        "command": "python -m introspect_lab.texture.feedforward "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "loss_network": model_info(model).name,
        "texture": TEXTURE,
        "styles": list(STYLES),
        "contents": "every bundled photo except " + ", ".join((HELD_OUT, TEXTURE, *STYLES)),
        "style_settings": repr(cfg),
        "train": train,
        "architecture": "StyleNet: residual blocks conv-norm-ReLU-conv-norm (no ReLU after the second conv)",
        "held_out": {"noise_seeds": list(NOISE_SEEDS), "batch": 4, **held_out},
        "norm_study": study,
        "steps": args.steps,
        "content_weight": args.content_weight,
        "size": args.size,
        "version": __version__,
        "created": time.strftime("%Y-%m-%d"),
    }
    save_nets(args.out, nets, meta)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.seconds:.0f} s" for k, v in nets.items()))
    print("held-out texture loss per noise seed:", held_out)
    print("norm study:", study)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
