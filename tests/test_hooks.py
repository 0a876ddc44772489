"""capture() records the right tensors, works with in-place ReLUs, and always cleans up."""

from __future__ import annotations

import pytest
import torch
import torchvision

from introspect_lab.hooks import capture, count_hooks, frozen, no_inplace
from introspect_lab.models import UnknownNameError


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()  # stock: ReLU(inplace=True)


def test_activation_is_the_conv_output_not_the_relu_output(alexnet):
    x = torch.randn(2, 3, 96, 96)
    with capture(alexnet, "features.0") as cap:
        alexnet(x)
    expected = alexnet.features[0](x)
    torch.testing.assert_close(cap["features.0"], expected)
    assert cap["features.0"].min() < 0  # the in-place ReLU after it did not overwrite it


def test_gradients_match_autograd_with_inplace_relus(alexnet, unchanged):
    check = unchanged(alexnet)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 96, 96, requires_grad=True)
    with frozen(alexnet), capture(alexnet, ["features.3", "features.8"], gradients=True) as cap:
        out = alexnet(x)
        out[:, 7].sum().backward()
    # reference: split the network by hand, no hooks at all
    with no_inplace(alexnet):
        a = alexnet.features[:4](x.detach())
        a.requires_grad_(True)
        rest = alexnet.classifier(torch.flatten(alexnet.avgpool(alexnet.features[4:](a)), 1))
        (grad,) = torch.autograd.grad(rest[:, 7].sum(), a)
    torch.testing.assert_close(cap.activations["features.3"], a.detach())
    torch.testing.assert_close(cap.gradients["features.3"], grad, atol=1e-6, rtol=1e-4)
    assert cap.gradients["features.8"].shape == cap.activations["features.8"].shape
    check()


def test_hooks_removed_after_exception(lite0, unchanged):
    alex = torchvision.models.alexnet(weights=None).eval()
    for model in (lite0, alex):
        check = unchanged(model)
        inplace_before = [getattr(m, "inplace", None) for m in model.modules()]
        with pytest.raises(RuntimeError, match="boom"):
            with capture(model, [next(n for n, _ in model.named_children())], gradients=True):
                assert count_hooks(model) > 0
                raise RuntimeError("boom")
        assert count_hooks(model) == 0
        assert [getattr(m, "inplace", None) for m in model.modules()] == inplace_before
        check()


def test_unknown_layer_places_no_hook(lite0):
    with pytest.raises(UnknownNameError, match="blocks.10"):
        with capture(lite0, ["blocks.1", "blocks.100"]):
            pass
    assert count_hooks(lite0) == 0


def test_stop_truncates_the_forward_pass(lite0, chelsea):
    calls = []
    handle = lite0.fc.register_forward_hook(lambda *a: calls.append(1))
    try:
        with capture(lite0, ["blocks.2", "blocks.5"], stop=True) as cap:
            out = cap.run(chelsea)
        assert out is None and not calls  # fc never ran
        with capture(lite0, "blocks.5") as full:
            lite0(chelsea)
        torch.testing.assert_close(cap["blocks.5"], full["blocks.5"])
        assert cap["blocks.2"].shape == (1, 24, 56, 56)
    finally:
        handle.remove()


def test_live_activations_keep_the_graph(lite0):
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    with frozen(lite0), capture(lite0, "blocks.4", detach=False, stop=True) as cap:
        cap.run(x)
        cap["blocks.4"].pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in lite0.parameters())


def test_frozen_restores_flags(lite0):
    lite0.train()
    lite0.fc.weight.requires_grad_(False)
    try:
        with frozen(lite0):
            assert not lite0.training and not lite0.stem.bn.training
            assert not any(p.requires_grad for p in lite0.parameters())
        assert lite0.training and lite0.stem.bn.training
        assert not lite0.fc.weight.requires_grad and lite0.fc.bias.requires_grad
    finally:
        lite0.eval()
        lite0.fc.weight.requires_grad_(True)


def test_no_hook_pile_up_over_many_calls(lite0):
    x = torch.zeros(1, 3, 32, 32)
    for _ in range(100):
        with capture(lite0, "blocks.1", stop=True) as cap:
            cap.run(x)
    assert count_hooks(lite0) == 0
