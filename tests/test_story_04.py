"""Notebook 04's claims (Adebayo et al. 2018, measured on the bundled EfficientNet-Lite0).

Measured at 128 px on chelsea and coffee (cascade fc → … → stem.conv): guided backprop keeps ρ ≈ 1.0 after
the classifier and head are randomised and ends near 0.4–0.5; the gradient falls to ≈ 0.6 after the classifier
alone and ends near 0.3; Grad-CAM at the head is unrelated (|ρ| mostly < 0.4) from the first step on. We
assert what holds with margin. Also: guided backprop barely depends on the target class, the gradient does.
"""

from __future__ import annotations

import pytest
import torch

from introspect_lab import attribution as A
from introspect_lab import load_image, sample_image

SIZE = 96


@pytest.fixture(scope="module")
def sanity(lite0):
    x = load_image(sample_image("chelsea"), lite0, size=SIZE)
    return A.sanity_check(lite0, x, None)


def test_cascade_order(lite0, sanity):
    assert sanity.steps[0] == "trained"
    assert sanity.steps[1] == "fc" and sanity.steps[-1] == "stem.conv"


def test_guided_backprop_survives_randomising_the_top(sanity):
    rho = {k.split(" (")[0]: v.mean(1) for k, v in sanity.correlation.items()}
    top3 = 3  # fc, head.bn, head.conv randomised
    assert rho["guided backprop"][top3] > 0.9
    assert rho["gradient"][top3] < 0.8
    assert abs(rho["Grad-CAM"][top3]) < 0.5


def test_guided_backprop_stays_closer_than_the_gradient(sanity):
    rho = {k.split(" (")[0]: v.mean(1) for k, v in sanity.correlation.items()}
    assert (rho["guided backprop"] >= rho["gradient"] - 0.02).all()
    assert rho["gradient"][-1] < 0.5  # fully randomised: the gradient map has changed


def test_model_not_changed_by_the_sanity_check(lite0, unchanged):
    check = unchanged(lite0)
    A.sanity_check(
        lite0, load_image(sample_image("coffee"), lite0, size=48), None, layers=["fc", "head.conv"]
    )
    check()


def test_guided_backprop_is_not_class_specific(lite0):
    x = load_image(sample_image("chelsea"), lite0, size=128)
    rho_guided = A.spearman(
        A.to_map(A.guided_backprop(lite0, x, "tabby")), A.to_map(A.guided_backprop(lite0, x, "espresso"))
    )
    rho_grad = A.spearman(A.saliency(lite0, x, "tabby"), A.saliency(lite0, x, "espresso"))
    assert rho_guided > 0.9
    assert rho_grad < rho_guided - 0.2
    grad = A.gradient(lite0, x, "tabby")
    assert grad.shape == x.shape  # signed, per input value: the output-shape rule
    assert (grad < 0).any() and (grad > 0).any()
    assert torch.allclose(grad.abs().amax(1), A.saliency(lite0, x, "tabby"))  # saliency = max_c |gradient|
