"""`import introspect_lab` loads only what a first cell needs; heavy dependencies load on first use."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import introspect_lab
from introspect_lab.lazy import lazy_import

HEAVY = ["torchvision", "torchvision.models", "sklearn", "scipy", "cma", "nbgrader", "ipywidgets"]
PACKAGE = Path(introspect_lab.__file__).parent
# experiments/ (command-line studies behind notebooks 11 and 12) still imports scikit-learn and cma directly
EXEMPT = ("introspect_lab.experiments",)


def _loaded_after(*steps: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """Run ``steps`` one after the other in one fresh interpreter: the heavy modules loaded after each."""
    show = f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"  # a step may print too
    probe = "\n".join(["import sys"] + [f"{step}\n{show}" for step in steps])
    env = dict(os.environ, INTROSPECT_LAB_OFFLINE="1", INTROSPECT_LAB_PROGRESS="0", **(env or {}))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("loaded:")]


def test_import_and_the_bundled_model_load_no_heavy_dependency():
    first_cell = (
        "from introspect_lab import load_image, load_model, predict, sample_image\n"
        "m = load_model('efficientnet_lite0', verbose=False)\n"
        "predict(m, load_image(sample_image('coffee'), m, size=64), k=1)"
    )
    after_import, after_first_cell, after_ipywidgets = _loaded_after(
        "import introspect_lab", first_cell, "import ipywidgets"
    )
    assert after_import == []
    # scikit-image's sample photos bring scipy (skimage.data imports it); nothing else heavy
    assert [m for m in after_first_cell if m != "scipy"] == []
    # the probe sees a heavy import when there is one
    assert "ipywidgets" in after_ipywidgets and "ipywidgets" not in after_first_cell


def test_a_fallback_and_the_blurs_do_not_import_torchvision(tmp_path):
    """Its model zoo costs about 3 s and 170 MB: only building a classic model needs it."""
    fallback = (
        "from introspect_lab import attribution as A, load_image, load_model, models, sample_image\n"
        "from introspect_lab.synthesis import priors\n"
        "m = load_model('alexnet', fallback='efficientnet_lite0', verbose=False)\n"
        "assert m.lab_info.name == 'efficientnet_lite0' and not models.is_cached('vgg16')\n"
        "x = load_image(sample_image('coffee'), m, size=48)\n"
        "A.deletion_curve(m, x, None, x[:, 0], n_steps=1, baseline='blur')\n"
        "priors.GaussianBlur(every=1).after_step(x, None, 0)"
    )
    build = "from introspect_lab import load_model\nload_model('alexnet', pretrained=False, verbose=False)"
    env = {"TORCH_HOME": str(tmp_path)}  # nothing cached
    loaded = _loaded_after(fallback, build, env=env)
    assert [m for m in loaded[0] if m != "scipy"] == []
    assert "torchvision.models" in loaded[1]  # the probe sees it when a classic model is built


def test_class_names_read_without_torchvision_are_torchvision_s():
    from torchvision.models import SqueezeNet1_1_Weights

    from introspect_lab.info import imagenet_categories

    assert imagenet_categories() == tuple(SqueezeNet1_1_Weights.DEFAULT.meta["categories"])


def _modules() -> list[str]:
    names = pkgutil.walk_packages([str(PACKAGE)], "introspect_lab.")
    return sorted(m.name for m in names if not m.name.startswith(EXEMPT) and not m.name.endswith("__main__"))


def test_every_module_imports_without_a_heavy_dependency():
    mods = _modules()
    assert (
        len(mods) > 50
        and "introspect_lab.widgets" in mods
        and "introspect_lab.attribution.evaluation" in mods
    )
    assert _loaded_after(
        "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in mods)
    ) == [[]]


def test_a_lazy_module_loads_at_first_use():
    steps = (
        "import introspect_lab.attribution.base as b, introspect_lab.widgets as w",
        "b.ndimage.label",
        "w.widgets.Image",
    )
    assert _loaded_after(*steps) == [[], ["scipy"], ["scipy", "ipywidgets"]]


def test_a_missing_lazy_module_names_the_fix_at_first_use():
    mod = lazy_import("introspect_lab_no_such_module", hint="Install it: `pip install no-such`.")
    assert mod.__name__ == "introspect_lab_no_such_module"  # no import yet
    with pytest.raises(ImportError, match="pip install no-such"):
        _ = mod.anything
    with pytest.raises(ModuleNotFoundError, match="introspect_lab_no_such_module"):
        _ = lazy_import("introspect_lab_no_such_module").anything


def test_heavy_dependencies_are_imported_only_through_lazy_import():
    """One pattern in one place: no ``import scipy`` / ``from sklearn … import`` at any level of the
    package.
    """
    heavy = {h.split(".")[0] for h in HEAVY} | {"skimage"}  # scikit-image imports scipy
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        if rel.startswith(EXEMPT):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [f"{rel}:{node.lineno} {n}" for n in names if n.split(".")[0] in heavy]
    assert not found, f"import these with introspect_lab.lazy.lazy_import instead: {found}"
