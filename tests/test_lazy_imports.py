"""`import introspect_lab` loads only what a first cell needs; heavy dependencies load on first use."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ["torchvision", "torchvision.models", "sklearn", "scipy", "cma", "nbgrader", "ipywidgets"]


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = dict(os.environ, INTROSPECT_LAB_OFFLINE="1", INTROSPECT_LAB_PROGRESS="0")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


def test_import_and_the_bundled_model_load_no_heavy_dependency():
    assert _loaded_after("import introspect_lab") == []
    first_cell = (
        "from introspect_lab import load_image, load_model, predict, sample_image\n"
        "m = load_model('efficientnet_lite0', verbose=False)\n"
        "predict(m, load_image(sample_image('coffee'), m, size=64), k=1)"
    )
    # scikit-image's sample photos bring scipy (skimage.data imports it); nothing else heavy
    assert [m for m in _loaded_after(first_cell) if m != "scipy"] == []
    # the probe sees a heavy import when there is one
    assert _loaded_after("import introspect_lab, ipywidgets") == ["ipywidgets"]


def test_class_names_read_without_torchvision_are_torchvision_s():
    from torchvision.models import SqueezeNet1_1_Weights

    from introspect_lab.info import imagenet_categories

    assert imagenet_categories() == tuple(SqueezeNet1_1_Weights.DEFAULT.meta["categories"])
