"""Feature extraction, nearest neighbours, embeddings, receptive fields and top patches (notebooks 01–02)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from introspect_lab import features as F
from introspect_lab import load_image, sample_image
from introspect_lab.hooks import count_hooks
from introspect_lab.models import UnknownNameError

SIZE = 128


@pytest.fixture(scope="module")
def photos(lite0):
    names = ["chelsea", "coffee", "rocket", "astronaut", "china", "flower"]
    return torch.cat([load_image(sample_image(n), lite0, size=SIZE) for n in names])


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------

# Hand computation for the bundled model (stem 3×3/2, then depthwise kernels 3,3,3,5,5 with
# strides 1,2,1,2,1; 1×1 convs add nothing): r_l = r_{l-1} + (k-1)·j_{l-1}, j_l = j_{l-1}·s.
HAND = {
    "stem": (3, 2),  # 1 + 2·1
    "blocks.0": (7, 2),  # 3 + 2·2
    "blocks.1": (11, 4),  # 7 + 2·2, stride 2
    "blocks.2": (19, 4),  # 11 + 2·4
    "blocks.3": (35, 8),  # 19 + 4·4, stride 2
    "blocks.4": (67, 8),  # 35 + 4·8
}


@pytest.mark.parametrize("layer", list(HAND))
def test_receptive_field_matches_hand_computation_and_gradients(lite0, layer, unchanged):
    check = unchanged(lite0)
    rf = F.receptive_field(lite0, layer, SIZE)
    r, j = HAND[layer]
    assert rf.size == (r, r) and rf.jump == (j, j) and rf.start == (0.0, 0.0)
    assert rf.output_size == (SIZE // j, SIZE // j)
    # centre unit and an off-centre one, both well inside the image
    for pos in [
        (rf.output_size[0] // 2, rf.output_size[1] // 2),
        (rf.output_size[0] // 2 + 1, rf.output_size[1] // 2 - 1),
    ]:
        measured, _ = F.measure_receptive_field(lite0, layer, pos, input_size=SIZE)
        assert measured == rf.box(*pos)
        top, left, bottom, right = measured
        assert bottom - top == r and right - left == r
        assert (top + bottom - 1) / 2 == pos[0] * j  # centre = start + i·jump
    check()


def test_receptive_field_is_clipped_at_the_border(lite0):
    rf = F.receptive_field(lite0, "blocks.3", SIZE)
    measured, mask = F.measure_receptive_field(lite0, "blocks.3", (0, 0), input_size=SIZE)
    assert rf.box(0, 0) == measured == (0, 0, 18, 18)  # centre 0, half-width 17
    assert mask.shape == (SIZE, SIZE) and mask[:18, :18].all() and not mask[18:].any()
    assert F.receptive_field(lite0, "head", SIZE).box(0, 0) == (0, 0, SIZE, SIZE)
    assert F.receptive_field(lite0, "fc", SIZE).global_


def test_receptive_field_of_a_hand_built_net_with_pooling_and_dilation():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=1, padding=0),  # r 5, j 1, start 2
        nn.MaxPool2d(2),  # r 6, j 2, start 2.5
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),  # keff 5: r 14, j 2, start 2.5
    )
    rf = F.receptive_field(net, "2", 40)
    assert rf.size == (14, 14) and rf.jump == (2, 2) and rf.start == (2.5, 2.5)
    box = rf.box(5, 5)  # centre 12.5 → pixels 6..19
    assert box == (6, 6, 20, 20)
    torch.manual_seed(0)
    assert F.measure_receptive_field(net, "2", (5, 5), input_size=40)[0] == box


@pytest.mark.parametrize(
    ("builder", "layer"),
    [(torchvision.models.resnet18, "layer2.0"), (torchvision.models.squeezenet1_1, "features.4")],
)
def test_receptive_field_of_stock_models_with_branches(builder, layer, unchanged):
    torch.manual_seed(0)
    model = builder(weights=None).eval()
    check = unchanged(model)
    rf = F.receptive_field(model, layer, 96)
    pos = (rf.output_size[0] // 2, rf.output_size[1] // 2)
    assert F.measure_receptive_field(model, layer, pos, input_size=96)[0] == rf.box(*pos)
    check()


# ---------------------------------------------------------------------------
# Feature extraction
# ---------------------------------------------------------------------------


def test_batch_size_does_not_change_features(lite0, unchanged):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 64, 64)
    check = unchanged(lite0)
    one = F.extract_features(lite0, x, "blocks.5", batch_size=1)
    sixteen = F.extract_features(lite0, x, "blocks.5", batch_size=16)
    assert one.shape == (16, 80, 4, 4)
    # float32 convolutions may sum in another order for another batch size: ~1e-6 relative
    assert torch.allclose(one, sixteen, rtol=1e-4, atol=1e-4)
    assert float((one - sixteen).abs().max()) < 1e-5 * float(one.abs().max()) * 10
    pen = F.extract_features(lite0, x, batch_size=5)  # default: the penultimate layer
    with torch.no_grad():
        logits = lite0(x)
    assert pen.shape == (16, 1280)
    assert torch.allclose(lite0.fc(pen), logits, atol=1e-4)
    check()


def test_reductions_and_activation_maps(lite0, photos):
    chelsea = photos[:1]
    full = F.extract_features(lite0, chelsea, "head")
    assert full.shape == (1, 1280, 4, 4)
    assert torch.allclose(
        F.extract_features(lite0, chelsea, "head", reduce="mean"), full.mean((2, 3)), atol=1e-6
    )
    assert torch.equal(F.extract_features(lite0, chelsea, "head", reduce="max"), full.amax((2, 3)))
    assert F.extract_features(lite0, chelsea, "head", reduce="flatten").shape == (1, 1280 * 16)
    maps = F.activation_maps(lite0, chelsea, "head")
    assert torch.equal(maps, full[0])
    # the 1280-d pooled head is the penultimate vector
    assert torch.allclose(F.extract_features(lite0, chelsea), full.mean((2, 3)), atol=1e-5)


def test_bad_inputs_fail_clearly_and_leave_no_hooks(lite0, chelsea, unchanged):
    check = unchanged(lite0)
    with pytest.raises(UnknownNameError, match="blocks"):
        F.extract_features(lite0, chelsea, "block.3")
    with pytest.raises(ValueError, match="batch_size"):
        F.extract_features(lite0, chelsea, "head", batch_size=0)
    with pytest.raises(ValueError, match="reduce"):
        F.extract_features(lite0, chelsea, "head", reduce="sum")
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        F.extract_features(lite0, chelsea[0], "head")
    with pytest.raises(TypeError, match="tensor"):
        F.extract_features(lite0, [chelsea], "head")
    with pytest.raises(ValueError, match="conv layer"):
        F.activation_maps(lite0, chelsea, "fc")
    with pytest.raises(ValueError, match="channels 0..39"):
        F.top_patches(lite0, chelsea, "blocks.4", 40, k=1)
    assert count_hooks(lite0) == 0
    check()


def test_stock_model_with_inplace_relus_is_left_unchanged(unchanged):
    model = torchvision.models.resnet18(weights=None).eval()
    check = unchanged(model)
    x = torch.randn(2, 3, 64, 64)
    feats = F.extract_features(model, x, "layer1")
    with torch.no_grad():  # by hand, on the channels-last batch the library runs (fastpath.ChannelsLast)
        xc = x.contiguous(memory_format=torch.channels_last)
        ref = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(xc)))))
    assert torch.allclose(feats, ref, atol=1e-6)
    check()


# ---------------------------------------------------------------------------
# Nearest neighbours and embeddings
# ---------------------------------------------------------------------------


def test_nearest_neighbors_by_hand():
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    nn_ = F.nearest_neighbors(feats, 0, k=3)
    assert nn_.indices.tolist() == [[2, 4, 3]]  # tie between 2 and 4 → lower index first
    assert torch.allclose(nn_.distances, torch.tensor([[1.0, 1.0, 2.0]]))
    out = F.nearest_neighbors(feats, torch.tensor([[3.0, 3.0]]), k=1)
    assert out.indices.tolist() == [[1]] and abs(float(out.distances) - 1.0) < 1e-6
    with pytest.raises(ValueError, match="k must be"):
        F.nearest_neighbors(feats, 0, k=5)
    with pytest.raises(ValueError, match="out of range"):
        F.nearest_neighbors(feats, [7], k=1)


def test_nearest_neighbour_of_an_image_is_one_of_its_shifted_copies(lite0, photos):
    # each photo plus two copies shifted by a few pixels (reflect-padded crops)
    padded = nn.functional.pad(photos, (4, 4, 4, 4), mode="reflect")
    copies = [padded[:, :, 4 + dy : 4 + dy + SIZE, 4 + dx : 4 + dx + SIZE] for dy, dx in [(3, -2), (-4, 4)]]
    pool = torch.cat([photos, *copies])  # rows i, i+6, i+12 are the same photo
    feats = F.extract_features(lite0, pool, batch_size=8)
    n = photos.shape[0]
    result = F.nearest_neighbors(feats, list(range(n)), k=2)
    for q in range(n):
        assert set(result.indices[q].tolist()) == {q + n, q + 2 * n}, f"photo {q}"


def test_pca_embedding_matches_the_top_principal_components():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    emb = F.embed(torch.tensor(x), "pca")
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    assert np.allclose(np.abs(emb), np.abs(ref), atol=1e-8)  # up to the sign of each axis


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 10
    x = np.concatenate([c + rng.normal(size=(15, 20)) for c in centres])
    labels = np.repeat(np.arange(3), 15)
    emb = F.embed(torch.tensor(x), "tsne", perplexity=10)
    assert emb.shape == (45, 2)
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).all()
    with pytest.raises(ValueError, match="perplexity"):
        F.embed(torch.tensor(x), "tsne", perplexity=60)
    with pytest.raises(ValueError, match="method"):
        F.embed(torch.tensor(x), "umap")


# ---------------------------------------------------------------------------
# Top patches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "channel"), [("blocks.3", 7), ("blocks.5", 11)])
def test_every_patch_is_the_region_whose_pixels_change_that_activation(
    lite0, photos, layer, channel, unchanged
):
    check = unchanged(lite0)
    patches = F.top_patches(lite0, photos, layer, channel, k=4, batch_size=4)
    assert len(patches) == 4 and len({p.index for p in patches}) == 4
    values = [p.value for p in patches]
    assert values == sorted(values, reverse=True)
    acts = F.extract_features(lite0, photos, layer)[:, channel]
    assert values[0] == pytest.approx(float(acts.max()), abs=1e-5)
    for p in patches:
        i, j = p.position
        assert float(acts[p.index, i, j]) == pytest.approx(p.value, abs=1e-5)
        assert float(acts[p.index, i, j]) == pytest.approx(float(acts[p.index].max()), abs=1e-5)
        _, mask = F.measure_receptive_field(
            lite0, layer, (i, j), channel=channel, x=photos[p.index : p.index + 1]
        )
        top, left, bottom, right = p.box
        inside = torch.zeros_like(mask)
        inside[top:bottom, left:right] = True
        assert not (mask & ~inside).any(), "a pixel outside the patch changes the activation"
        assert mask[top:bottom, left:right].any()
        assert p.crop.shape == (bottom - top, right - left, 3)
        assert 0 <= p.crop.min() and p.crop.max() <= 1
    check()


def test_top_patches_for_several_channels_and_from_a_pool(lite0, tmp_path, monkeypatch):
    from introspect_lab.datasets import offline_pool

    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    pool = offline_pool(per_class=1, size=64)
    out = F.top_patches(lite0, pool, "blocks.1", [0, 5], k=3, batch_size=8)
    assert set(out) == {0, 5} and all(len(v) == 3 for v in out.values())
    acts = F.extract_features(lite0, pool, "blocks.1")
    for c, patches in out.items():
        assert patches[0].value == pytest.approx(float(acts[:, c].max()), abs=1e-5)
        p = patches[0]
        t, left, b, r = p.box
        expected = pool.float01([p.index])[0, :, t:b, left:r].permute(1, 2, 0).numpy()
        assert np.array_equal(p.crop, expected)


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


def test_first_conv_of_stock_models():
    name, conv = F.first_conv(torchvision.models.resnet18(weights=None))
    assert name == "conv1" and tuple(conv.weight.shape) == (64, 3, 7, 7)
    name, conv = F.first_conv(torchvision.models.alexnet(weights=None))
    assert name == "features.0" and tuple(conv.weight.shape) == (64, 3, 11, 11)
    with pytest.raises(ValueError, match="3 input channels"):
        F.first_conv(nn.Sequential(nn.Linear(3, 2)))


def test_filters_are_normalised_one_by_one(lite0):
    w = lite0.stem.conv.weight
    tiles = F.filters_for_display(w)
    assert tiles.shape == (32, 3, 3, 3)
    n = 0
    ref = (w[n] - w[n].min()) / (w[n].max() - w[n].min())
    assert np.allclose(tiles[n], ref.permute(1, 2, 0).detach().numpy(), atol=1e-6)
    assert np.allclose(tiles.reshape(32, -1).max(1), 1) and np.allclose(tiles.reshape(32, -1).min(1), 0)
    assert np.all(F.filters_for_display(torch.zeros(2, 3, 3, 3)) == 0.5)
    with pytest.raises(ValueError, match="conv_weights"):
        F.filters_for_display(lite0.blocks[1].expand.conv.weight)
    assert F.conv_weights(lite0, "blocks.1").shape == (96, 16, 1, 1)  # first conv inside: expand
    assert F.conv_weights(lite0, "blocks.1.depthwise.conv").shape == (96, 1, 3, 3)


def test_first_layer_filters_offline_shows_what_it_has_and_says_what_it_skipped(capsys, monkeypatch):
    from introspect_lab import models

    calls = []
    monkeypatch.setattr(models, "fetch_weights", lambda *a, **k: calls.append(a) or 1 / 0)
    banks = F.first_layer_filters()
    out = capsys.readouterr().out
    assert list(banks) == ["efficientnet_lite0"] and tuple(banks["efficientnet_lite0"].shape) == (32, 3, 3, 3)
    for name in ("alexnet", "resnet18", "squeezenet1_1"):
        assert name in out.split("Skipped:")[1]
    assert calls == []  # offline: not a single download attempt


def test_first_layer_filters_stops_trying_after_one_failed_download(capsys, monkeypatch):
    from introspect_lab import models

    calls = []

    def fail(name, progress=None):
        calls.append(name)
        raise models.WeightsUnavailableError("no network")

    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "0")
    monkeypatch.setattr(models, "is_cached", lambda name, verify=False: name == "efficientnet_lite0")
    monkeypatch.setattr(models, "fetch_weights", fail)
    banks = F.first_layer_filters()
    assert list(banks) == ["efficientnet_lite0"]
    assert calls == ["alexnet"]
    assert "no network" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Figures and widgets (headless)
# ---------------------------------------------------------------------------


def test_channel_maxima_are_reused_by_top_patches(lite0, photos):
    maxima = F.channel_maxima(lite0, photos, "blocks.3", batch_size=4)
    acts = F.extract_features(lite0, photos, "blocks.3")
    assert torch.allclose(maxima.values, acts.flatten(2).amax(2))
    i, j = maxima.positions[2, 5].tolist()
    assert float(acts[2, 5, i, j]) == float(maxima.values[2, 5])
    again = F.top_patches(lite0, photos, "blocks.3", [5, 9], k=3, maxima=maxima)
    direct = F.top_patches(lite0, photos, "blocks.3", [5, 9], k=3)
    for c in (5, 9):
        assert [(p.index, p.position, p.box) for p in again[c]] == [
            (p.index, p.position, p.box) for p in direct[c]
        ]
    with pytest.raises(ValueError, match="computed for 'blocks.3'"):
        F.top_patches(lite0, photos, "blocks.4", 5, maxima=maxima)


def test_figures(lite0, photos):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from introspect_lab import plotting as P

    fig = P.plot_filter_banks({"a": lite0.stem.conv.weight, "b": torch.randn(5, 3, 7, 7)}, ncols=8)
    assert sum(len(ax.images) for ax in fig.axes) == 32 + 5
    fig = P.plot_filter_channels(torch.randn(4, 6, 3, 3), filters=range(3), channels=range(5))
    assert len(fig.axes) == 15
    maps = F.activation_maps(lite0, photos[:1], "blocks.3")
    fig = P.plot_activation_grid(maps, ncols=10, highlight=3)
    assert sum(len(ax.images) for ax in fig.axes) == 40
    # stem: cell i is centred on pixel 2i, so the map spans -1 .. 2·63 + 1 in imshow coordinates
    assert P.map_extent(lite0, "stem", (128, 128), (64, 64)) == (-1.0, 127.0, 127.0, -1.0)
    fig = P.plot_activation_overlay(photos[:1], maps[3], model=lite0, layer="blocks.3")
    assert len(fig.axes) == 3
    coords = np.random.default_rng(0).normal(size=(6, 2))
    thumbs = photos.permute(0, 2, 3, 1).clamp(0, 1).numpy()
    fig = P.plot_thumbnail_scatter(coords, thumbs, [0, 0, 1, 1, 2, 2], ["x", "y", "z"], max_thumbs=4)
    assert len(fig.axes[0].artists) == 4
    fig = P.plot_neighbors(
        thumbs, [0, 1], {"features": [[2, 3], [4, 5]], "pixels": [[1, 2], [0, 3]]}, labels="aabbcc"
    )
    assert sum(len(ax.images) for ax in fig.axes) == 2 * 5
    patches = F.top_patches(lite0, photos, "blocks.3", [1, 2], k=3)
    fig = P.plot_patches(patches)
    assert sum(len(ax.images) for ax in fig.axes) == 6
    plt.close("all")


def test_widgets_run_headless_and_leave_the_model_alone(lite0, tmp_path, monkeypatch, unchanged):
    import matplotlib

    matplotlib.use("Agg")
    from introspect_lab.datasets import offline_pool
    from introspect_lab.widgets import activation_explorer, default_layers, patch_explorer

    assert (
        default_layers(lite0)[:3] == ["stem", "blocks.0", "blocks.1"] and default_layers(lite0)[-1] == "head"
    )
    check = unchanged(lite0)
    box = activation_explorer(lite0, photos=["chelsea", "coffee"], layers=["stem", "blocks.3"], size=64)
    photo_w, layer_w, channel_w = box.children[0].children
    assert channel_w.max == 39  # blocks.3 is the default here: 40 channels
    channel_w.value = 39
    layer_w.value = "stem"
    assert channel_w.max == 31 and channel_w.value == 31
    photo_w.value = "coffee"
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    pool = offline_pool(per_class=1, size=48)
    box = patch_explorer(lite0, pool, layers=["blocks.1", "blocks.3"], k=4)
    layer_w, channel_w = box.children[0].children
    channel_w.value = 20
    layer_w.value = "blocks.1"
    assert channel_w.max == 23
    check()
