"""The one attribution display rule (attribution.plots.clip_threshold, Captum's outlier_perc)."""

import numpy as np
import pytest
import torch

from introspect_lab.attribution.plots import OUTLIER_PERC, _heat, clip_threshold, pixel_attribution_image


def test_clip_threshold_by_hand_is_captums_cumulative_mass_rule():
    # |v| sorted: 1 1 1 1 6 → cumsum 1 2 3 4 10; 50 % of the mass (5) is first reached at the 6
    v = np.array([1.0, -1.0, 1.0, 1.0, 6.0])
    assert clip_threshold(v, 50) == 6.0
    # 30 % of 10 = 3 is reached at the third 1
    assert clip_threshold(v, 70) == 1.0
    assert clip_threshold(np.zeros(5)) == 1.0
    with pytest.raises(ValueError, match="outlier_perc"):
        clip_threshold(v, 100)


def test_one_huge_gradient_no_longer_greys_out_the_rest():
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.standard_normal((3, 32, 32)) * 0.01, dtype=torch.float32)
    a[:, 0, :4] = 0.2  # a few outlier pixels, ~10 % of the mass
    shown = pixel_attribution_image(a)
    plain = np.clip(0.5 + a.permute(1, 2, 0).numpy() / (2 * float(a.abs().max())), 0, 1)
    assert plain[1:, 1:].std() < 0.03  # max-scaling: everything but the outliers is nearly grey
    assert shown[1:, 1:].std() > 3 * plain[1:, 1:].std()  # the display rule keeps the structure visible
    assert OUTLIER_PERC > 0
    h = _heat(np.arange(16.0).reshape(4, 4))
    assert h.min() == 0.0 and h.max() == 1.0
