"""Feed-forward style networks: instance norm, conditional instance norm, and training that generalises."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from introspect_lab.models import model_settings
from introspect_lab.settings import override
from introspect_lab.texture import look
from introspect_lab.texture.feedforward import (
    HELD_OUT,
    NOISE_SEEDS,
    STYLES,
    TEXTURE,
    TRAIN,
    held_out_losses,
    load_nets,
    range_penalty,
    sample01,
    style_loss,
    style_target,
    stylize,
    train_style_net,
    train_texture_net,
)
from introspect_lab.texture.stylenet import ConditionalInstanceNorm2d, StyleNet


def test_instance_norm_normalises_each_image_and_channel_separately():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8) * torch.tensor([1.0, 5.0, 0.1, 2.0]).view(1, 4, 1, 1) + 7.0
    x[1] *= 10  # images on very different scales
    y = ConditionalInstanceNorm2d(4)(x)
    torch.testing.assert_close(y.mean(dim=(2, 3)), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y.var(dim=(2, 3), unbiased=False), torch.ones(3, 4), atol=5e-3, rtol=0
    )  # var/(var+eps)
    # Each image's output depends on that image alone (unlike batch norm).
    alone = ConditionalInstanceNorm2d(4)(x[2:3])
    torch.testing.assert_close(alone, y[2:3])


def test_conditional_instance_norm_selects_and_mixes_each_styles_parameters():
    torch.manual_seed(0)
    cin = ConditionalInstanceNorm2d(2, n_styles=3)
    with torch.no_grad():
        cin.gamma.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        cin.beta.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.5], [2.0, 2.0]]))
    x = torch.randn(2, 2, 5, 5)
    xn = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(
        x.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-5
    )
    for s in range(3):
        expected = xn * cin.gamma[s].view(1, 2, 1, 1) + cin.beta[s].view(1, 2, 1, 1)
        torch.testing.assert_close(cin(x, s), expected, atol=1e-5, rtol=1e-5)
    per_image = cin(x, torch.tensor([2, 0]))
    torch.testing.assert_close(per_image[0], cin(x, 2)[0])
    torch.testing.assert_close(per_image[1], cin(x, 0)[1])
    mixed = cin(x, torch.tensor([0.25, 0.0, 0.75]))
    torch.testing.assert_close(mixed, 0.25 * cin(x, 0) + 0.75 * cin(x, 2), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        cin(x, 3)


def test_batch_norm_net_rejects_several_styles():
    with pytest.raises(ValueError, match="conditional instance"):
        StyleNet(norm="batch", n_styles=2)
    with pytest.raises(ValueError, match="'instance' or 'batch'"):
        StyleNet(norm="layer")


@pytest.fixture(scope="module")
def brick01(lite0):
    return sample01("brick", lite0, 48)


@pytest.fixture(scope="module")
def cfg(lite0):
    """The bundled model's texture loss on its two lowest style layers (small and quick)."""
    return override(model_settings(lite0).style, style_layers=("stem", "blocks.1"), style_weights=(1.0, 1.0))


def test_trained_texture_net_beats_the_untrained_one_on_held_out_noise(lite0, brick01, cfg, unchanged):
    check = unchanged(lite0)
    trained = train_texture_net(
        lite0, brick01, cfg=cfg, size=48, batch=2, steps=40, width=8, seed=0, progress=False
    )
    check()
    target = style_target(lite0, brick01, cfg)
    z = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(123))  # noise it never saw
    torch.manual_seed(0)
    untrained = StyleNet(width=8).eval()
    with torch.no_grad():
        before = style_loss(lite0, untrained(z).clamp(0, 1), target, cfg).mean()
        after = style_loss(lite0, trained.net(z).clamp(0, 1), target, cfg).mean()
    assert after < before / 5, (float(before), float(after))
    assert trained.history[-1] < trained.history[0]


def test_style_net_trains_several_styles_and_stylize_is_a_valid_image(lite0, brick01, cfg, unchanged):
    check = unchanged(lite0)
    gravel = sample01("gravel", lite0, 48)
    contents = sample01("coffee", lite0, 96)
    cfg = override(cfg, content_layer="blocks.1")
    res = train_style_net(
        lite0, [brick01, gravel], contents, cfg=cfg, size=32, batch=2, steps=3, width=8, progress=False
    )
    check()
    out = stylize(res.net, contents[:, :, :64, :64], torch.tensor([0.5, 0.5]))
    assert out.shape == (1, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    assert torch.isfinite(out).all()


def test_range_penalty_is_zero_inside_and_grows_outside():
    inside = torch.rand(2, 3, 4, 4)
    assert torch.equal(range_penalty(inside), torch.zeros(2))
    outside = inside.clone()
    outside[1, 0, 0, 0] = 1.5
    assert range_penalty(outside)[1] == pytest.approx(0.25 / 48)


def test_bad_inputs_name_the_fix(lite0, brick01):
    bad = brick01.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        train_texture_net(lite0, bad, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        stylize(StyleNet(width=4), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="at least one style"):
        train_style_net(lite0, [], brick01, steps=1, progress=False)


def test_residual_blocks_can_subtract_as_in_johnson():
    """Johnson et al.'s block is conv-norm-ReLU-conv-norm: no ReLU after the second conv, so it
    adds ± values.
    """
    torch.manual_seed(0)
    net = StyleNet(width=4).eval()
    x = torch.rand(1, 16, 8, 8)
    with torch.no_grad():
        added = net.res[1](net.res[0](x, 0), 0)
    assert (added < 0).any() and (added > 0).any()
    assert net.res[0].relu and not net.res[1].relu


WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "weights" / "fast_style.pt"


def test_committed_weights_are_what_todays_code_and_settings_make(lite0):
    """Stored settings equal the code's; one stored net's held-out loss on one fixed noise recomputes
    within 3 %.
    """
    nets, meta = load_nets(WEIGHTS)
    assert meta["style_settings"] == repr(model_settings(lite0).style)
    assert meta["train"] == TRAIN and meta["loss_network"] == lite0.lab_info.name
    assert meta["held_out"]["noise_seeds"] == list(NOISE_SEEDS)
    size = meta["train"]["size"]
    target = style_target(lite0, sample01(TEXTURE, lite0, size))
    for name in ("texture_instance", "texture_batch"):
        now = held_out_losses(lite0, nets[name].net, target, size=size, noise_seeds=NOISE_SEEDS[:1])[0]
        assert now == pytest.approx(meta["held_out"][name][0], rel=0.03), name
    study = meta["norm_study"]
    assert (
        len(study["instance"]) == len(study["batch"]) == len(study["batch_stats"]) == len(study["seeds"]) >= 3
    )


def test_the_committed_style_network_takes_the_styles_colours_and_keeps_the_photo(lite0):
    # the held-out cat styled with the flower (notebook 14, section 2), judged by descriptors no loss uses.
    # measured: colourfulness 38 (cat) -> 64.9 (flower 91.9): 50 % of the way, edges kept 0.16; the
    # networks trained for 300 steps at content weight 200 reached 28 % (0.25), at weight 50 71 % (0.07);
    # optimisation reaches 103 % (0.22)
    nets, _ = load_nets(WEIGHTS)
    content, style = sample01(HELD_OUT, lite0, 128), sample01(STYLES[0], lite0, 128)
    fed = stylize(nets["styles"].net, content, 0)
    pic = {name: x[0].permute(1, 2, 0).numpy() for name, x in [("c", content), ("s", style), ("f", fed)]}
    share = look.colour_share(pic["f"], pic["c"], pic["s"])
    assert share > 0.4, share
    assert look.edge_correlation(pic["f"], pic["c"]) > 0.1
