"""Style transfer on the bundled EfficientNet-Lite0 against VGG-19 with random weights, on three photos.

    OMP_NUM_THREADS=1 python bench/style_networks.py

Notebook 08's style transfer (the flower crop as the style, 128 px, the registry's style settings) on
chelsea, coffee and rocket, with Lite0 and with ``texture.networks.vgg19_random`` at Gatys et al.'s
layers (content ``relu4_2``, style ``relu1_1 … relu5_1``) and otherwise the same settings (not tuned for
VGG). Each result is judged by descriptors no loss uses (``introspect_lab.texture.look``): how far its
colourfulness moved from the photo's to the style's, how many of the photo's edges it kept, and its
look distance to the style image. VGG minus Lite0 per descriptor, paired bootstrap over the three photos.
The pictures go to ``bench/results/style_networks.png``. Takes about 5 minutes on one core.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from introspect_lab import load_image, load_model, sample_image, to_display  # noqa: E402
from introspect_lab.intervals import paired_difference  # noqa: E402
from introspect_lab.models import model_settings  # noqa: E402
from introspect_lab.settings import override  # noqa: E402
from introspect_lab.texture import look  # noqa: E402
from introspect_lab.texture import networks as N  # noqa: E402
from introspect_lab.texture.gatys import style_transfer  # noqa: E402

FIGURE = Path(__file__).parent / "results" / "style_networks.png"
PHOTOS = ("chelsea", "coffee", "rocket")
DESCRIPTORS = ("colour share", "edges kept", "look distance to style")


def judge(net, content, style, result) -> tuple[float, float, float]:
    """The three descriptors of one styled photo (none is used by the loss)."""
    pc, ps, po = (to_display(x, net) for x in (content, style, result))
    return look.colour_share(po, pc, ps), look.edge_correlation(po, pc), look.look_distance(po, ps)


def main() -> int:
    """Run both networks on the three photos; print each result and the paired differences."""
    torch.set_num_threads(1)
    lite = load_model("efficientnet_lite0", verbose=False)
    vgg = N.vgg19_random(0)
    cfg = model_settings(lite).style
    nets = {
        "efficientnet_lite0": (lite, cfg),
        "vgg19_random": (
            vgg,
            override(cfg, content_layer="relu4_2", style_layers=N.VGG_GRAM_LAYERS, style_weights=(1.0,) * 5),
        ),
    }
    style_photo = sample_image("flower").crop((100, 100, 400, 400))
    scores = {name: [] for name in nets}
    rows = []
    for photo in PHOTOS:
        row = []
        for name, (net, settings) in nets.items():
            content, style = load_image(sample_image(photo), net, 128), load_image(style_photo, net, 128)
            start = time.process_time()
            result = style_transfer(net, content, style, settings, seed=0, progress=False).image
            seconds = time.process_time() - start
            scores[name].append(judge(net, content, style, result))
            share, edges, dist = scores[name][-1]
            print(
                f"{photo:8s} {name:19s} colour share {share:5.2f}  edges kept {edges:5.2f}  "
                f"look distance to style {dist:5.2f}  {seconds:5.1f} CPU s",
                flush=True,
            )
            row += ([to_display(content, net)] if not row else []) + [to_display(result, net)]
        rows.append(np.concatenate(row, 1))
    for i, key in enumerate(DESCRIPTORS):
        d = paired_difference(
            [s[i] for s in scores["vgg19_random"]],
            [s[i] for s in scores["efficientnet_lite0"]],
            ("vgg19_random", "efficientnet_lite0"),
            unit="3 photos",
        )
        print(f"{key}: vgg19_random − efficientnet_lite0 = {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.concatenate(rows, 0) * 255).astype(np.uint8)).save(FIGURE)
    print(f"pictures (photo, Lite0, VGG-19 random): {FIGURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
