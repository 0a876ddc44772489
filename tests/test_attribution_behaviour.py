"""Batches, cleanup after errors, memory, and clear messages for bad input."""

from __future__ import annotations

import gc
import warnings

import psutil
import pytest
import torch
import torchvision
from torch import nn

from introspect_lab import attribution as A
from introspect_lab import load_image, normalize, sample_image
from introspect_lab.hooks import count_hooks
from introspect_lab.models import UnknownNameError

SIZE = 64


@pytest.fixture(scope="module")
def batch(lite0):
    return torch.cat([load_image(sample_image(n), lite0, size=SIZE) for n in ("chelsea", "coffee", "rocket")])


METHODS = {
    "saliency": lambda m, x, t: A.saliency(m, x, t),
    "guided_backprop": lambda m, x, t: A.guided_backprop(m, x, t),
    "deconvnet": lambda m, x, t: A.deconvnet(m, x, t),
    "grad_cam": lambda m, x, t: A.grad_cam(m, x, t, layer="blocks.12"),
    "cam": lambda m, x, t: A.cam(m, x, t),
    "guided_grad_cam": lambda m, x, t: A.guided_grad_cam(m, x, t),
    "occlusion": lambda m, x, t: A.occlusion(m, x, t, window=16, stride=16, fuse=False),
    "integrated_gradients": lambda m, x, t: A.integrated_gradients(m, x, t, n_steps=4, rtol=10),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_batch_equals_one_by_one(lite0, batch, unchanged, name):
    fn = METHODS[name]
    targets = ["tabby", 967, "missile"]
    check = unchanged(lite0)
    together = fn(lite0, batch, targets)
    check()
    alone = torch.cat([fn(lite0, batch[i : i + 1], targets[i]) for i in range(len(targets))])
    assert together.shape[0] == 3
    scale = float(alone.abs().max())
    assert scale > 0
    assert float((together - alone).abs().max()) <= 1e-4 * scale


def test_smoothgrad_batch_and_noise(lite0, batch):
    one = A.smoothgrad(lite0, batch[:1], "tabby", n_samples=4, batch_size=3)
    assert one.shape == (1, SIZE, SIZE)
    assert torch.equal(one, A.smoothgrad(lite0, batch[:1], "tabby", n_samples=4, batch_size=3))  # seeded
    plain = A.saliency(lite0, batch[:1], "tabby")
    assert not torch.allclose(one, plain)  # the noise does something
    assert A.spearman(one, plain) > 0.3  # and it is still the same kind of map
    no_noise = A.smoothgrad(lite0, batch[:1], "tabby", n_samples=2, noise_level=0.0)
    assert torch.allclose(no_noise, plain, atol=1e-6 * float(plain.max()))


def test_none_target_is_the_top1(lite0, batch):
    top1 = lite0(batch).argmax(1).tolist()
    assert torch.equal(A.saliency(lite0, batch, None), A.saliency(lite0, batch, top1))


def test_pixel_methods_shapes(lite0, batch):
    for fn in (A.guided_backprop, A.deconvnet, A.guided_grad_cam):
        assert fn(lite0, batch, 1).shape == batch.shape
    for fn in (A.saliency, A.cam, A.grad_cam):
        assert fn(lite0, batch, 1).shape == (3, SIZE, SIZE)
    assert A.grad_cam(lite0, batch, 1, raw=True).shape == (3, 2, 2)
    assert A.occlusion(lite0, batch[:1], 1, window=32, stride=16, raw=True, fuse=False).shape == (1, 3, 3)


def test_neuron_guided_backprop_is_local(lite0, batch):
    """One value of a conv feature map only sees its receptive field."""
    g = A.guided_backprop(lite0, batch[:1], layer="blocks.3", neuron=(5, 1, 1))  # blocks.3: 8×8 at 64 px
    support = g.abs().sum((0, 1)) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    assert support.any()
    assert int(rows.max()) - int(rows.min()) < SIZE - 8 or int(cols.max()) - int(cols.min()) < SIZE - 8
    per_channel = A.guided_backprop(lite0, batch, layer="blocks.3", neuron=5)
    assert per_channel.shape == batch.shape


def test_stock_model_left_exactly_as_it_was(unchanged):
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None).eval()
    x = normalize(torch.rand(2, 3, SIZE, SIZE))
    check = unchanged(model)
    A.guided_backprop(model, x, [1, 2])
    A.deconvnet(model, x, 3)
    A.grad_cam(model, x, 3)
    A.cam(model, x, 3)  # SqueezeNet: the scores are the spatial mean of a class map
    check()


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", ["saliency", "guided_backprop", "deconvnet", "grad_cam", "cam", "occlusion"])
def test_hooks_and_flags_restored_after_an_exception(unchanged, name):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    model.layer4.add_module("2", Exploding())
    x = normalize(torch.rand(1, 3, SIZE, SIZE))
    check = unchanged(model)
    with pytest.raises(RuntimeError, match="boom"):
        METHODS[name](model, x, 0) if name != "grad_cam" else A.grad_cam(model, x, 0, layer="layer3")
    check()
    assert count_hooks(model) == 0


def test_hooks_removed_after_a_bad_target(lite0, batch, unchanged):
    check = unchanged(lite0)
    for fn in (A.saliency, A.guided_backprop, A.grad_cam, A.cam):
        with pytest.raises(ValueError, match="out of range"):
            fn(lite0, batch[:1], 1000)
    check()


def test_ram_flat_over_100_calls(lite0):
    x = load_image(sample_image("chelsea"), lite0, size=32)
    proc = psutil.Process()

    def calls(n):
        for _ in range(n):
            A.guided_backprop(lite0, x, 281)
            A.grad_cam(lite0, x, 281, layer="head")

    calls(10)
    gc.collect()
    before = proc.memory_info().rss
    calls(100)
    gc.collect()
    growth = (proc.memory_info().rss - before) / 2**20
    assert count_hooks(lite0) == 0
    assert growth < 60, f"RSS grew by {growth:.0f} MB over 100 calls"


def test_bad_target_messages(lite0, batch):
    with pytest.raises(ValueError, match=r"out of range.*0\.\.999"):
        A.saliency(lite0, batch[:1], 1000)
    with pytest.raises(UnknownNameError, match="tabby"):
        A.grad_cam(lite0, batch[:1], "tabbby")
    with pytest.raises(ValueError, match="one per image"):
        A.saliency(lite0, batch, [1, 2])
    tiny = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()
    x = normalize(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"out of range.*0\.\.2"):
        A.guided_backprop(tiny, x, 5)
    with pytest.raises(ValueError, match="no class names"):
        A.saliency(tiny, x, "tabby")


def test_unknown_layer_lists_close_names(lite0, batch):
    with pytest.raises(UnknownNameError, match="blocks.1"):
        A.grad_cam(lite0, batch[:1], 1, layer="blocks.1O")
    with pytest.raises(UnknownNameError, match="Did you mean"):
        A.guided_backprop(lite0, batch[:1], layer="hed", neuron=0)


def test_cam_needs_gap_and_linear():
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).eval()
    with pytest.raises(ValueError, match="global average pooling.*grad_cam"):
        A.cam(alex, normalize(torch.rand(1, 3, 96, 96)), 1)


def test_not_normalised_input_warns(lite0, batch):
    photo255 = (batch[:1] * 0.229 + 0.485) * 255
    with pytest.warns(UserWarning, match="0-255"):
        A.saliency(lite0, photo255, 1)
    photo01 = (batch[:1] * 0.226 + 0.45).clamp(0, 1)
    with pytest.warns(UserWarning, match="not normalised"):
        A.grad_cam(lite0, photo01, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A.saliency(lite0, batch[:1], 1)  # a real normalised photo: silent


def test_bad_shapes_and_options(lite0, batch):
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        A.saliency(lite0, torch.zeros(1, 1, 8, 8), 1)
    with pytest.raises(TypeError, match="load_image"):
        A.saliency(lite0, [1, 2, 3], 1)
    with pytest.raises(ValueError, match="stride"):
        A.occlusion(lite0, batch[:1], 1, window=8, stride=16)
    with pytest.raises(ValueError, match="neuron"):
        A.guided_backprop(lite0, batch[:1], layer="head")
    with pytest.raises(ValueError, match="Channel"):
        A.guided_backprop(lite0, batch[:1], layer="head", neuron=5000)


def test_integrated_gradients_convergence_warning(lite0, batch):
    with pytest.warns(A.IntegratedGradientsWarning, match="n_steps"):
        A.integrated_gradients(lite0, batch[:1], "tabby", n_steps=2, rtol=1e-4)
    x = batch[:1]
    attr, delta = A.integrated_gradients(lite0, x, "tabby", n_steps=8, rtol=10.0, return_delta=True)
    with torch.no_grad():
        gap = lite0(x)[0, 281] - lite0(torch.zeros_like(x))[0, 281]
    assert float(delta) == pytest.approx(float(attr.sum() - gap), abs=1e-3 * float(gap.abs()))


def test_deletion_curve(lite0, batch, unchanged):
    x = batch[:1]
    check = unchanged(lite0)
    sal = A.grad_cam(lite0, x, "tabby")
    res = A.deletion_curve(lite0, x, "tabby", sal, n_steps=8)
    check()
    assert res.scores.shape == (1, 9)
    with torch.no_grad():
        p0 = float(lite0(x).softmax(1)[0, 281])
    assert res.scores[0, 0] == pytest.approx(p0, rel=1e-4)  # nothing deleted yet
    assert res.scores[0, -1] < 0.05  # everything deleted: a grey image is no tabby
    inverted = A.deletion_curve(lite0, x, "tabby", -sal, n_steps=8)
    assert res.auc[0] < inverted.auc[0]  # deleting the evidence first hurts more than deleting it last


def test_saliency_to_mask_on_a_photo(lite0, batch):
    mask = A.saliency_to_mask(A.grad_cam(lite0, batch[:1], "tabby"), quantile=0.8)
    assert mask.dtype == torch.bool and mask.shape == (1, SIZE, SIZE)
    assert 0.1 < float(mask.float().mean()) < 0.6
