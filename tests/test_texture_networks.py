"""The random texture networks (introspect_lab.texture.networks): seeded, named, frozen, usable for
synthesis.
"""

import pytest
import torch

from introspect_lab import load_image, sample_image, to_display
from introspect_lab.models import model_settings
from introspect_lab.texture import look
from introspect_lab.texture import networks as N
from introspect_lab.texture.gatys import texture_synthesis


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


def test_lbfgs_synthesis_lowers_the_relative_gram_loss_and_keeps_a_grey_exemplar_grey():
    net = N.shallow_multiscale(0, sizes=(3, 5, 7), filters=8)
    cfg = N.texture_settings(net, size=48, steps=15)
    assert cfg.optimizer == "lbfgs"
    brick = load_image(sample_image("brick"), net, 48)
    res = texture_synthesis(net, brick, cfg, seed=0, progress=False)
    assert res.image.shape == (1, 3, 48, 48)
    assert res.extra["loss_end"] * 20 < res.extra["loss_start"], res.extra
    assert res.extra["evaluations"] <= 19
    # the starting noise is colourful (colourfulness ≈ 90); the result is grey
    assert look.colourfulness(to_display(res.image, net)) < 15
    # the default settings are the network's own, and the same seed gives the same texture
    again = texture_synthesis(
        net, brick, seed=0, progress=False, size=48, steps=15, style_layers=cfg.style_layers
    )
    assert torch.equal(again.image, res.image)


def test_texture_settings_and_networks_by_name(lite0):
    assert (
        N.texture_settings(lite0) == model_settings(lite0).texture
    )  # a classifier keeps the registry's (Adam)
    assert N.texture_settings(lite0, steps=7).steps == 7
    assert isinstance(N.texture_network("shallow_multiscale"), N.ShallowMultiscale)
    with pytest.raises(ValueError, match="Did you mean 'shallow_multiscale'"):
        N.texture_network("shallow_multiscal")
    assert N.texture_settings(N.texture_network("vgg19_random")).optimizer == "lbfgs"
    with pytest.raises(ValueError, match="optimizer"):
        N.texture_settings(N.shallow_multiscale(0, sizes=(3,), filters=2), optimizer="sgd")
    with pytest.raises(ValueError, match="callback"):
        net = N.shallow_multiscale(0, sizes=(3,), filters=2)
        texture_synthesis(net, torch.zeros(1, 3, 16, 16), size=16, steps=1, callback=print)
    with pytest.raises(ValueError, match="one texture at a time"):
        texture_synthesis(net, torch.zeros(2, 3, 16, 16) - 1, size=16, steps=1)


def test_the_last_row_and_column_are_no_noisier_than_the_rest():
    # with a circular network, TV must wrap around too: the plain TV smooths the last row and column about
    # a third as much, and they came out speckled (at 96 px: grey std 0.22–0.24 against 0.11 inside; now
    # 0.09–0.11)
    net = N.shallow_multiscale(0)
    tex = load_image(sample_image("gravel"), net, 96)
    res = texture_synthesis(net, tex, seed=0, progress=False, size=96)  # 40 L-BFGS iterations, its default
    grey = to_display(res.image, net).mean(-1)
    inside = grey[1:-1, 1:-1].std(axis=1).mean()
    for edge in (grey[-1], grey[:, -1], grey[0], grey[:, 0]):
        assert edge.std() < 1.4 * inside, (edge.std(), inside)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_fft_convolution_is_the_circular_convolution(dtype, tol):
    # odd filters from 9 px go through the FFT; 3 px, even sizes and filters larger than the image do not
    for k, hw in [
        (3, (20, 20)),
        (9, (40, 56)),
        (23, (64, 48)),
        (23, (23, 30)),
        (10, (32, 32)),
        (23, (16, 40)),
    ]:
        fast = N.CircularConv2d(3, 4, k, padding=k // 2, padding_mode="circular").to(dtype)
        ref = torch.nn.Conv2d(3, 4, k, padding=k // 2, padding_mode="circular").to(dtype)
        ref.load_state_dict(fast.state_dict())
        fast.requires_grad_(False)  # frozen, as in the texture networks: the spectrum is kept between calls
        x = torch.randn(2, 3, *hw, dtype=dtype, requires_grad=True)
        y, y_ref = fast(x), ref(x)
        (g,) = torch.autograd.grad(y.pow(2).sum(), x)
        (g_ref,) = torch.autograd.grad(y_ref.pow(2).sum(), x)
        assert y.shape == y_ref.shape
        assert (y - y_ref).abs().max() <= tol * y_ref.abs().max(), (k, hw)
        assert (g - g_ref).abs().max() <= tol * g_ref.abs().max(), (k, hw)
    with torch.no_grad():  # the kept spectrum follows an in-place change of the weights
        x = torch.randn(1, 3, 40, 40, dtype=dtype)
        fast(x)
        fast.weight.mul_(2)
        ref.weight.mul_(2)
        assert (fast(x) - ref(x)).abs().max() <= tol * ref(x).abs().max()
        fast.weight.data.mul_(2)  # through ``.data``: the version counter does not move
        ref.weight.data.mul_(2)
        assert (fast(x) - ref(x)).abs().max() <= tol * ref(x).abs().max()
