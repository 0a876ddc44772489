"""Story of notebook 01: a feature map shows WHERE in the input a channel fires.

Paste a patch of a photo onto a plain canvas. Exactly the map cells whose receptive field
(from the layer arithmetic) overlaps the patch change; and moving the patch moves the
response by (shift / jump) cells. This is what lets the notebook lay activation maps over
the photo.
"""

from __future__ import annotations

import pytest
import torch

from introspect_lab import load_image, sample_image
from introspect_lab.features import extract_features, receptive_field

SIZE = 128
PATCH = 24


def _paste(canvas: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    out = canvas.clone()
    out[:, :, top : top + PATCH, left : left + PATCH] = patch
    return out


@pytest.mark.parametrize("layer", ["blocks.1", "blocks.3"])
def test_feature_maps_are_aligned_with_the_input(lite0, layer):
    photo = load_image(sample_image("chelsea"), lite0, size=SIZE)
    patch = photo[:, :, 40 : 40 + PATCH, 52 : 52 + PATCH]  # the cat's face
    canvas = torch.zeros(1, 3, SIZE, SIZE)  # the mean colour after normalisation
    places = [(24, 16), (24 + 32, 16 + 48)]  # the second is shifted by a multiple of every jump
    batch = torch.cat([canvas] + [_paste(canvas, patch, t, left) for t, left in places])
    acts = extract_features(lite0, batch, layer)
    rf = receptive_field(lite0, layer, SIZE)
    h, w = rf.output_size
    centroids = []
    for k, (top, left) in enumerate(places, start=1):
        change = (acts[k] - acts[0]).abs().sum(0)  # [h, w]: how much each cell moved
        expected = torch.zeros(h, w, dtype=torch.bool)
        for i in range(h):
            for j in range(w):
                t, lft, b, r = rf.box(i, j)
                expected[i, j] = t < top + PATCH and top < b and lft < left + PATCH and left < r
        changed = change > 1e-5
        # no cell outside the patch's reach changes at all ...
        assert not (changed & ~expected).any()
        assert float(change[~expected].abs().max()) < 1e-5
        # ... and nearly every cell that sees the patch does (a few may sit in a ReLU6 dead zone)
        assert changed[expected].float().mean() > 0.9
        ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        mass = change / change.sum()
        centroids.append(torch.stack([(mass * ii).sum(), (mass * jj).sum()]))
    # the response moves with the patch: (32, 48) pixels = (32, 48) / jump cells
    moved = centroids[1] - centroids[0]
    assert torch.allclose(moved, torch.tensor([32.0, 48.0]) / rf.jump[0], atol=0.75)


def test_deeper_rectified_maps_are_sparser(lite0, chelsea):
    """The notebook's second claim: deeper channels fire more selectively (more exact zeros)."""
    from introspect_lab.features import activation_maps

    layers = ["stem", "blocks.1.depthwise", "blocks.4.depthwise", "blocks.10.depthwise", "head"]
    zeros = [float((activation_maps(lite0, chelsea, layer) == 0).float().mean()) for layer in layers]
    assert zeros == sorted(zeros), zeros
    assert zeros[-1] > 2 * zeros[0]
