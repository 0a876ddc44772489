"""The library's layout: no import cycles, one way to do each thing, registry settings that resolve."""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from introspect_lab import attribution as A
from introspect_lab import load_image, sample_image
from introspect_lab.features import extract_features
from introspect_lab.images import check_batch, gaussian_blur
from introspect_lab.models import MODELS, UnknownNameError, get_layer, load_model, model_settings, predict
from introspect_lab.settings import ClassVisSettings, layer_fields
from introspect_lab.synthesis import deepdream, invert, visualize_class
from introspect_lab.texture.gatys import style_transfer

PACKAGE = Path(__file__).resolve().parents[1] / "introspect_lab"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _own_imports(path: Path):
    """``(target module, node, inside a function?)`` for every import of the package's own modules."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    functions = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
        if n is not f
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (
            node.level or (node.module or "").startswith("introspect_lab")
        ):
            continue
        base = package
        for _ in range(max(node.level - 1, 0)):
            base = base.rsplit(".", 1)[0]
        mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
        subs = [  # ``from . import models`` imports a submodule
            f"{mod}.{alias.name}"
            for alias in node.names
            if PACKAGE.parent.joinpath(*f"{mod}.{alias.name}".split(".")).with_suffix(".py").exists()
        ]
        # ``from . import objectives`` inside a package needs only that submodule (the package is running)
        own_package = mod == package and len(subs) == len(node.names)
        targets = subs if own_package else [mod, *subs]
        for t in targets:
            yield t, node, id(node) in functions


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets in ``graph`` (module → modules it imports)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    return cycles


def test_no_import_cycles():
    graph = {_module_name(p): {t for t, _, _ in _own_imports(p)} for p in MODULES}
    assert "introspect_lab.hooks" in graph["introspect_lab.models"]  # the graph is really read
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for mod in list(graph):
        for t in list(graph[mod]):
            parts = t.split(".")
            parents = {".".join(parts[:i]) for i in range(2, len(parts))}
            graph[mod] |= {q for q in parents if not mod.startswith(q + ".")}  # own package: already running
        graph[mod].discard(mod)
    # the package's own __init__ runs before any submodule, so an import of it is not an edge
    cycles = [c for c in _cycles(graph) if "introspect_lab" not in c]
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_search_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_level_imports_of_own_modules():
    found = [
        f"{p.relative_to(PACKAGE.parent)}:{n.lineno}"
        for p in MODULES
        for _, n, inside in _own_imports(p)
        if inside
    ]
    assert not found, f"imports of the package's own modules inside functions: {sorted(set(found))}"


def _private_imports() -> set[str]:
    """``"module: name"`` for every private name (``_x``, not ``__x__``) imported from the package's own
    modules.
    """
    found = set()
    for p in MODULES:
        for _, node, _ in _own_imports(p):
            for alias in node.names:
                n = alias.name
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                    found.add(f"{_module_name(p)}: {n}")
    return found


#: Private names imported across modules: none, and nothing may join this list.
PRIVATE_IMPORTS_ALLOWED: set[str] = set()


def test_no_private_name_is_imported_across_modules():
    found = _private_imports()
    assert found <= PRIVATE_IMPORTS_ALLOWED, (
        f"private names imported across modules: {sorted(found - PRIVATE_IMPORTS_ALLOWED)}"
    )


def test_modules_stay_readable():
    long = {
        str(p.relative_to(PACKAGE.parent)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 530
    }
    assert not long, f"modules over ~500 lines: {long}"


def test_hooks_are_placed_only_by_hooks():
    places = [str(p.relative_to(PACKAGE.parent)) for p in MODULES if "register_forward_hook" in p.read_text()]
    assert places == [str(Path("introspect_lab/hooks.py"))]


# ---------------------------------------------------------------------------
# Registry settings: every model, every layer name resolves
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registry_layer_exists(name):
    model = load_model(name, pretrained=False, verbose=False)
    s = model_settings(model)
    assert s is model_settings(name) is MODELS[name].settings
    names = layer_fields(s)
    assert {"cam_layer", "feature_layers", "neuron_layers", "style.style_layers", "deepdream.layer"} <= set(
        names
    )
    for field, layers in names.items():
        assert layers, field
        for layer in layers:
            get_layer(model, layer)  # raises UnknownNameError with the close matches


def test_cam_layers_follow_pytorch_grad_cam():
    assert {n: model_settings(n).cam_layer for n in MODELS} == {
        "efficientnet_lite0": "head",
        "squeezenet1_1": "features.12",  # the last Fire module, not the class-score conv classifier.2
        "resnet18": "layer4",
        "alexnet": "features.12",
        "vgg16": "features.30",
        "vgg19": "features.36",
    }


def test_settings_are_frozen_and_user_models_get_derived_ones():
    s = model_settings("efficientnet_lite0")
    with pytest.raises(FrozenInstanceError):
        s.class_vis.l2_weight = 1.0
    assert model_settings(nn.Sequential(nn.Conv2d(3, 4, 3))).cam_layer == "0"  # derived from the structure
    with pytest.raises(UnknownNameError, match="resnet18"):
        model_settings("resnet81")


def test_user_model_runs_with_settings_passed():
    torch.manual_seed(0)
    tiny = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1000)
    )
    res = visualize_class(tiny, 3, settings=ClassVisSettings(size=32, steps=2), progress=False)
    assert res.image.shape == (1, 3, 32, 32) and torch.isfinite(res.image).all()


def test_grad_cam_default_layer_is_the_registry_one():
    sq = load_model("squeezenet1_1", pretrained=False, verbose=False)
    assert A.cam_layer(sq) == "features.12"
    x = torch.randn(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(A.grad_cam(sq, x, 1), A.grad_cam(sq, x, 1, layer="features.12"))


# ---------------------------------------------------------------------------
# One input validator: non-finite pixels are rejected by name
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nan_image(lite0):
    x = load_image(sample_image("chelsea"), lite0, size=64)
    x[0, 1, 5, 7] = float("nan")
    return x


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: A.saliency(m, x, None),
        lambda m, x: A.grad_cam(m, x, None),
        lambda m, x: A.occlusion(m, x, None),
        lambda m, x: A.smoothgrad(m, x, None, n_samples=1),
        lambda m, x: A.integrated_gradients(m, x, None, n_steps=2),
        lambda m, x: predict(m, x),
        lambda m, x: extract_features(m, x, "head"),
        lambda m, x: invert(m, x, "stem", steps=1, progress=False),
        lambda m, x: deepdream(m, x, "stem", steps=1, progress=False),
    ],
    ids=[
        "saliency",
        "grad_cam",
        "occlusion",
        "smoothgrad",
        "integrated_gradients",
        "predict",
        "extract_features",
        "invert",
        "deepdream",
    ],
)
def test_non_finite_pixels_are_rejected_by_name(lite0, nan_image, call, unchanged):
    check = unchanged(lite0)
    with pytest.raises(
        ValueError, match=r"(x|image|images) contains 1 NaN or infinite value.*torch.nan_to_num"
    ):
        call(lite0, nan_image)
    check()


def test_style_transfer_names_the_bad_argument(lite0, nan_image):
    good = load_image(sample_image("brick"), lite0, size=64)
    with pytest.raises(ValueError, match="^style contains"):
        style_transfer(lite0, good, nan_image, steps=1, progress=False)
    with pytest.raises(ValueError, match="^content contains"):
        style_transfer(lite0, nan_image.clone().fill_(math.inf), good, steps=1, progress=False)


def test_check_batch_messages():
    assert check_batch(torch.zeros(3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"photo must have shape \[B,3,H,W\]"):
        check_batch(torch.zeros(1, 3, 8, 8)[0], "photo", single=False)
    with pytest.raises(TypeError, match="load_image"):
        check_batch([1, 2], "photo")
    with pytest.raises(TypeError, match="float"):
        check_batch(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------------------
# SmoothGrad: a wrapper, and independent of the batch position
# ---------------------------------------------------------------------------


def test_smoothgrad_does_not_depend_on_batch_position(lite0):
    cat = load_image(sample_image("chelsea"), lite0, size=48)
    cup = load_image(sample_image("coffee"), lite0, size=48)
    alone = A.smoothgrad(lite0, cat, "tabby", n_samples=3, batch_size=2)
    second = A.smoothgrad(lite0, torch.cat([cup, cat]), ["tabby", "tabby"], n_samples=3, batch_size=3)[1]
    torch.testing.assert_close(second, alone[0], rtol=1e-4, atol=1e-6 * float(alone.abs().max()))
    other_seed = A.smoothgrad(lite0, cat, "tabby", n_samples=3, seed=1)
    assert not torch.allclose(other_seed, alone)


def test_smoothgrad_wraps_any_method(lite0):
    cat = load_image(sample_image("chelsea"), lite0, size=48)
    gb = A.smoothgrad(lite0, cat, "tabby", method=A.guided_backprop, n_samples=2)
    assert gb.shape == cat.shape  # the wrapped method's shape
    exact = A.smoothgrad(lite0, cat, "tabby", method=A.guided_backprop, n_samples=2, noise_level=0.0)
    torch.testing.assert_close(exact, A.guided_backprop(lite0, cat, "tabby"))


def test_reduce_gives_the_other_shape(lite0):
    cat = load_image(sample_image("chelsea"), lite0, size=48)
    full = A.guided_backprop(lite0, cat, "tabby")
    torch.testing.assert_close(A.guided_backprop(lite0, cat, "tabby", reduce="max"), A.to_map(full))
    assert A.gradient(lite0, cat, "tabby", reduce="mean").shape == (1, 48, 48)
    with pytest.raises(ValueError, match="reduce"):
        A.gradient(lite0, cat, "tabby", reduce="sum")


# ---------------------------------------------------------------------------
# Library versions of hand-written pieces
# ---------------------------------------------------------------------------


def _reference_blur(x, sigma):
    """The separable reflect-padded Gaussian the package used to hand-write."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3, 5.0])
def test_blur_is_torchvisions_and_the_hand_written_one(sigma):
    """Written out to spare the lessons torchvision's import; torchvision's function is the oracle."""
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    x = torch.randn(2, 3, 40, 33, generator=torch.Generator().manual_seed(0))
    k = 2 * math.ceil(3 * sigma) + 1
    torch.testing.assert_close(
        gaussian_blur(x, sigma), tv_blur(x, [k, k], [sigma, sigma]), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(gaussian_blur(x, sigma), _reference_blur(x, sigma), atol=1e-5, rtol=1e-5)
    assert gaussian_blur(x.double(), sigma).dtype == torch.float64
    assert gaussian_blur(torch.randn(1, 3, 4, 4), 2.0).shape == (1, 3, 4, 4)  # smaller than the kernel
    assert gaussian_blur(x, 0) is x


def test_spearman_is_scipys_with_ties():
    a = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0])
    b = torch.tensor([2.0, 1.0, 4.0, 4.0, 9.0])
    # by hand: ranks a = 1, 2.5, 2.5, 4, 5; b = 2, 1, 3.5, 3.5, 5
    ra, rb = torch.tensor([1, 2.5, 2.5, 4, 5]), torch.tensor([2, 1, 3.5, 3.5, 5])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    assert A.spearman(a, b) == pytest.approx(float((ra * rb).sum() / (ra.norm() * rb.norm())))
    assert A.spearman(a, torch.ones(5)) == 0.0
