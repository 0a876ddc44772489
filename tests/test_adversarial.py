"""Adversarial examples: FGSM against a hand-computed oracle, PGD's budget, fooling, robust training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from introspect_lab import adversarial as A
from introspect_lab import denormalize, load_image, normalize, sample_image, sample_names
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


def test_pgd_stays_in_the_ball_and_the_pixel_range_and_beats_fgsm(lite0, photos, unchanged):
    check = unchanged(lite0)
    eps = 2 / 255
    labels = lite0(photos).argmax(1).detach()
    adv = A.pgd(lite0, photos, labels, eps=eps, steps=5)
    f_adv = A.fgsm(lite0, photos, labels, eps=eps)
    check()
    p0, p = denormalize(photos).clamp(0, 1), denormalize(adv)
    assert (p - p0).abs().max() <= eps + 1e-6
    assert p.min() >= -1e-6 and p.max() <= 1 + 1e-6
    assert A.linf_pixels(lite0, adv, photos).max() <= 2 + 1e-4
    with torch.no_grad():
        loss_pgd = F.cross_entropy(lite0(adv), labels, reduction="none")
        loss_fgsm = F.cross_entropy(lite0(f_adv), labels, reduction="none")
    # measured (96 px, 11 photos): PGD loss ≥ FGSM loss on every photo, mean 14 vs 8
    assert (loss_pgd >= loss_fgsm - 1e-4).all()
    assert A.accuracy(lite0, adv, labels) == 0.0


def test_targeted_pgd_moves_towards_the_target(lite0, photos):
    x = photos[:3]
    adv = A.pgd(lite0, x, "goldfish", eps=4 / 255, steps=5, targeted=True)
    with torch.no_grad():
        before, after = torch.softmax(lite0(x), 1)[:, 1], torch.softmax(lite0(adv), 1)[:, 1]
    # measured (96 px, 4/255, 5 steps): goldfish probability 4e-14 / 2e-12 / 2e-7 → 0.68 / 4e-6 / 1e-3
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
