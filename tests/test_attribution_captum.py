"""introspect_lab.attribution against Captum, the oracle, on real and stock models.

Tolerance: ``max |ours − captum| <= REL · max |captum|`` with REL = 1e-4 for
the gradient methods (same arithmetic, only float summation order may
differ) and 1e-3 for occlusion (scores come from a BatchNorm-folded copy of
the model). Captum is a test dependency only.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from introspect_lab import attribution as A
from introspect_lab import load_image, sample_image

captum_attr = pytest.importorskip("captum.attr")

REL = 1e-4
REL_OCCLUSION = 1e-3
SIZE = 64


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, rel: float = REL) -> None:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    theirs = theirs.detach()
    scale = float(theirs.abs().max())
    assert scale > 0, "the reference is all zeros: the comparison would prove nothing"
    err = float((ours - theirs).abs().max())
    assert err <= rel * scale, f"max |diff| {err:.3g} > {rel} * {scale:.3g}"


class Cap6(nn.Module):
    """``min(r, 6)`` written without a ReLU module, so Captum leaves its gradient alone."""

    def forward(self, r):
        return r - torch.relu(r - 6)


def relu_split_copy(model: nn.Module) -> nn.Module:
    """A copy where every ReLU6 is ``nn.ReLU`` followed by ``min(·, 6)``.

    Captum's guided backprop and deconvolution only modify ``nn.ReLU``
    modules (ReLU6 keeps its plain gradient there). On this copy Captum's
    rule is ours: guided passes ``y'`` where ``0 < z ≤ 6`` and ``y' > 0``
    (ours: ``0 < z < 6``; a pre-activation of exactly 6.0 does not occur).
    """
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(module, name, nn.Sequential(nn.ReLU(), Cap6()))
    return out


@pytest.fixture(scope="module")
def batch(lite0):
    return torch.cat([load_image(sample_image(n), lite0, size=SIZE) for n in ("chelsea", "coffee")])


@pytest.fixture(scope="module")
def lite0_split(lite0):
    return relu_split_copy(lite0)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.fixture(scope="module")
def rbatch():
    torch.manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE).clamp(-2, 2)


TARGETS = [282, 967]


def test_split_copy_computes_the_same_function(lite0, lite0_split, batch):
    with torch.no_grad():
        assert torch.allclose(lite0(batch), lite0_split(batch), atol=1e-5)


def test_saliency_matches_captum(lite0, batch, resnet, rbatch, unchanged):
    for model, x in ((lite0, batch), (resnet, rbatch)):
        check = unchanged(model)
        ours = A.saliency(model, x, TARGETS, reduce="none")
        theirs = captum_attr.Saliency(model).attribute(x, target=TARGETS, abs=True)
        check()
        assert_close(ours, theirs)
        assert_close(A.saliency(model, x, TARGETS), theirs.amax(1))


def test_guided_backprop_matches_captum_on_relu6_model(lite0, lite0_split, batch, unchanged):
    check = unchanged(lite0)
    ours = A.guided_backprop(lite0, batch, TARGETS)
    check()
    assert_close(ours, captum_attr.GuidedBackprop(lite0_split).attribute(batch, target=TARGETS))
    # Captum on the unmodified model ignores ReLU6: that is the plain gradient, not ours.
    plain = captum_attr.GuidedBackprop(lite0).attribute(batch, target=TARGETS)
    assert (ours - plain).abs().max() > 0.1 * plain.abs().max()


def test_deconvnet_matches_captum_on_relu6_model(lite0, lite0_split, batch):
    ours = A.deconvnet(lite0, batch, TARGETS)
    assert_close(ours, captum_attr.Deconvolution(lite0_split).attribute(batch, target=TARGETS))


@pytest.mark.parametrize("method", ["guided", "deconv"])
def test_guided_and_deconv_match_captum_on_stock_inplace_resnet(resnet, rbatch, unchanged, method):
    assert any(getattr(m, "inplace", False) for m in resnet.modules()), "stock resnet18 has in-place ReLUs"
    check = unchanged(resnet)
    fn = A.guided_backprop if method == "guided" else A.deconvnet
    ours = fn(resnet, rbatch, TARGETS)
    check()
    oracle = captum_attr.GuidedBackprop if method == "guided" else captum_attr.Deconvolution
    # Captum's module backward hooks break on in-place ReLUs (Captum #973): give it a copy without them.
    twin = copy.deepcopy(resnet)
    for m in twin.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    assert_close(ours, oracle(twin).attribute(rbatch, target=TARGETS))


def test_guided_backprop_on_stock_alexnet(unchanged):
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).eval()
    x = torch.randn(2, 3, 96, 96).clamp(-2, 2)
    check = unchanged(alex)
    ours = A.guided_backprop(alex, x, [1, 2])
    check()
    twin = copy.deepcopy(alex)
    for m in twin.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    assert_close(ours, captum_attr.GuidedBackprop(twin).attribute(x, target=[1, 2]))


@pytest.mark.parametrize(
    ("which", "layer"),
    [("lite0", "head"), ("lite0", "blocks.10"), ("resnet", "layer4"), ("resnet", "layer3")],
)
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_grad_cam_matches_captum(lite0, batch, resnet, rbatch, which, layer, mode):
    model, x = (lite0, batch) if which == "lite0" else (resnet, rbatch)
    ours = A.grad_cam(model, x, TARGETS, layer=layer, interpolate=mode)
    raw = captum_attr.LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target=TARGETS, relu_attributions=True
    )
    theirs = captum_attr.LayerAttribution.interpolate(raw, x.shape[-2:], interpolate_mode=mode).squeeze(1)
    assert_close(ours, theirs)
    assert_close(A.grad_cam(model, x, TARGETS, layer=layer, raw=True), raw.squeeze(1))


def test_guided_grad_cam_matches_captum(lite0, lite0_split, batch, resnet, rbatch):
    ours = A.guided_grad_cam(lite0, batch, TARGETS, layer="head", interpolate="nearest")
    theirs = captum_attr.GuidedGradCam(lite0_split, lite0_split.head).attribute(batch, target=TARGETS)
    assert_close(ours, theirs)
    twin = copy.deepcopy(resnet)
    for m in twin.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    ours = A.guided_grad_cam(resnet, rbatch, TARGETS, layer="layer4", interpolate="nearest")
    assert_close(ours, captum_attr.GuidedGradCam(twin, twin.layer4).attribute(rbatch, target=TARGETS))


@pytest.mark.parametrize(("window", "stride"), [(16, 8), (12, 12), (20, 6)])
def test_occlusion_matches_captum(lite0, batch, window, stride):
    ours = A.occlusion(lite0, batch, TARGETS, window=window, stride=stride)
    theirs = captum_attr.Occlusion(lite0).attribute(
        batch,
        target=TARGETS,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=0.0,
    )
    assert_close(ours, theirs[:, 0], REL_OCCLUSION)
    assert torch.equal(theirs[:, 0], theirs[:, 2])  # one value for all channels: a [B,H,W] map says it all


def test_occlusion_matches_captum_on_resnet_with_baseline(resnet, rbatch):
    ours = A.occlusion(resnet, rbatch, TARGETS, window=16, stride=8, baseline=-1.0, fuse=False)
    theirs = captum_attr.Occlusion(resnet).attribute(
        rbatch, target=TARGETS, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8), baselines=-1.0
    )
    assert_close(ours, theirs[:, 0], REL_OCCLUSION)


def test_integrated_gradients_matches_captum(lite0, batch, resnet, rbatch):
    # In float64: the two implementations batch the 20 path points differently, and in
    # float32 with one thread that alone moves the sum by ~1e-3 of its maximum.
    for model, x in (
        (copy.deepcopy(lite0).double(), batch.double()),
        (copy.deepcopy(resnet).double(), rbatch.double()),
    ):
        ours = A.integrated_gradients(model, x, TARGETS, n_steps=20, rtol=10.0)
        theirs = captum_attr.IntegratedGradients(model).attribute(x, target=TARGETS, n_steps=20)
        assert_close(ours, theirs)
