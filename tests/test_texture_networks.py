"""The random texture networks (introspect_lab.texture.networks): seeded, named, frozen, and usable for synthesis."""

import pytest
import torch

from introspect_lab import load_image, sample_image, to_display
from introspect_lab.texture import look
from introspect_lab.texture import networks as N


@pytest.fixture(scope="module")
def vgg():
    return N.vgg19_random(0)


def test_vgg19_random_is_seeded_named_avg_pooled_and_leaves_the_global_rng_alone(vgg):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = N.vgg19_random(0, last="relu1_1")  # building must not consume the global random state
    assert torch.equal(torch.rand(1), before)
    assert torch.equal(again.conv1_1.weight, vgg.conv1_1.weight)
    other = N.vgg19_random(1, last="relu1_1")
    assert not torch.equal(other.conv1_1.weight, vgg.conv1_1.weight)
    names = [n for n, _ in vgg.named_children()]
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"] and names[-1] == "relu5_1"
    assert set(N.VGG_GRAM_LAYERS) <= set(names)
    assert all(isinstance(m, torch.nn.AvgPool2d) for n, m in vgg.named_children() if n.startswith("pool"))
    assert not any(p.requires_grad for p in vgg.parameters())
    assert isinstance(N.vgg19_random(0, pool="max", last="pool1").pool1, torch.nn.MaxPool2d)


def test_shallow_multiscale_has_one_zero_mean_unit_norm_layer_per_size_and_keeps_the_size():
    net = N.shallow_multiscale(0, sizes=(3, 7), filters=4)
    assert N.shallow_gram_layers(net) == ("relu3", "relu7")
    w = net.conv7.weight
    assert w.shape == (4, 3, 7, 7)
    assert torch.allclose(w.flatten(1).sum(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.equal(N.shallow_multiscale(0, sizes=(3, 7), filters=4).conv3.weight, net.conv3.weight)
    assert not torch.equal(N.shallow_multiscale(1, sizes=(3, 7), filters=4).conv3.weight, net.conv3.weight)
    assert net.conv7(torch.zeros(1, 3, 20, 20)).shape[-2:] == (20, 20)  # circular padding: same size


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="pool"):
        N.vgg19_random(0, pool="min")
    with pytest.raises(ValueError, match="relu"):
        N.vgg19_random(0, last="fc7")
    with pytest.raises(ValueError, match="filter size"):
        N.shallow_multiscale(0, sizes=())
    with pytest.raises(ValueError, match="padding"):
        N.shallow_multiscale(0, padding="wrap")
    with pytest.raises(TypeError, match="models.settings"):
        N.texture_settings(torch.nn.Conv2d(3, 3, 3))


def test_lbfgs_texture_lowers_the_relative_gram_loss_and_keeps_a_grey_exemplar_grey():
    net = N.shallow_multiscale(0, sizes=(3, 5, 7), filters=8)
    cfg = N.texture_settings(net, size=48, steps=15)
    brick = load_image(sample_image("brick"), net, 48)
    img, extra = N.lbfgs_texture(net, brick, cfg, seed=0)
    assert img.shape == (1, 3, 48, 48)
    assert extra["loss_end"] * 20 < extra["loss_start"], extra
    assert extra["evaluations"] <= 19
    # the starting noise is colourful (colourfulness ≈ 90); the result is grey
    assert look.colourfulness(to_display(img, net)) < 15
