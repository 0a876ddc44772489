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
(``models.settings(model).style``), on a frozen loss network (any registry
model), plus a content loss for style networks.
"""

from __future__ import annotations

import argparse
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
from ..models import load_model, model_info, settings
from ..settings import StyleSettings
from ..synthesis.objectives import colour_statistics, gram, gram_error
from ..synthesis.priors import total_variation

__all__ = [
    "ConditionalInstanceNorm2d",
    "StyleNet",
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
]


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one learned scale and shift per style (Dumoulin et al. 2017).

    ``y = γ_s ⊙ (x − μ(x)) / σ(x) + β_s``, with ``μ, σ`` per image and channel.
    ``style`` is a style index (int or ``[B]`` long tensor) or mixing weights
    ``[B, n_styles]`` (rows summing to 1), which mix the ``γ, β`` linearly.
    With ``n_styles=1`` it is plain affine instance norm (Ulyanov et al. 2016).
    """

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style: int | torch.Tensor = 0) -> torch.Tensor:
        mix = _style_weights(style, x.shape[0], self.n_styles).to(x)
        gamma, beta = mix @ self.gamma, mix @ self.beta
        x = F.instance_norm(x, eps=self.eps)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


def _style_weights(style: int | torch.Tensor, batch: int, n_styles: int) -> torch.Tensor:
    """A style index, a batch of indices, or mixing weights, as ``[B, n_styles]`` weights."""
    if isinstance(style, int):
        style = torch.full((batch,), style, dtype=torch.long)
    if not isinstance(style, torch.Tensor):
        raise TypeError(f"style must be an int, a [B] index tensor or [B, {n_styles}] weights.")
    if style.dtype in (torch.long, torch.int32, torch.int64):
        if style.dim() == 0:
            style = style.expand(batch)
        if ((style < 0) | (style >= n_styles)).any():
            raise ValueError(f"style index out of range: this network has styles 0..{n_styles - 1}.")
        return F.one_hot(style, n_styles).float()
    weights = style.float()
    if weights.dim() == 1:
        weights = weights.expand(batch, -1)
    if weights.shape != (batch, n_styles):
        raise ValueError(f"style weights must have shape [{batch}, {n_styles}], got {tuple(weights.shape)}.")
    return weights


class _ConvBlock(nn.Module):
    """Reflection-padded conv → norm → ReLU (optionally upsampling first, as Johnson et al.'s decoder)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, norm: str, n_styles: int, up: bool = False):
        super().__init__()
        self.up = up
        self.conv = nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))
        self.norm = nn.BatchNorm2d(cout) if norm == "batch" else ConditionalInstanceNorm2d(cout, n_styles)

    def forward(self, x: torch.Tensor, style) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(x)
        x = self.norm(x) if isinstance(self.norm, nn.BatchNorm2d) else self.norm(x, style)
        return F.relu(x)


class StyleNet(nn.Module):
    """A small image-to-image generator after Johnson et al. (2016), scaled for one CPU core.

    conv 9×9 → two stride-2 convs → ``n_res`` residual blocks → two ×2
    upsampling convs → conv 9×9, plus 0.5: an image around mid-grey. The
    output is not squashed (a sigmoid saturates into flat blobs that no
    gradient can repair); training adds :func:`range_penalty` to keep it in
    [0, 1] and :func:`stylize` clamps. ``norm`` is ``"instance"`` (conditional instance norm with
    ``n_styles`` styles) or ``"batch"`` (batch norm, one style), the choice the
    lecture compares. Input: a content image in [0, 1] (style networks) or
    noise (texture networks).
    """

    def __init__(self, norm: str = "instance", n_styles: int = 1, width: int = 16, n_res: int = 3) -> None:
        super().__init__()
        if norm not in ("instance", "batch"):
            raise ValueError(f"norm must be 'instance' or 'batch', got {norm!r}.")
        if norm == "batch" and n_styles != 1:
            raise ValueError("Several styles need norm='instance' (conditional instance normalisation).")
        self.norm_kind, self.n_styles, self.width = norm, n_styles, width
        w = width
        self.down = nn.ModuleList(
            [
                _ConvBlock(3, w, 9, 1, norm, n_styles),
                _ConvBlock(w, 2 * w, 3, 2, norm, n_styles),
                _ConvBlock(2 * w, 4 * w, 3, 2, norm, n_styles),
            ]
        )
        self.res = nn.ModuleList([_ConvBlock(4 * w, 4 * w, 3, 1, norm, n_styles) for _ in range(2 * n_res)])
        self.up = nn.ModuleList(
            [
                _ConvBlock(4 * w, 2 * w, 3, 1, norm, n_styles, up=True),
                _ConvBlock(2 * w, w, 3, 1, norm, n_styles, up=True),
            ]
        )
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, x: torch.Tensor, style: int | torch.Tensor = 0) -> torch.Tensor:
        for block in self.down:
            x = block(x, style)
        for i in range(0, len(self.res), 2):
            x = x + self.res[i + 1](self.res[i](x, style), style)
        for block in self.up:
            x = block(x, style)
        return 0.5 + self.out(x)


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
    cfg = cfg or settings(model).style
    style01 = _check_image01(style01, "style01")
    with frozen(model), torch.no_grad():
        feats = _features(model, style01, cfg.style_layers)
        mean, cov = colour_statistics(normalize(style01, model))
    return StyleTarget({n: gram(f) for n, f in feats.items()}, mean, cov)


def _style_terms(model, images01, target: StyleTarget, cfg: StyleSettings, feats=None) -> torch.Tensor:
    """Per image ``Σ_l w_l E_l + λ_c (‖μ − μ̂‖² + ‖Σ − Σ̂‖²)``: notebook 08's texture loss without TV (``[B]``)."""
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
    cfg = cfg or settings(model).style
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
    cfg = cfg or settings(model).style
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
    content_weight: float = 200.0,
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
    cfg = cfg or settings(model).style
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
                [_style_terms(model, out[i : i + 1], targets[int(s[i])], cfg, {n: gen[n][i : i + 1] for n in gen})
                 for i in range(batch)]
            ).mean()  # fmt: skip
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
        net = StyleNet(norm=d["norm"], n_styles=d["n_styles"], width=d["width"])
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in d["state"].items()})
        nets[name] = TrainedNet(net.eval(), d["history"], d["seconds"], d["layers"])
    return nets, payload["meta"]


#: What the committed networks (``data/weights/fast_style.pt``) were trained on.
TEXTURE, STYLES, HELD_OUT = "brick", ("flower", "gravel"), "chelsea"


def sample01(name: str, model: nn.Module, size: int) -> torch.Tensor:
    """A bundled photo as a ``[1, 3, size, size]`` image in [0, 1] (centre crop)."""
    return denormalize(load_image(sample_image(name), model, size), model).clamp(0, 1)


def content_images(model: nn.Module, size: int = 96) -> torch.Tensor:
    """The style network's training photos: every bundled photo except the held-out one, the texture and the styles."""
    names = [n for n in sample_names() if n not in (HELD_OUT, TEXTURE, *STYLES)]
    return torch.cat([sample01(n, model, size) for n in names])


def main(argv: list[str] | None = None) -> int:
    """Train the notebook's networks and write them with the command that made them (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m introspect_lab.texture.feedforward", description=main.__doc__
    )
    parser.add_argument("--out", default="data/weights/fast_style.pt")
    parser.add_argument("--model", default="efficientnet_lite0", help="the loss network")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--content-weight", type=float, default=200.0, help="α of the style network")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model)
    cfg = settings(model).style
    texture = sample01(TEXTURE, model, args.size)
    styles = [sample01(s, model, args.size) for s in STYLES]
    common = dict(cfg=cfg, size=args.size, steps=args.steps, seed=0)
    nets = {
        f"texture_{norm}": train_texture_net(model, texture, norm=norm, **common)
        for norm in ("instance", "batch")
    }
    nets["styles"] = train_style_net(
        model, styles, content_images(model), content_weight=args.content_weight, **common
    )
    meta = {
        "command": "python -m introspect_lab.texture.feedforward "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "loss_network": model_info(model).name,
        "texture": TEXTURE,
        "styles": list(STYLES),
        "contents": "every bundled photo except " + ", ".join((HELD_OUT, TEXTURE, *STYLES)),
        "style_settings": repr(cfg),
        "steps": args.steps,
        "content_weight": args.content_weight,
        "size": args.size,
        "version": __version__,
        "created": time.strftime("%Y-%m-%d"),
    }
    save_nets(args.out, nets, meta)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.seconds:.0f} s" for k, v in nets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
