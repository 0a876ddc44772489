"""Incremental occlusion (Krypton, Nakandala et al. SIGMOD 2019) gives the plain map, with fewer
multiply-adds.

The registry's architectures are checked in tests/test_all_models.py; here: the bundled model at several
windows and strides (some that do not divide the image, a non-square image), hand-counted multiply-adds,
the receptive-field theory, the warnings for layers without a rule, the approximate threshold, bad input.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from introspect_lab import attribution as A
from introspect_lab import load_image, sample_image
from introspect_lab.attribution.cone import cone_share
from introspect_lab.attribution.incremental import IncrementalForward, IncrementalWarning
from introspect_lab.receptive import receptive_field


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    return float((a - b).abs().max()) <= rel * float(b.abs().max())


@pytest.mark.parametrize(
    ("size", "window", "stride"),
    [((64, 64), 16, 8), ((56, 48), 13, 7), ((48, 48), (9, 20), (9, 11))],
)
def test_bundled_model_same_map(lite0, unchanged, size, window, stride):
    x = load_image(sample_image("coffee"), lite0, size=size)
    check = unchanged(lite0)
    plain = A.occlusion(lite0, x, None, window=window, stride=stride, method="plain", raw=True)
    ours = A.occlusion(lite0, x, None, window=window, stride=stride, method="incremental", raw=True)
    check()
    assert ours.shape == plain.shape
    assert close(ours, plain), float((ours - plain).abs().max())


def test_batch_of_images_baseline_and_no_fold(lite0):
    x = torch.cat([load_image(sample_image(n), lite0, size=48) for n in ("chelsea", "rocket")])
    kw = dict(window=12, stride=10, baseline=-1.0)
    plain = A.occlusion(lite0, x, [1, "tabby"], method="plain", **kw)
    ours = A.occlusion(lite0, x, [1, "tabby"], method="incremental", batch_size=5, fuse=False, **kw)
    assert close(ours, plain)


def test_hand_counted_multiply_adds():
    """One 3×3 conv (pad 1) on 8×8: a 2×2 change at (3,3) reaches output rows/cols 2..5, a 4×4 box."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    eng = IncrementalForward(net)
    x = torch.randn(1, 3, 8, 8)
    eng.cache(x)
    box = torch.randn(1, 3, 2, 2)
    out = eng(box, [3], [3])
    y = x.clone()
    y[:, :, 3:5, 3:5] = box
    assert torch.allclose(out, net(y), atol=1e-6)
    cost = eng.costs["0"]
    assert (cost.full, cost.done, cost.cone) == (64 * 4 * 3 * 9, 16 * 4 * 3 * 9, 16 * 4 * 3 * 9)
    assert eng.boxes["0"] == (2, 2, 4, 4, 8, 8)


def test_cone_matches_receptive_field_theory(lite0):
    """The boxes the engine recomputes (before equalising a batch) are the receptive-field cones."""
    eng = IncrementalForward(lite0, tail=None)
    x = load_image(sample_image("chelsea"), lite0, size=64)
    A.occlusion(lite0, x, None, window=16, stride=8, method=eng)
    layers = ["stem.conv", "blocks.1.depthwise.conv", "blocks.3.depthwise.conv", "blocks.5.expand.conv"]
    for layer in layers:
        cost = eng.costs[layer]
        assert cost.cone < cost.full
        assert cost.cone / cost.full == pytest.approx(
            cone_share(receptive_field(lite0, layer, 64), 16, 8), rel=1e-9
        ), layer
        assert cost.done >= cost.cone


class _SE(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): a global pool scales the channels."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True)))


@pytest.mark.parametrize("middle", [_SE(8), nn.LocalResponseNorm(3)], ids=["squeeze-excite", "unknown"])
def test_global_or_unknown_layers_are_announced_and_exact(middle):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        middle,
        nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    x = torch.randn(1, 3, 32, 32)
    with pytest.warns(IncrementalWarning, match="recomputed in full"):
        ours = A.occlusion(net, x, 2, window=6, stride=5, method="incremental", fuse=False)
    assert close(ours, A.occlusion(net, x, 2, window=6, stride=5, method="plain", fuse=False))


def test_registry_head_is_not_announced(lite0):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncrementalWarning)
        IncrementalForward(lite0)


def test_approximate_threshold_trades_error_for_work(lite0):
    """Krypton's projective-field threshold: less work, a different map; tau=1 keeps the whole cone
    (exact).
    """
    x = load_image(sample_image("chelsea"), lite0, size=96)
    engines = [
        IncrementalForward(lite0),
        IncrementalForward(lite0, cap=0.4),
        IncrementalForward(lite0, cap=1.0),
    ]
    exact, approx, whole = (
        A.occlusion(lite0, x, None, window=16, stride=16, method=e, raw=True) for e in engines
    )
    done = [sum(c.done for c in e.costs.values()) for e in engines]
    assert done[1] < 0.8 * done[0]
    assert not close(approx, exact, 1e-2), "the threshold drops part of the change"
    assert close(whole, exact)


def test_bad_input(lite0):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="method must be"):
        A.occlusion(lite0, x, 0, method="fast")
    with pytest.raises(ValueError, match="tau"):
        A.occlusion(lite0, x, 0, tau=0.5)

    class Branchy(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)) if x.sum() > 0 else -x.mean((2, 3))

    with pytest.raises(TypeError, match="method='plain'"):
        A.occlusion(Branchy(), x, 0, window=8, method="incremental")
    assert A.occlusion(Branchy(), x, 0, window=8, stride=8).shape == (1, 32, 32)  # auto falls back


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="reads /proc (Linux)")
@pytest.mark.parametrize(("method", "width"), [("plain", 8192), ("incremental", 8192), ("plain", 16384)])
def test_repeated_occlusion_keeps_no_copy_of_the_model(method, width):
    """torch.jit.freeze never frees a frozen copy's weights (pytorch#96726): built once, reused.

    Models whose weights (67 MB, frozen; 134 MB, over ``FREEZE_LIMIT``: a torch.fx copy) sit in one
    cheap linear layer. Freezing on every call (before the fix) grew the process by one or two copies
    of the weights per call; an fx copy not collected at once (a reference cycle) by one.
    """
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, width),
        nn.ReLU(),
        nn.Linear(width, 10),
    ).eval()
    size = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    x = torch.randn(1, 3, 16, 16)
    first = A.occlusion(model, x, 0, window=2, stride=2, method=method)
    before = _rss_mb()
    for _ in range(3):
        again = A.occlusion(model, x, 0, window=2, stride=2, method=method)
    grown = _rss_mb() - before
    assert grown < size / 2, f"{grown:.0f} MB more after 3 calls (the weights are {size:.0f} MB)"
    torch.testing.assert_close(again, first)


def test_changed_weights_are_not_served_from_the_frozen_copy():
    """Weights edited through ``.data`` (no version bump) still invalidate the cached copy."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    x = torch.randn(1, 3, 24, 24)
    A.occlusion(model, x, 1, window=4, stride=4)
    model[0].weight.data.mul_(-2)
    model[1].running_mean.data.add_(1)
    for method in ["plain", "incremental"]:
        fast = A.occlusion(model, x, 1, window=4, stride=4, method=method)
        slow = A.occlusion(model, x, 1, window=4, stride=4, method="plain", fuse=False)
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


def test_occlusion_drops_the_engines_cached_activations(lite0):
    """A user's engine keeps its counters after occlusion, not the last image's activations."""
    x = load_image(sample_image("chelsea"), lite0, size=64)
    engine = IncrementalForward(lite0)
    A.occlusion(lite0, x, "tabby", window=16, stride=16, method=engine)
    assert sum(c.done for c in engine.costs.values()) > 0
    with pytest.raises(RuntimeError, match="cache"):
        engine(torch.zeros(1, 3, 16, 16), [0], [0])
    engine.cache(x)  # refilled on demand
    assert engine(torch.zeros(1, 3, 16, 16), [0], [0]).shape == (1, 1000)


def test_fast_inference_is_the_model_up_to_rounding_and_built_once(lite0):
    from introspect_lab.attribution.compiled import fast_inference

    x = load_image(sample_image("chelsea"), lite0, size=64).expand(3, -1, -1, -1).contiguous()
    x = x.contiguous(memory_format=torch.channels_last)
    net = fast_inference(lite0, x)
    assert isinstance(net, torch.jit.ScriptModule)  # the bundled model freezes
    assert fast_inference(lite0, x) is net  # cached for this model, weights and shape
    with torch.no_grad():
        torch.testing.assert_close(net(x), lite0(x), rtol=1e-4, atol=1e-4)
    big = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 400_000)).eval()  # 307 MB: over FREEZE_LIMIT
    assert fast_inference(big, torch.zeros(2, 3, 8, 8)) is big
