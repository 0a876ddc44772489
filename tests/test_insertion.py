"""Insertion mode and blurred replacement of the deletion metric (Petsiuk et al. 2018)."""

import pytest
import torch

from introspect_lab import attribution as A
from introspect_lab import load_image, predict, sample_image


def test_insertion_runs_from_the_blurred_canvas_to_the_photo(lite0):
    x = load_image(sample_image("chelsea"), lite0, 96)
    m = torch.rand(1, 96, 96, generator=torch.Generator().manual_seed(0))
    p_photo = predict(lite0, x, 1)[0][0]
    ins = A.deletion_curve(lite0, x, p_photo.index, m, n_steps=4, baseline="blur", mode="insertion")
    dele = A.deletion_curve(lite0, x, p_photo.index, m, n_steps=4, baseline="blur")
    assert ins.mode == "insertion" and dele.mode == "deletion"
    assert ins.scores[0, -1] == pytest.approx(p_photo.prob, abs=1e-4)  # everything inserted: the photo
    assert dele.scores[0, 0] == pytest.approx(p_photo.prob, abs=1e-4)  # nothing deleted: the photo
    assert ins.scores[0, 0] == pytest.approx(dele.scores[0, -1], abs=1e-5)  # both ends at the blurred photo
    with pytest.raises(ValueError, match="mode"):
        A.deletion_curve(lite0, x, None, m, mode="both")
    with pytest.raises(ValueError, match="blur"):
        A.deletion_curve(lite0, x, None, m, baseline="grey")
