"""Adversarial examples: FGSM against a hand-computed oracle, PGD's budget, fooling, robust training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from introspect_lab import adversarial as A
from introspect_lab import denormalize, load_image, normalize, sample_image, sample_names
from introspect_lab.adversarial import attacks
from introspect_lab.hooks import count_hooks
from introspect_lab.transfer import small_cnn

MEAN = np.array([0.485, 0.456, 0.406]).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225]).reshape(3, 1, 1)


@pytest.fixture(scope="module")
def photos(lite0):
    """All bundled photos at 96 px, one batch."""
    return torch.cat([load_image(sample_image(n), lite0, 96) for n in sample_names()])


def _linear_model(seed: int = 0, size: int = 4, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(1), nn.Linear(3 * size * size, classes)).double().eval()


def _fgsm_by_hand(model: nn.Module, p: np.ndarray, y: int, eps: float, targeted: bool) -> np.ndarray:
    """FGSM on a linear model in pixel space with the gradient written out (no autograd).

    z = W·vec((p − μ)/σ) + b;  ∂CE/∂z = softmax(z) − onehot(y);  ∂CE/∂p = reshape(Wᵀ(softmax − onehot)) / σ.
    """
    lin = model[1]
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    z = W @ ((p - MEAN) / STD).ravel() + b
    s = np.exp(z - z.max())
    s /= s.sum()
    s[y] -= 1.0
    grad = (W.T @ s).reshape(p.shape) / STD
    direction = -1.0 if targeted else 1.0
    return np.clip(p + direction * eps * np.sign(grad), 0.0, 1.0)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_hand_computed_step_in_pixel_space(targeted):
    model = _linear_model()
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(2, 3, 4, 4))
    p[0, 0, 0, 0], p[1, 2, 3, 3] = 0.0, 1.0  # pixels at the limits: the clamp must act
    x = normalize(torch.from_numpy(p))
    eps = 8 / 255
    y = [2, 0]
    adv = A.fgsm(model, x, y, eps=eps, targeted=targeted)
    got = denormalize(adv).numpy()
    want = np.stack([_fgsm_by_hand(model, p[i], y[i], eps, targeted) for i in range(2)])
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert got.min() >= -1e-12 and got.max() <= 1 + 1e-12


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_on_the_real_model_matches_autograd_by_hand(lite0, chelsea, unchanged, targeted):
    check = unchanged(lite0)
    x = F.interpolate(chelsea, size=96, mode="bilinear", align_corners=False)
    target = "goldfish" if targeted else 281
    eps = 2 / 255
    adv = A.fgsm(lite0, x, target, eps=eps, targeted=targeted)
    check()
    p = denormalize(x).clamp(0, 1).requires_grad_(True)
    loss = F.cross_entropy(lite0(normalize(p)), torch.tensor([1 if targeted else 281]))
    (g,) = torch.autograd.grad(loss, p)
    want = (p + (-1 if targeted else 1) * eps * g.sign()).clamp(0, 1).detach()
    got = denormalize(adv)
    assert (got - want).abs().max() < 1e-5
    # the attack did its job: the true class falls (untargeted) or the target rises (targeted)
    with torch.no_grad():
        before, after = torch.softmax(lite0(x), 1)[0], torch.softmax(lite0(adv), 1)[0]
    if targeted:
        assert after[1] > before[1]
    else:
        assert after[281] < before[281]


def _pgd_by_hand(
    model: nn.Module, p: np.ndarray, y: list[int], eps: float, step: float, steps: int, noise: np.ndarray
) -> np.ndarray:
    """Madry et al.'s plain PGD on a linear model, gradient written out: random start, fixed step, last
    iterate.
    """
    lin = model[1]
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    lo, hi = np.clip(p - eps, 0, 1), np.clip(p + eps, 0, 1)
    q = np.minimum(np.maximum(p + eps * noise, lo), hi)
    for _ in range(steps):
        for i in range(p.shape[0]):
            z = W @ ((q[i] - MEAN) / STD).ravel() + b
            s = np.exp(z - z.max())
            s /= s.sum()
            s[y[i]] -= 1.0
            q[i] = np.minimum(
                np.maximum(q[i] + step * np.sign((W.T @ s).reshape(p.shape[1:]) / STD), lo[i]), hi[i]
            )
    return q


def test_plain_pgd_equals_hand_computed_iterations_and_returns_the_last_iterate():
    model = _linear_model(seed=1)
    p = np.random.default_rng(1).uniform(0, 1, size=(2, 3, 4, 4))
    p[0, 1, 2, 2] = 1.0
    eps, step, steps = 6 / 255, 2 / 255, 4
    # the random start of pgd: torch.rand with a generator seeded by `seed`, mapped to [−1, 1]
    noise = (torch.rand(p.shape, generator=torch.Generator().manual_seed(3)).double() * 2 - 1).numpy()
    got = denormalize(
        A.pgd(model, normalize(torch.from_numpy(p)), [1, 2], eps=eps, step=step, steps=steps, seed=3)
    ).numpy()
    want = _pgd_by_hand(model, p, [1, 2], eps, step, steps, noise)
    np.testing.assert_allclose(got, want, atol=1e-9)
    # one step more is a different point: the result is the last iterate, not a kept best
    more = _pgd_by_hand(model, p, [1, 2], eps, step, steps + 1, noise)
    assert np.abs(more - want).max() > 1e-3


def test_pgd_stays_in_the_ball_and_keep_best_is_never_below_fgsm(lite0, photos, unchanged):
    check = unchanged(lite0)
    eps = 2 / 255
    labels = lite0(photos).argmax(1).detach()
    adv = A.pgd(lite0, photos, labels, eps=eps, steps=5)
    best = A.pgd(lite0, photos, labels, eps=eps, steps=5, keep_best=True)
    f_adv = A.fgsm(lite0, photos, labels, eps=eps)
    check()
    p0 = denormalize(photos).clamp(0, 1)
    for x in (adv, best):
        p = denormalize(x)
        assert (p - p0).abs().max() <= eps + 1e-6
        assert p.min() >= -1e-6 and p.max() <= 1 + 1e-6
    assert A.linf_pixels(lite0, adv, photos).max() <= 2 + 1e-4
    with torch.no_grad():
        loss = {
            k: F.cross_entropy(lite0(v), labels, reduction="none")
            for k, v in (("plain", adv), ("best", best), ("fgsm", f_adv))
        }
    # keep-best holds FGSM's step as a candidate and the best iterate of the same run: ≥ both, per image
    assert (loss["best"] >= loss["fgsm"] - 1e-4).all()
    assert (loss["best"] >= loss["plain"] - 1e-4).all()
    assert A.accuracy(lite0, adv, labels) == 0.0


def test_quantize_erases_sub_half_level_changes_and_keeps_whole_levels(lite0, photos):
    x8 = A.quantize(lite0, photos[:3])
    p8 = denormalize(x8)
    assert torch.allclose(p8 * 255, (p8 * 255).round(), atol=1e-4)  # on the 8-bit grid
    assert torch.allclose(A.quantize(lite0, x8), x8, atol=1e-6)  # idempotent
    erased = A.quantize(lite0, A.fgsm(lite0, x8, None, eps=0.3 / 255))
    assert A.linf_pixels(lite0, erased, x8).max() < 1e-3
    kept = A.quantize(lite0, A.fgsm(lite0, x8, None, eps=1 / 255))
    assert A.linf_pixels(lite0, kept, x8).max() == pytest.approx(1, abs=1e-3)
    sweep = A.eps_sweep(lite0, x8, eps=(0, 0.3 / 255))
    assert sweep.accuracy_8bit == [1.0, 1.0]


def test_random_sign_moves_every_pixel_by_eps_in_a_random_direction(lite0, photos):
    x = A.quantize(lite0, photos[:2])
    noisy = A.random_sign(lite0, x, eps=3 / 255, seed=1)
    p0, p = denormalize(x), denormalize(noisy)
    inside = (p0 > 3.5 / 255) & (p0 < 1 - 3.5 / 255)
    d = (p - p0)[inside] * 255
    assert torch.allclose(d.abs(), torch.full_like(d, 3.0), atol=1e-3)
    assert 0.45 < (d > 0).double().mean() < 0.55
    assert not torch.equal(noisy, A.random_sign(lite0, x, eps=3 / 255, seed=2))


def test_neighbour_correlation_tells_smooth_maps_from_noise():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, 32, 32, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    smooth = torch.stack([torch.exp(-((xx - c) ** 2 + yy**2) * 3) for c in (-0.5, 0, 0.5, 0.2)])
    assert A.neighbour_correlation(noise).abs().max() < 0.1
    assert A.neighbour_correlation(smooth).min() > 0.9
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        A.neighbour_correlation(noise[0])


def test_substitute_learns_the_targets_labels_and_leaves_the_target_alone(unchanged):
    target = small_cnn(size=16, seed=0)
    x = normalize(torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    check = unchanged(target)
    sub = small_cnn(size=16, width=8, seed=1)
    agree = A.train_substitute(target, sub, x, epochs=40, lr=1e-2)
    check()
    with torch.no_grad():
        assert agree == pytest.approx(float((sub(x).argmax(1) == target(x).argmax(1)).double().mean()))
    assert agree > 0.8


def test_targeted_pgd_moves_towards_the_target(lite0, photos):
    x = photos[:3]
    adv = A.pgd(lite0, x, "goldfish", eps=4 / 255, steps=5, targeted=True, keep_best=True)
    with torch.no_grad():
        before, after = torch.softmax(lite0(x), 1)[:, 1], torch.softmax(lite0(adv), 1)[:, 1]
    # measured (96 px, 4/255, 5 steps, keep-best): goldfish probability
    # 4e-14 / 2e-12 / 2e-7 → 0.68 / 4e-6 / 1e-3
    # (plain PGD's last iterate also raises it by orders of magnitude, but 5 steps leave bullfrog on top)
    assert (after > 1000 * before).all(), (before, after)
    assert lite0(adv[:1]).argmax(1).item() == 1


def test_fooling_reaches_the_target_on_every_bundled_photo_within_100_steps(lite0, unchanged):
    photos = torch.cat([load_image(sample_image(n), lite0, 128) for n in sample_names()])
    check = unchanged(lite0)
    res = A.fool(lite0, photos, "goldfish", max_steps=100)
    check()
    # measured (128 px, lr 0.5): 3–30 steps (hubble the slowest), L∞ 14–43 grey levels
    assert all(res.fooled), res.steps
    assert all(0 <= s <= 100 for s in res.steps)
    assert (lite0(res.x).argmax(1) == 1).all()
    assert np.allclose(res.linf, A.linf_pixels(lite0, res.x, photos).numpy(), atol=1e-3)


def test_every_call_leaves_the_model_as_it_was(lite0, chelsea, unchanged):
    model = small_cnn(size=16)
    model.train()  # a model in train mode must come back in train mode
    model.features[0].weight.requires_grad_(False)  # mixed flags come back as they were
    x = normalize(torch.rand(4, 3, 16, 16))
    for m, xx in ((model, x), (lite0, F.interpolate(chelsea, size=64))):
        check = unchanged(m)
        A.fgsm(m, xx, None, eps=1 / 255)
        A.fgsm(m, xx, 0, eps=1 / 255, targeted=True)
        A.pgd(m, xx, None, eps=1 / 255, steps=2)
        A.fool(m, xx, 1, max_steps=2)
        A.eps_sweep(m, xx, eps=(0, 1 / 255), attack="pgd", steps=1)
        A.robust_accuracy(m, xx, [0] * xx.shape[0], eps=1 / 255, attack="fgsm")
        check()
        assert count_hooks(m) == 0


def test_bad_input_gives_errors_that_name_the_fix(lite0, chelsea):
    x = F.interpolate(chelsea, size=32)
    with pytest.raises(ValueError, match="eps must be ≥ 0"):
        A.fgsm(lite0, x, None, eps=-0.01)
    with pytest.raises(ValueError, match="larger than eps"):
        A.pgd(lite0, x, None, eps=1 / 255, step=2 / 255)
    with pytest.raises(ValueError, match="/255"):
        A.fgsm(lite0, x, None, eps=8)
    with pytest.raises(ValueError, match="out of range.*0..999"):
        A.fgsm(lite0, x, 1000, eps=1 / 255)
    with pytest.raises(ValueError, match="out of range"):
        A.pgd(lite0, x, -1, eps=1 / 255)
    with pytest.raises(ValueError, match="Did you mean"):
        A.fool(lite0, x, "tabbby")
    bad = x.clone()
    bad[0, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        A.fgsm(lite0, bad, None, eps=1 / 255)
    with pytest.raises(ValueError, match="NaN"):
        A.fool(lite0, bad, 1)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        A.pgd(lite0, x[:, :2], None, eps=1 / 255)
    with pytest.raises(ValueError, match="one per image"):
        A.fgsm(lite0, torch.cat([x, x]), [1, 2, 3], eps=1 / 255)
    with pytest.raises(ValueError, match="steps"):
        A.pgd(lite0, x, None, eps=1 / 255, steps=0)


def test_eps_sweep_starts_clean_and_falls(lite0, photos):
    sweep = A.eps_sweep(lite0, photos[:4], eps=(0, 1 / 255, 4 / 255))
    assert sweep.accuracy[0] == 1.0
    assert sweep.accuracy[-1] < 0.5
    assert sweep.confidence[0] > sweep.confidence[1] > sweep.confidence[2]
    assert sweep.first_flip() is not None


def test_fgsm_sweep_takes_one_gradient_and_equals_fgsm_at_each_eps(monkeypatch):
    model = _linear_model(seed=2)
    p = np.random.default_rng(2).uniform(0, 1, size=(6, 3, 4, 4))
    x = normalize(torch.from_numpy(p))
    eps_list = (0, 1 / 255, 8 / 255, 64 / 255)
    family = A.fgsm_family(model, x, [0, 1, 2, 0, 1, 2], targeted=True)
    for e in eps_list:
        assert torch.equal(family(e), A.fgsm(model, x, [0, 1, 2, 0, 1, 2], eps=e, targeted=True))
    calls, loss_grad = [], attacks._loss_grad
    monkeypatch.setattr(attacks, "_loss_grad", lambda *args: calls.append(1) or loss_grad(*args))
    sweep = A.eps_sweep(model, x, eps=eps_list)
    monkeypatch.undo()
    assert len(calls) == 1  # one gradient for the four ε
    labels = model(x).argmax(1)
    for e, preds, conf in zip(eps_list, sweep.predictions, sweep.confidence):
        with torch.no_grad():
            probs = torch.softmax(model(A.fgsm(model, x, labels, eps=e) if e else x), 1)
        assert preds == probs.argmax(1).tolist()
        assert conf == pytest.approx(float(probs.gather(1, labels[:, None]).mean()), abs=1e-12)
    assert sweep.accuracy[-1] < sweep.accuracy[0]  # the budget large enough to flip some labels
    with pytest.raises(ValueError, match="eps"):
        family(-1 / 255)


def test_eps_sweep_plot_spans_its_data_on_either_scale():
    from types import SimpleNamespace

    from introspect_lab.adversarial.plots import plot_eps_sweeps

    sweep = SimpleNamespace(
        eps=[0, 0.05, 0.1, 0.2], accuracy=[0.9, 0.5, 0.2, 0.0], confidence=[0.8, 0.4, 0.1, 0.0]
    )
    sweep.accuracy_8bit = None
    top = 0.2 * 255  # 51 grey levels
    lo, hi = plot_eps_sweeps({"a": sweep}, xscale="linear").axes[0].get_xlim()
    assert top < hi < 1.1 * top, (
        "a linear axis ends near the largest ε (set after a symlog one, it ran to 79)"
    )
    assert plot_eps_sweeps({"a": sweep}).axes[0].get_xscale() == "symlog"
    with pytest.raises(ValueError, match="'symlog' or 'linear'"):
        plot_eps_sweeps({"a": sweep}, xscale="log")
