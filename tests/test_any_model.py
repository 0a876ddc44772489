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
