"""Story of notebook 05: priors turn noisy class visualisations into smooth ones the model still
recognises.
"""

import pytest
import torch

from introspect_lab.digits import digits_tensors, maximize_digit, read_by_neighbours, train_digits_cnn
from introspect_lab.images import denormalize
from introspect_lab.intervals import paired_difference
from introspect_lab.models import predict
from introspect_lab.settings import LUCENT
from introspect_lab.synthesis import priors as R
from introspect_lab.synthesis import visualize_class
from introspect_lab.synthesis.parameterisation import Fourier


@pytest.fixture(scope="module")
def digits():
    return train_digits_cnn(progress=False)


def test_regularised_class_visualisation_is_smoother_and_still_the_class(lite0):
    # measured (96 px, 100 steps, seed 0): TV 142 669 without priors, 10 682 with them (13×); both top-1 tabby
    plain = visualize_class(
        lite0, "tabby", size=96, steps=100, l2_weight=0, blur_every=0, jitter=0, seed=0, progress=False
    )
    reg = visualize_class(lite0, "tabby", size=96, steps=100, seed=0, progress=False)
    assert R.total_variation(reg.image) * 4 < R.total_variation(plain.image)
    assert predict(lite0, plain.image, 1)[0][0].index == 281
    assert predict(lite0, reg.image, 1)[0][0].index == 281


@pytest.fixture(scope="module")
def lucent_and_plain(lite0):
    """Goldfish by Lucent's recipe (transforms + decorrelated Fourier spectrum) and by plain ascent,
    seed 0, at notebook 05's step counts (64 Lucent steps, 60 ascent steps).
    """
    lucent = visualize_class(lite0, "goldfish", settings=LUCENT, steps=64, seed=0, progress=False)
    plain = visualize_class(
        lite0, "goldfish", size=128, steps=60, l2_weight=0, blur_every=0, jitter=0, seed=0, progress=False
    )
    return lucent, plain


def test_lucent_priors_give_natural_image_statistics(lucent_and_plain):
    # the picture is smooth, unlike plain ascent
    lucent, plain = lucent_and_plain
    assert R.total_variation(lucent.image) * 3 < R.total_variation(plain.image)


def test_lucent_priors_give_the_class_a_clear_share(lite0, lucent_and_plain):
    # measured at 128 px, 256 steps, torch 2.14.1: seed 0 gives goldfish top-1 (p 1.00) on an AMD EPYC
    # CPU and starfish 0.82, goldfish 0.18 on the CPU of an earlier run; seeds 1 and 2 gave goldfish 1.00
    # and peacock 1.00 there. At the notebook's 64 steps (Intel Xeon): seeds 0, 1, 2 give goldfish 0.98,
    # 1.00, 1.00, TV about 10 500 against 220 000 for plain ascent. So top-1 depends on the seed and the
    # CPU, and notebook 05 prints the top-1 it gets; what holds is that the class ends in the top 2 with
    # a clear share.
    lucent, _ = lucent_and_plain
    top = predict(lite0, lucent.image, 2)[0]
    assert 1 in [p.index for p in top]
    assert next(p.prob for p in top if p.index == 1) >= 0.1


def test_fourier_parameterisation_starts_near_grey_not_saturated():
    # before the fix, an extra √(H·W) on the orthonormal inverse FFT drove the sigmoid into 0/1 everywhere
    f = Fourier(
        (1, 3, 128, 128), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), torch.Generator().manual_seed(0)
    )
    px = denormalize(f().detach(), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert ((px > 0.02) & (px < 0.98)).float().mean() > 0.99
    assert (px - 0.5).abs().max() < 0.2


def test_priors_make_the_class_trained_digits_readable_not_more_confident(digits):
    # measured: correlation with the own class's average digit 0.94 with all priors, 0.87 without the
    # subspace term, 0.40 bare; subspace gain +0.08 [0.05, 0.10] over the 10 digits; p(own) ≥ 0.94
    from_mean = maximize_digit(digits.model, list(range(10)))
    no_subspace = maximize_digit(digits.model, list(range(10)), subspace_weight=0)
    bare = maximize_digit(
        digits.model, list(range(10)), start="noise", prior_weight=0, tv_weight=0, subspace_weight=0, jitter=0
    )
    x, y = digits_tensors(16)
    means = torch.stack([x[y == d].mean(0) for d in range(10)]).flatten(1)

    def corr(v):
        a, b = v.flatten(1) - v.flatten(1).mean(1, keepdim=True), means - means.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))

    with torch.no_grad():
        for v in (from_mean, no_subspace, bare):
            assert digits.model(v).argmax(1).tolist() == list(range(10))
    assert corr(from_mean).mean() > corr(bare).mean() + 0.3
    gain = paired_difference(corr(from_mean).numpy(), corr(no_subspace).numpy(), unit="the 10 digits")
    print(gain)
    assert gain.low > 0.02  # the subspace term helps every digit on average, beyond the interval
    # read with the real digits alone, no network (measured: 10/10 by a 5-NN vote; mean distance to the
    # nearest real digit 1.76 with all priors, 2.55 without the subspace term, 6.63 bare; real digits 1.40)
    read = {
        name: read_by_neighbours(v)
        for name, v in [("all", from_mean), ("no sub", no_subspace), ("bare", bare)]
    }
    assert read["all"].labels == list(range(10))
    near = {name: r.distance for name, r in read.items()}
    closer = paired_difference(near["no sub"], near["all"], unit="the 10 digits")
    assert closer.low > 0, closer  # the subspace term brings every picture nearer to a real digit
    assert near["all"].mean() < 1.5 * read["all"].real_distance < near["bare"].mean()
