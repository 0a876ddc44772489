"""Any classifier works: torchvision models built directly and a student's own CNN (random weights, small
sizes).

A registry architecture is recognised from its class and size and gets the tuned settings; any other
network gets layers derived from its structure, announced once (introspect_lab.inferred).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from entry_points import SIZE, entry_points
from torch import nn

from introspect_lab import load_image, sample_image
from introspect_lab.inferred import infer_settings, recognise, spatial_layers
from introspect_lab.models import MODELS, model_settings
from introspect_lab.synthesis import visualize_class


def small_cnn() -> nn.Module:
    """A student's three-layer CNN with ten classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {
        "mobilenet_v3_small": torchvision.models.mobilenet_v3_small(weights=None).eval(),
        "cnn": small_cnn(),
    }


def test_a_directly_built_resnet18_is_the_registry_one(capsys):
    net = torchvision.models.resnet18(weights=None).eval()
    assert recognise(net) == "resnet18"
    assert model_settings(net) == MODELS["resnet18"].settings
    assert "recognised as the registry's resnet18" in capsys.readouterr().out
    model_settings(net)
    assert capsys.readouterr().out == ""  # announced once per model
    res = visualize_class(net, "tabby", size=SIZE, steps=2, progress=False)  # the failing call
    assert torch.isfinite(res.image).all()


def test_a_resized_head_is_not_mistaken_for_the_registry_model():
    net = torchvision.models.resnet18(weights=None, num_classes=10)
    assert recognise(net) is None
    assert infer_settings(net, verbose=False).cam_layer == "layer4"  # pytorch-grad-cam's choice, derived


def test_derived_layers_follow_the_structure(nets, capsys):
    mb = infer_settings(nets["mobilenet_v3_small"])
    out = capsys.readouterr().out
    assert "MobileNetV3: not a registry architecture" in out and "ImageNet-normalised" in out
    assert mb.cam_layer == "features.12"  # pytorch-grad-cam: model.features[-1]
    cnn = infer_settings(nets["cnn"])
    assert cnn.cam_layer == "7"  # the ReLU after the last convolution: the last spatial map
    names = [n for n, _ in spatial_layers(nets["cnn"])]
    assert names == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert set(cnn.style.style_layers) <= set(names) and len(cnn.feature_layers) == 5


def test_no_spatial_layer_is_a_clear_error():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(ValueError, match="no layer with a spatial output"):
        spatial_layers(mlp, size=32)
    with pytest.raises(ValueError, match=r"does not take a \[1, 3, 224, 224\] image"):
        infer_settings(nn.Linear(2, 2))


@pytest.mark.parametrize("net", ["mobilenet_v3_small", "cnn"])
@pytest.mark.parametrize("name", list(entry_points(None, None, None)))
def test_every_entry_point_runs_on_any_classifier(nets, net, name, unchanged):
    m = nets[net]
    check = unchanged(m)
    x = load_image(sample_image("chelsea"), m, SIZE)
    s = load_image(sample_image("coffee"), m, SIZE)
    try:
        out = entry_points(m, x, s)[name]()
    except ValueError as e:  # allowed only where the method needs what the network lacks, said plainly
        assert name == "cam" and "Use grad_cam(" in str(e), (name, e)
        return
    assert torch.isfinite(out).all(), name
    check()


class TutorialCNN(nn.Module):
    """PyTorch's tutorial CNN with a BatchNorm: ``view`` flattens, which a channels-last batch cannot take."""

    def __init__(self, flatten: bool = False):
        super().__init__()
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 6, 5, bias=False)  # (a bias before a BatchNorm has no gradient but rounding)
        self.features = nn.Sequential(conv, nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.fc = nn.Linear(6 * 16, 10)
        self.flatten = flatten

    def forward(self, x):
        f = self.features(x)
        return self.fc(f.flatten(1) if self.flatten else f.view(x.shape[0], -1))


def test_the_fast_paths_take_a_model_that_cannot_take_channels_last(unchanged):
    # IG, PGD, fooling and training feed channels-last batches (introspect_lab.fastpath.ChannelsLast);
    # this model raises on them, so each must fall back to the ordinary layout, with the same results.
    from introspect_lab import adversarial as adv
    from introspect_lab import attribution as A
    from introspect_lab.transfer import train

    net, twin = TutorialCNN().eval(), TutorialCNN(flatten=True).eval()  # twin: the same function, any layout
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="view"):
        net(x.contiguous(memory_format=torch.channels_last))
    check = unchanged(net)
    for run in (
        lambda m: A.integrated_gradients(m, x, 0, n_steps=4, rtol=10.0),
        lambda m: adv.pgd(m, x, 0, eps=0.1, steps=3),
        lambda m: adv.fool(m, x, 1, max_steps=3).x,
    ):
        torch.testing.assert_close(run(net), run(twin), rtol=1e-4, atol=1e-5)
    check()
    labels = torch.tensor([0, 1] * 4)
    data = torch.randn(8, 3, 32, 32)
    train(net, data, labels, epochs=2, batch_size=4, progress=False)
    train(twin, data, labels, epochs=2, batch_size=4, progress=False)
    assert int(net.features[1].num_batches_tracked) == 4  # 2 epochs × 2 batches: no failed train-mode pass
    for (name, a), b in zip(net.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
