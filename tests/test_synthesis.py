"""The synthesis engine, objectives and regularisers: hand computations, truncation, failures, results."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from introspect_lab.fastpath import batchnorm_folded
from introspect_lab.hooks import count_hooks
from introspect_lab.models import predict
from introspect_lab.synthesis import (
    NonFiniteLossError,
    SynthesisSettings,
    evaluate,
    invert,
    relative_error,
    synthesize,
    visualize_class,
)
from introspect_lab.synthesis import objectives as O
from introspect_lab.synthesis import priors as R

# ---------------------------------------------------------------------------
# Hand computations on tiny tensors
# ---------------------------------------------------------------------------


def test_tv_beta_matches_hand_computation():
    x = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 3.0, 1.0], [2.0, 2.0, 0.0]]]])
    # positions (i, j) with both neighbours: (0,0), (0,1), (1,0), (1,1)
    # (0,0): dx=1, dy=-1 -> 2;  (0,1): dx=2, dy=1 -> 5;  (1,0): dx=3, dy=2 -> 13;  (1,1): dx=-2, dy=-1 -> 5
    s = [2.0, 5.0, 13.0, 5.0]
    assert R.total_variation(x, beta=2.0).item() == pytest.approx(sum(s))
    assert R.total_variation(x, beta=1.0).item() == pytest.approx(sum(math.sqrt(v) for v in s), rel=1e-6)
    assert R.total_variation(x, beta=3.0).item() == pytest.approx(sum(v**1.5 for v in s), rel=1e-6)
    # two channels and two images just add up
    x2 = torch.cat([x, 2 * x], dim=1).repeat(2, 1, 1, 1)
    assert R.total_variation(x2, beta=2.0).item() == pytest.approx(2 * (sum(s) + 4 * sum(s)))
    ctx = O.Context({}, image=x, input=x)
    assert (0.5 * R.tv(beta=1.0))(ctx).item() == pytest.approx(0.5 * sum(math.sqrt(v) for v in s), rel=1e-6)


def test_circular_tv_wraps_around_and_treats_every_pixel_alike():
    x = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 3.0, 1.0], [2.0, 2.0, 0.0]]]])
    # right neighbour of column 2 is column 0, lower neighbour of row 2 is row 0: all 9 positions
    # dx: (1, 2, -3), (3, -2, -1), (0, -2, 2);  dy: (-1, 1, -3), (2, -1, -1), (-1, 0, 4)
    dx = [1, 2, -3, 3, -2, -1, 0, -2, 2]
    dy = [-1, 1, -3, 2, -1, -1, -1, 0, 4]
    s = [a * a + b * b for a, b in zip(dx, dy)]
    assert R.total_variation(x, circular=True).item() == pytest.approx(sum(s))
    assert R.total_variation(x, beta=1.0, circular=True).item() == pytest.approx(
        sum(math.sqrt(v) for v in s), rel=1e-6
    )
    # a shifted (rolled) image has the same circular TV; the non-circular one changes
    shifted = x.roll(1, dims=-1)
    assert R.total_variation(shifted, circular=True).item() == pytest.approx(sum(s))
    assert R.total_variation(shifted).item() != pytest.approx(R.total_variation(x).item())


def test_alpha_norm_and_l2_match_hand_computation():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    ctx = O.Context({}, image=x, input=x)
    assert R.alpha_norm(6)(ctx).item() == pytest.approx(1 + 64 + 0.5**6)
    assert R.alpha_norm(1)(ctx).item() == pytest.approx(3.5)
    assert R.l2()(ctx).item() == pytest.approx(1 + 4 + 0.25)


def test_gram_loss_uses_seed_normalisation():
    # one image, N=2 channels, M = H*W = 2 positions
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # [1, 2, 1, 2]
    g = O.gram(f)[0]
    assert torch.allclose(g, torch.tensor([[5.0, 3.0], [3.0, 9.0]]))
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = ((4**2) + 3**2 + 3**2 + 8**2) / (4 * 2**2 * 2**2)
    ctx = O.Context({"l": f}, image=f, input=f)
    assert O.gram_loss("l", target)(ctx).item() == pytest.approx(expected)
    style = O.style_loss({"l": target}, {"l": 3.0})
    assert style(ctx).item() == pytest.approx(3 * expected)


def test_feature_match_content_and_dream_values():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    t = torch.tensor([[[[1.0, 0.0], [3.0, 2.0]]]])
    ctx = O.Context({"l": a}, image=a, input=a)
    assert O.feature_match("l", t)(ctx).item() == pytest.approx((4 + 4) / (1 + 9 + 4))  # seed 002, Eq. 1
    assert O.content_loss("l", t)(ctx).item() == pytest.approx(0.5 * 8)
    assert O.dream("l", reduction="sum")(ctx).item() == pytest.approx(30.0)
    assert O.dream("l")(ctx).item() == pytest.approx(7.5)
    assert O.channel("l", 0)(ctx).item() == pytest.approx(2.5)
    assert O.neuron("l", 0)(ctx).item() == pytest.approx(4.0)  # centre (1, 1)


def test_objectives_compose_like_numbers():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    ctx = O.Context({"l": a}, image=a, input=a)
    ch = O.channel("l", 0)
    l2 = R.l2()
    obj = 2 * ch - 0.1 * l2 + ch / 2
    assert obj(ctx).item() == pytest.approx(2 * 2.5 - 0.1 * 30 + 1.25)
    assert (-obj)(ctx).item() == pytest.approx(-obj(ctx).item())
    assert sum([ch, l2])(ctx).item() == pytest.approx(32.5)
    assert obj.layers == {"l", "input"}
    _, parts = obj.evaluate(ctx)
    assert parts["l2"] == pytest.approx(-3.0)
    with pytest.raises(TypeError, match="numbers only"):
        ch * ch
    with pytest.raises(ValueError, match="finite"):
        ch * float("nan")


# ---------------------------------------------------------------------------
# Engine behaviour
# ---------------------------------------------------------------------------


def test_truncation_gives_same_loss_and_gradient(lite0, unchanged):
    check = unchanged(lite0)
    torch.manual_seed(0)
    x0 = torch.randn(1, 3, 96, 96)
    target = torch.randn(1, 80, 6, 6)
    obj = O.channel("blocks.3", 5) + 0.3 * O.dream("blocks.1") - 1e-3 * O.content_loss("blocks.5", target)
    results = []
    for truncate in (True, False):
        x = x0.clone().requires_grad_(True)
        value, _ = evaluate(lite0, obj, x, truncate=truncate)
        value.backward()
        results.append((value.item(), x.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-8)
    assert results[0][1].abs().sum() > 0
    check()


class _OwnForward(nn.Sequential):
    """A Sequential whose forward is not "one child after the other": its pair must not be folded."""

    def forward(self, x):
        return self[0](x) + self[1](x)


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)),
        _OwnForward(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)),
        nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)),
    )
    for bn in net.modules():
        if isinstance(bn, nn.BatchNorm2d):  # running statistics and affine parameters far from 0 and 1
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2), bn.bias.data.uniform_(-1, 1)
    return net.eval()


def test_batchnorm_folding_keeps_the_function_and_names_and_leaves_the_model_alone(unchanged):
    net = _bn_net()
    check = unchanged(net)
    folded = batchnorm_folded(net, keep=["3.0"])
    # pairs 0 and 1 folded (BatchNorm → Identity, same names); 2 has its own forward, 3's conv is kept
    assert [type(m).__name__ for m in (folded[0][1], folded[1][1], folded[2][1], folded[3][1])] == [
        "Identity",
        "Identity",
        "BatchNorm2d",
        "BatchNorm2d",
    ]
    # w' = w·γ/σ, b' = (b − μ)·γ/σ + β, computed by hand for pair 1 (no bias)
    bn = net[1][1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(folded[1][0].weight, net[1][0].weight * scale[:, None, None, None])
    assert torch.allclose(folded[1][0].bias, bn.bias - bn.running_mean * scale)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)
    assert folded[3][0].weight is net[3][0].weight, "weights not folded are shared, not copied"
    assert not any(p.requires_grad for p in folded.parameters() if p not in set(net.parameters()))
    check()
    net[0][1].train()  # a BatchNorm in train mode uses the batch's statistics: no fold
    assert isinstance(batchnorm_folded(net)[0][1], nn.BatchNorm2d)
    net.eval()

    # hooks the model has: the copy calls the very same objects, and a hooked pair is not folded
    class Probe:  # a hook with state of its own, which a deep copy would duplicate
        def __init__(self):
            self.calls = 0

        def __call__(self, *args):
            self.calls += 1

    seq0, conv1 = Probe(), Probe()
    handles = [net[0].register_forward_hook(seq0), net[1][0].register_forward_pre_hook(conv1)]
    folded = batchnorm_folded(net)
    assert [type(m).__name__ for m in (folded[0][1], folded[1][1])] == ["Identity", "BatchNorm2d"]
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)
    assert (seq0.calls, conv1.calls) == (2, 2)
    calls = []
    later = folded[0].register_forward_hook(lambda *a: calls.append("copy"))  # stays with the copy
    assert count_hooks(folded) == 3 and count_hooks(net) == 2
    later.remove()
    for h in handles:
        h.remove()


def test_engine_folds_batchnorm_without_changing_what_a_layer_shows():
    net = _bn_net()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        conv_out = net[3][0](net[2](net[1](net[0](x))))
        bn_out = net[0][1](net[0][0](x))
    obj = O.channel("3.0", 1)  # a conv whose BatchNorm follows: the hook must see the conv's own output
    assert evaluate(net, obj, x)[0].item() == pytest.approx(conv_out[:, 1].mean().item(), rel=1e-5)
    obj = O.channel("0.1", 2)  # a folded BatchNorm: its name now shows the folded conv's output
    assert evaluate(net, obj, x)[0].item() == pytest.approx(bn_out[:, 2].mean().item(), rel=1e-5)
    ran = []  # every BatchNorm that runs in a whole forward pass (a global hook does not stop the fold)
    spy = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: ran.append(m) if isinstance(m, nn.BatchNorm2d) else None
    )
    try:
        evaluate(net, O.channel("3.0", 1), x, truncate=False)
    finally:
        spy.remove()
    assert len(ran) == 2, "only pair 2 (its own forward) and pair 3 (its conv hooked) run their BatchNorm"


def test_truncation_stops_before_later_layers(lite0):
    seen = []
    h = lite0.blocks[10].register_forward_hook(lambda *a: seen.append(1))
    try:
        synthesize(lite0, O.channel("blocks.3", 0), size=64, steps=2, progress=False, seed=0)
        assert not seen
        synthesize(lite0, O.channel("blocks.3", 0), size=64, steps=2, progress=False, seed=0, truncate=False)
        assert len(seen) == 2
    finally:
        h.remove()


def test_same_seed_same_image(lite0):
    kw = dict(size=64, steps=5, progress=False, transforms=[R.Jitter(4)], image_ops=[R.GaussianBlur(2, 0.5)])
    obj = O.channel("blocks.2", 3) - 1e-3 * R.l2()
    a = synthesize(lite0, obj, seed=7, **kw)
    b = synthesize(lite0, obj, seed=7, **kw)
    c = synthesize(lite0, obj, seed=8, **kw)
    assert torch.equal(a.image, b.image)
    assert not torch.equal(a.image, c.image)


def test_non_finite_loss_names_culprit(lite0, unchanged):
    check = unchanged(lite0)
    obj = O.channel("blocks.1", 0) - 1e30 * R.alpha_norm(6)
    with pytest.raises(NonFiniteLossError, match=r"learning rate.*weight") as err:
        synthesize(
            lite0, obj, size=64, steps=50, lr=1e4, optimizer="sgd", clamp=False, progress=False, seed=0
        )
    assert "alpha_norm" in str(err.value)
    assert err.value.result is not None and torch.isfinite(err.value.result.best_image).all()
    check()
    assert count_hooks(lite0) == 0


def test_keyboard_interrupt_returns_best_so_far(lite0, unchanged, capsys):
    check = unchanged(lite0)
    calls = []

    def stop_button(state):
        calls.append(state.step)
        if state.step == 6:
            raise KeyboardInterrupt

    res = synthesize(
        lite0,
        O.class_score(lite0, "tabby"),
        size=64,
        steps=50,
        optimizer="ascent",
        lr=10.0,
        callback=stop_button,
        every=2,
        progress=False,
        seed=0,
    )
    assert res.interrupted and res.steps_done == 6
    assert "best image so far" in res.note and "best image so far" in capsys.readouterr().out
    assert res.best_value == max(res.history)
    assert torch.equal(res.image, res.best_image)
    # the returned image is really the one that scored best
    value, _ = evaluate(lite0, O.class_score(lite0, "tabby"), res.image)
    assert value.item() == pytest.approx(res.best_value, rel=1e-4)
    check()


def test_callback_can_stop_and_sees_progress(lite0):
    seen = []
    res = synthesize(
        lite0,
        O.channel("stem", 0),
        size=32,
        steps=20,
        every=5,
        progress=False,
        seed=0,
        callback=lambda s: seen.append(s.step) or s.step >= 10,
    )
    assert seen == [5, 10] and res.steps_done == 10 and "callback" in res.note


def test_clamp_keeps_valid_pixel_range(lite0):
    res = synthesize(lite0, O.layer_activation("stem"), size=32, steps=10, lr=1.0, progress=False, seed=0)
    from introspect_lab.images import denormalize

    img = denormalize(res.image, lite0)
    assert img.min() >= -1e-5 and img.max() <= 1 + 1e-5


def test_fft_parameterisation_runs_and_improves(lite0):
    res = synthesize(lite0, O.channel("blocks.2", 1), size=64, steps=30, param="fft", progress=False, seed=0)
    assert res.history[-1] > res.history[0]


def test_lr_schedule_dict_and_bad_arguments(lite0):
    seen = []
    # a schedule that drops lr to ~0 after step 1: the image stops changing
    res = synthesize(
        lite0,
        O.channel("stem", 0),
        size=32,
        steps=4,
        lr=0.5,
        lr_schedule={1: 1e-12},
        progress=False,
        seed=0,
        every=1,
        callback=lambda s: seen.append(s.image),
    )
    assert not torch.equal(seen[0], res.extra["init"])
    assert torch.allclose(seen[1], seen[3], atol=1e-6)
    with pytest.raises(ValueError, match="optimizer"):
        synthesize(lite0, O.channel("stem", 0), optimizer="lbfgs2")
    with pytest.raises(TypeError, match="Objective"):
        synthesize(lite0, "tabby")
    with pytest.raises(ValueError, match="lr"):
        synthesize(lite0, O.channel("stem", 0), lr=-1)
    with pytest.raises(ValueError, match="out of range"):
        synthesize(lite0, O.channel("stem", 999), size=32, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"SynthesisSettings has no field\(s\) \['stepz'\].*'steps'"):
        synthesize(lite0, O.channel("stem", 0), stepz=3)
    assert count_hooks(lite0) == 0


def test_settings_and_keywords_are_one_way_and_size_follows_the_start_image(lite0):
    obj = O.channel("blocks.1", 3) - 1e-2 * R.tv()
    cfg = SynthesisSettings(size=32, steps=3, lr=0.1, transforms=[R.Jitter(2)])
    a = synthesize(lite0, obj, cfg, seed=0, progress=False)
    b = synthesize(lite0, obj, size=32, steps=3, lr=0.1, transforms=[R.Jitter(2)], seed=0, progress=False)
    assert a.image.shape == (1, 3, 32, 32) and torch.equal(a.image, b.image)
    c = synthesize(lite0, obj, cfg, lr=0.5, seed=0, progress=False)  # a keyword overrides the settings
    assert not torch.equal(a.image, c.image)
    start = torch.zeros(2, 3, 40, 24)
    assert synthesize(lite0, obj, init=start, steps=1, progress=False).image.shape == (2, 3, 40, 24)
    assert synthesize(lite0, obj, steps=1, progress=False).image.shape == (1, 3, 128, 128)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "dream"])
def test_per_image_rates_and_steps_equal_separate_runs(lite0, optimizer):
    """One batch where image b runs at lr_b for steps_b steps = separate runs, image by image."""
    torch.manual_seed(0)
    start = torch.randn(3, 3, 32, 32) * 0.5
    obj = O.channel("blocks.1", 3) - 1e-2 * R.tv()
    kw = dict(size=None, optimizer=optimizer, progress=False, seed=0)
    lrs, steps = [0.05, 0.2, 0.01], [3, 1, 5]
    many = synthesize(lite0, obj, init=start, lr=lrs, steps=steps, **kw)
    assert many.steps_done == 5
    for b in range(3):
        one = synthesize(lite0, obj, init=start[b : b + 1], lr=lrs[b], steps=steps[b], **kw)
        assert (many.image[b] - one.image[0]).abs().max() < 1e-5, b
    with pytest.raises(ValueError, match="one per image"):
        synthesize(lite0, obj, init=start, lr=[0.1, 0.2], **kw)
    with pytest.raises(ValueError, match="one per image"):
        synthesize(lite0, obj, init=start, steps=[1, 2], **kw)
    with pytest.raises(ValueError, match="steps must be"):
        synthesize(lite0, obj, init=start, steps=[1, 0, 2], **kw)


def test_yosinski_ops_do_what_they_say():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    y = x.clone()
    R.ClipSmallPixels(percentile=50).after_step(y, None, 0)
    norms = x.norm(dim=1)
    zeroed = (y == 0).all(dim=1)
    assert zeroed.sum() == 128 and (norms[zeroed] <= norms[~zeroed].min()).all()
    g = torch.randn(1, 3, 16, 16)
    z = x.clone()
    R.ClipSmallGradients(percentile=25).after_step(z, g, 0)
    contrib = (x * g).abs().sum(1)
    zz = (z == 0).all(dim=1)
    assert zz.sum() == 64 and (contrib[zz] <= contrib[~zz].min()).all()
    b = x.clone()
    R.GaussianBlur(every=2, sigma=1.0).after_step(b, None, 0)
    assert torch.equal(b, x)  # not this step
    R.GaussianBlur(every=2, sigma=1.0).after_step(b, None, 1)
    assert R.total_variation(b) < 0.5 * R.total_variation(x)
    assert b.mean().item() == pytest.approx(x.mean().item(), abs=0.05)


def test_works_on_stock_model_with_inplace_relus(unchanged):
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    check = unchanged(model)
    res = synthesize(model, O.channel("layer2", 3) - 1e-3 * R.l2(), size=64, steps=3, progress=False, seed=0)
    assert torch.isfinite(res.image).all()
    check()


# ---------------------------------------------------------------------------
# Real results on the bundled model
# ---------------------------------------------------------------------------


def test_class_visualisation_reaches_top1_from_noise(lite0, unchanged):
    check = unchanged(lite0)
    # measured (96 px, 100 steps, seeds 0 and 1): p(tabby) 0.99, p(volcano) 1.00 (top-1 already at 60 steps)
    res = visualize_class(lite0, ["tabby", "volcano"], size=96, steps=100, seed=0, progress=False)
    top = [p[0] for p in predict(lite0, res.image, 1)]
    assert [p.index for p in top] == [281, 980]
    assert min(p.prob for p in top) > 0.5
    start = [p[0].index for p in predict(lite0, res.extra["init"], 1)]
    assert start != [281, 980]
    check()


def test_inversion_mid_layer_feature_error(lite0, chelsea, unchanged):
    check = unchanged(lite0)
    # measured at 128 px / 100 steps: feature error ≈ 0.05 at blocks.3 and blocks.8
    res = invert(lite0, chelsea, "blocks.5", size=96, steps=60, seed=0, progress=False)
    assert res.extra["feature_error"] < 0.2
    assert res.extra["feature_error"] < 0.5 * _start_error(lite0, res, "blocks.5")
    target = res.extra["target"]
    direct = float((target - res.image).norm() / target.norm())
    assert res.extra["relative_error"] == pytest.approx(direct, rel=1e-5)
    assert relative_error(target, torch.zeros_like(target)) == pytest.approx(1.0)  # the blank start
    check()


def _start_error(model, res, layer):
    from introspect_lab.synthesis import layer_features

    phi0 = layer_features(model, res.extra["target"], layer)[layer]
    phi = layer_features(model, res.extra["init"], layer)[layer]
    return float((phi - phi0).pow(2).sum() / phi0.pow(2).sum())


def test_relative_error_value():
    a = torch.tensor([3.0, 4.0])
    assert relative_error(a, torch.tensor([3.0, 0.0])) == pytest.approx(4 / 5)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def test_class_score_is_pre_softmax_logit():
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    value, _ = evaluate(model, O.class_score(model, [1, 2]), x)
    with torch.no_grad():
        logits = model(x)
    assert value.item() == pytest.approx((logits[0, 1] + logits[1, 2]).item(), rel=1e-6)
