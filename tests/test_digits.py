"""The network trained in class (seed 003's MNIST example, on scikit-learn's digits)."""

from __future__ import annotations

import pytest
import torch

from introspect_lab.digits import (
    digit_subspace,
    digits_tensors,
    maximize_digit,
    read_by_neighbours,
    train_digits_cnn,
)
from introspect_lab.synthesis.objectives import Context
from introspect_lab.synthesis.priors import subspace


@pytest.fixture(scope="module")
def trained():
    return train_digits_cnn(progress=False)


def test_digits_tensors_are_images_in_unit_range():
    x, y = digits_tensors(16)
    assert x.shape == (1797, 1, 16, 16) and y.shape == (1797,)
    assert x.min() >= 0 and x.max() <= 1 and set(y.tolist()) == set(range(10))


def test_the_cnn_learns_the_digits(trained):
    assert trained.test_accuracy > 0.9  # measured 0.96 (chance 0.10)


def test_every_digits_visualisation_is_classified_as_that_digit(trained):
    x = maximize_digit(trained.model, list(range(10)))
    with torch.no_grad():
        probs = torch.softmax(trained.model(x), 1)
    assert probs.argmax(1).tolist() == list(range(10))
    assert probs.max(1).values.min() > 0.9  # measured 0.94 (0.998 without the subspace term)
    assert x.min() >= 0 and x.max() <= 1


def test_the_visualisation_is_not_the_starting_image(trained):
    mean = digits_tensors(16)[0].mean(0)
    x = maximize_digit(trained.model, [3, 8])
    assert (x - mean).abs().amax(dim=(1, 2, 3)).min() > 0.3
    assert (x[0] - x[1]).abs().max() > 0.3


def test_the_model_is_left_as_it_was(trained):
    model = trained.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    maximize_digit(model, 1, steps=3)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    model.eval()


def test_bad_digit_names_the_range(trained):
    with pytest.raises(ValueError, match="0..9"):
        maximize_digit(trained.model, 10)
    with pytest.raises(ValueError, match="'mean' or 'noise'"):
        maximize_digit(trained.model, 1, start="zeros")


def test_subspace_penalty_is_the_distance_from_the_span_hand_checked():
    mean = torch.zeros(1, 1, 2, 2)
    v = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])  # the span of the first two pixels
    term = subspace(mean, v)
    inside = torch.tensor([[[[3.0, -2.0], [0.0, 0.0]]]])
    outside = torch.tensor([[[[3.0, -2.0], [1.0, 2.0]]]])
    value = lambda x: float(term.evaluate(Context({}, image=x, input=x))[0])  # noqa: E731
    assert value(inside) == 0.0 and value(outside) == pytest.approx(1.0 + 4.0)
    with pytest.raises(ValueError, match=r"\[k, D\]"):
        subspace(mean, torch.ones(2, 5))


def test_digit_subspace_is_orthonormal_and_checks_k():
    mean, v = digit_subspace(8, 16)
    assert mean.shape == (1, 1, 16, 16) and v.shape == (8, 256)
    assert torch.allclose(v @ v.T, torch.eye(8), atol=1e-5)
    with pytest.raises(ValueError, match="1..256"):
        digit_subspace(0, 16)


def test_read_by_neighbours_reads_real_digits_and_finds_them_in_the_data():
    x, y = digits_tensors(16)
    pick = torch.arange(0, 1797, 90)  # 20 real digits
    read = read_by_neighbours(x[pick])
    assert sum(a == b for a, b in zip(read.labels, y[pick].tolist())) >= 19
    assert read.distance.max() == pytest.approx(0.0, abs=1e-4)  # each is in the data itself
    assert 0.5 < read.real_distance < 3.0
    flat = torch.full((1, 1, 16, 16), 0.5)  # a grey square is far from every digit
    assert read_by_neighbours(flat).distance[0] > 2 * read.real_distance
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        read_by_neighbours(torch.zeros(3, 16, 16))
