"""introspect_lab.experiments.style_shift: the score, the protocol, f_θ batched, CMA-ES, results files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from introspect_lab.datasets import DATASETS, IMAGENETTE_CLASSES, IMAGEWOOF_CLASSES
from introspect_lab.experiments import style_shift as S
from introspect_lab.experiments import style_shift_run as SR
from introspect_lab.experiments import style_shift_tuning as T
from introspect_lab.models import MODELS, get_layer, imagenet_categories, load_model
from introspect_lab.synthesis import layer_features
from introspect_lab.synthesis import objectives as O
from introspect_lab.synthesis import priors as R
from introspect_lab.synthesis.objectives import gram
from introspect_lab.texture.gatys import style_targets

# ---------------------------------------------------------------------------
# ordinal_rank on hand-made logits
# ---------------------------------------------------------------------------


def test_ordinal_rank_hand_made_with_ties():
    logits = torch.tensor([[3.0, 1.0, 3.0, 0.0, 2.0]])
    # class 0 ties with class 2 at the top: ties count in the image's favour -> rank 1
    assert S.ordinal_rank(logits, 0).tolist() == [1]
    assert S.ordinal_rank(logits, 2).tolist() == [1]
    assert S.ordinal_rank(logits, 4).tolist() == [3]  # 3, 3 above it
    assert S.ordinal_rank(logits, 1).tolist() == [4]
    assert S.ordinal_rank(logits, 3).tolist() == [5]  # the last of five


def test_ordinal_rank_per_image_targets_and_all_equal():
    logits = torch.tensor([[0.0, 5.0, 1.0], [2.0, 2.0, 2.0]])
    assert S.ordinal_rank(logits, torch.tensor([2, 1])).tolist() == [2, 1]
    assert S.ordinal_rank(logits, [0, 0]).tolist() == [3, 1]
    assert S.ordinal_rank(logits[0], 1).tolist() == [1]  # one image as [C]


def test_ordinal_rank_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="one per image"):
        S.ordinal_rank(torch.zeros(2, 3), [0, 1, 2])
    with pytest.raises(ValueError, match="0..2"):
        S.ordinal_rank(torch.zeros(2, 3), 3)


# ---------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------


def _fake_data(n_classes=10, per_class=4, size=16):
    labels = np.repeat(np.arange(100, 100 + n_classes), per_class)
    return S.ClassImages(
        torch.rand(len(labels), 3, size, size),
        labels,
        {int(c): f"class {c}" for c in set(labels)},
        "fake",
        "fake",
        "none",
    )


@pytest.mark.parametrize("seed", range(5))
def test_protocol_picks_the_right_class_relation(seed):
    data = _fake_data()
    rng = np.random.default_rng(seed)
    classes = data.classes[:6]
    for rel in ("intra", "inter"):
        pairs = S.sample_pairs(data, classes, rel, rng, n_images=5, n_batches=3)
        assert len(pairs) == 15
        for k in range(3):  # each batch: 5 images from 5 different classes
            batch = pairs[5 * k : 5 * k + 5]
            assert len({int(data.labels[p.source]) for p in batch}) == 5
        for p in pairs:
            src_c, sty_c = int(data.labels[p.source]), int(data.labels[p.style])
            assert p.target == sty_c and src_c in classes and sty_c in classes
            if rel == "intra":
                assert sty_c == src_c and p.style != p.source
            else:
                assert sty_c != src_c


def test_train_and_test_classes_are_disjoint():
    classes = list(range(200, 210))
    for seed in range(20):
        train, test = S.split_classes(classes, 5, seed)
        assert len(train) == len(test) == 5
        assert not set(train) & set(test) and set(train) | set(test) == set(classes)
    assert S.split_classes(classes, 5, 0) == S.split_classes(classes, 5, 0)
    with pytest.raises(ValueError, match="n_train"):
        S.split_classes(classes, 10)


# ---------------------------------------------------------------------------
# Per-image weights of the objectives (what the batched f_θ is built on)
# ---------------------------------------------------------------------------


def test_per_image_weights_equal_separate_losses():
    torch.manual_seed(0)
    a, t = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    w = torch.tensor([0.5, 0.0, 2.0])
    ctx = O.Context({"l": a}, image=a[:, :3], input=a[:, :3])
    gt = gram(t)
    for make in (
        lambda y, ww: O.gram_loss("l", gram(y), weight=ww),
        lambda y, ww: O.content_loss("l", y, weight=ww),
    ):
        batched = make(t, w)(ctx)
        parts = [make(t[i : i + 1], None)(O.Context({"l": a[i : i + 1]}, image=a, input=a)) for i in range(3)]
        assert torch.allclose(batched, sum(wi * p for wi, p in zip(w, parts)))
    assert torch.allclose(O.gram_loss("l", gt)(ctx), O.gram_loss("l", gt, weight=torch.ones(3))(ctx))
    img = torch.randn(3, 3, 6, 6)
    per = torch.stack([R.total_variation(img[i : i + 1]) for i in range(3)])
    assert torch.allclose(R.total_variation(img, weight=w), (per * w).sum())
    with pytest.raises(ValueError, match="per-image weights"):
        O.content_loss("l", t, weight=torch.ones(2))(ctx)


# ---------------------------------------------------------------------------
# f_θ batched vs sequential
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in(lite0):
    return S.stand_in_images(lite0, per_class=3, size=64)


def test_stand_in_labels_are_the_models_own_and_distinct(lite0, stand_in):
    assert len(stand_in.classes) == 10 and stand_in.data == "stand-in"
    assert set(np.bincount(stand_in.labels)[stand_in.classes]) == {3}
    cats = imagenet_categories()
    assert "Egyptian cat" in stand_in.names.values() and "espresso" in stand_in.names.values()
    assert all(cats[c] == n for c, n in stand_in.names.items())
    assert "another crop of the same photo" in stand_in.limits


def test_batched_and_sequential_evaluation_agree(lite0, stand_in, unchanged):
    """One batch of 2 candidates × 3 pairs vs 6 separate runs: images within 1e-3, ranks within 2 places."""
    check = unchanged(lite0)
    rng = np.random.default_rng(0)
    pairs = S.sample_pairs(stand_in, stand_in.classes, "inter", rng, n_images=3)
    u = S.untuned_theta(lite0)
    thetas = [
        S.Theta(u.style_weights, u.content_weight, u.tv, u.lr, 2),
        S.Theta((10.0, 0.1, 1.0, 3.0), 1e-3, 1e-4, 0.2, 4),
    ]
    batched = S.transfer_ranks(lite0, stand_in, pairs, [None, *thetas])
    seq = np.array(
        [[S.transfer_ranks(lite0, stand_in, [p], [t])[0, 0] for p in pairs] for t in [None, *thetas]]
    )
    assert np.abs(batched - seq).max() <= 2, (batched, seq)
    # the images themselves
    src = S.normalize(stand_in.images[[p.source for p in pairs]], lite0)
    _, layers = S.style_layers(lite0)
    feats = layer_features(lite0, S.normalize(stand_in.images[[p.style for p in pairs]], lite0), list(layers))
    grams = {n: gram(f) for n, f in feats.items()}
    many = S.f_theta(
        lite0,
        src.repeat(2, 1, 1, 1),
        {n: g.repeat(2, 1, 1) for n, g in grams.items()},
        [t for t in thetas for _ in pairs],
    )
    one = S.f_theta(lite0, src[1:2], {n: g[1:2] for n, g in grams.items()}, [thetas[1]])
    assert (many[4] - one[0]).abs().max() < 1e-3
    assert (many[0] - src[0]).abs().max() > 1e-3  # it did change the image
    lo, hi = S.normalize(torch.zeros(1, 3, 1, 1), lite0), S.normalize(torch.ones(1, 3, 1, 1), lite0)
    assert (many >= lo - 1e-6).all() and (many <= hi + 1e-6).all()  # valid pixels
    check()


# ---------------------------------------------------------------------------
# CMA-ES
# ---------------------------------------------------------------------------


def _toy_objective(thetas):
    """A seeded problem with a known optimum: log10 lr = -1.5, steps = 20, content weight 1e-1."""
    return [
        (np.log10(t.lr) + 1.5) ** 2 + ((t.steps - 20) / 10) ** 2 + (np.log10(t.content_weight) + 1) ** 2
        for t in thetas
    ]


def test_cmaes_lowers_the_objective_and_resumes(tmp_path):
    start = S.Theta((1.0, 1.0), 1e-3, 1e-5, 0.001, 8)
    start_loss = _toy_objective([start])[0]
    full = S.tune(_toy_objective, start, generations=12, popsize=6, seed=0)
    assert full["best_loss"] < 0.2 * start_loss
    assert full["history"][-1]["best_loss"] < full["history"][0]["best_loss"]
    # resumable: 5 generations, then continue to 12 from the saved state
    state = tmp_path / "cma.pkl"
    part = S.tune(_toy_objective, start, generations=5, popsize=6, seed=0, state_path=state)
    assert state.is_file() and len(part["history"]) == 5
    resumed = S.tune(_toy_objective, start, generations=12, popsize=6, seed=0, state_path=state)
    assert len(resumed["history"]) == 12 and resumed["history"][:5] == part["history"]
    assert resumed["best_loss"] == pytest.approx(full["best_loss"])


def test_theta_encoding_round_trips():
    t = S.Theta((3e5, 1e3, 15.0, 3.0), 6e-2, 2e-2, 0.05, 20)
    back = T._decode(T._encode(t))
    assert back.steps == 20 and np.allclose(back.style_weights, t.style_weights)
    assert np.isclose(back.lr, t.lr) and np.isclose(back.tv, t.tv)
    assert S.Theta.from_dict(t.to_dict()) == t


# ---------------------------------------------------------------------------
# Results files and Table 1
# ---------------------------------------------------------------------------


def _fake_results():
    cell = lambda m: [m, m - 1.0, m + 1.0]  # noqa: E731
    row = lambda a, b, c, d, paper: {  # noqa: E731
        "n_pairs": 6,
        "n_source_photos": 5,
        "mean": {"no_transfer": cell(a), "untuned": cell(b), "tuned": cell(c), "random": cell(d)},
        "paper": list(paper),
    }
    return {
        "table1": {
            k: row(10.0 + i, 20.0 + i, 5.0 + i, 7.0, p) for i, (k, p) in enumerate(S.PAPER_TABLE1.items())
        },
        "command": "python -m x",
    }


def test_results_file_round_trips(tmp_path):
    res = _fake_results()
    path = SR.save_results(tmp_path / "sub" / "r.json", res)
    back = SR.load_results(path)
    assert back == res and not list(path.parent.glob("*.part"))
    table = SR.table1(back).splitlines()
    assert table[2].split()[:4] == ["intra-class", "train", "6/5", "10.0"] and "[9.0, 11.0]" in table[2]
    assert table[5].rstrip().endswith("590.1 / 459.2 / 29.8") and "8.0 [7.0, 9.0]" in table[5]


def test_search_box_holds_every_models_own_lr_and_the_population_is_cma_default():
    assert [T.default_popsize(n) for n in (2, 8, 9)] == [6, 10, 10]
    for name in MODELS:
        start = S.untuned_theta(name)
        lo, hi = T.search_box(start)
        x0 = T._encode(start)
        assert all(a <= x <= b for a, x, b in zip(lo, x0, hi)), name  # SqueezeNet's lr 3.0 included


def test_random_search_spends_exactly_its_budget_inside_the_box():
    seen = []

    def objective(thetas):
        seen.extend(thetas)
        return [t.lr for t in thetas]

    start = S.Theta((1.0, 1.0), 0.1, 0.01, 0.1, 10)
    out = T.random_search(objective, start, evaluations=23, batch=10, seed=0)
    lo, hi = T.search_box(start)
    assert len(seen) == 23 and out["settings"]["evaluations"] == 23
    assert all(10 ** lo[-2] <= t.lr <= 10 ** hi[-2] for t in seen)
    assert out["best"].lr == min(t.lr for t in seen)


def test_lr_drop_acts_after_each_samples_own_steps(lite0):
    x = torch.rand(2, 3, 32, 32) * 0.2 + 0.4
    src = S.normalize(x, lite0)
    _, layers = S.style_layers(lite0)
    grams = style_targets(lite0, S.normalize(torch.rand(1, 3, 32, 32), lite0), layers)
    grams = {n: g.repeat(2, 1, 1) for n, g in grams.items()}
    th = lambda steps: S.Theta((1.0,) * len(layers), 1e-3, 6e-4, 0.05, steps)  # noqa: E731
    # a drop to 0 after half of each sample's steps = stopping there
    dropped = S.f_theta(lite0, src, grams, [th(4), th(8)], lr_drop=(0.5, 0.0))
    short = S.f_theta(lite0, src, grams, [th(2), th(4)])
    torch.testing.assert_close(dropped, short)
    assert not torch.allclose(dropped, S.f_theta(lite0, src, grams, [th(4), th(8)]))


# ---------------------------------------------------------------------------
# Layers of every registry model; the real-data path
# ---------------------------------------------------------------------------


def test_style_layers_exist_in_every_registry_model():
    """The experiment reads each registry model's style settings; every name resolves in its architecture."""
    for name in MODELS:
        with torch.device("meta"):
            model = load_model(name, pretrained=False, verbose=False)
        content, layers = S.style_layers(model)
        assert (content, layers) == S.style_layers(name)
        for layer in (content, *layers):
            get_layer(model, layer)
        assert len(S.untuned_theta(name).style_weights) == len(layers)


@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet18", "alexnet"])
def test_f_theta_runs_on_other_architectures(name):
    model = load_model(name, pretrained=False, verbose=False)
    src = torch.randn(2, 3, 64, 64) * 0.5
    _, layers = S.style_layers(model)
    feats = layer_features(model, torch.randn(2, 3, 64, 64), list(layers))
    out = S.f_theta(model, src, {n: gram(f) for n, f in feats.items()}, [S.untuned_theta(name).capped(2)] * 2)
    assert out.shape == src.shape and not torch.equal(out, src)


def test_wordnet_indices_match_torchvision_names():
    cats = imagenet_categories()
    for table in (IMAGEWOOF_CLASSES, IMAGENETTE_CLASSES):
        for idx, name in table.values():
            assert cats[idx] == name


def test_real_data_path_reads_a_cached_imagewoof(tmp_path, monkeypatch, lite0):
    """A tiny fake Imagewoof in the cache layout goes through the registry; labels are ImageNet indices."""
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    spec = DATASETS["imagewoof"]
    rng = np.random.default_rng(0)
    for wnid in spec.classes:
        folder = tmp_path / "imagewoof" / spec.root / "val" / wnid
        folder.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"im{k}.JPEG")
    (tmp_path / "imagewoof" / ".complete").write_text("{}")
    data = S.load_images(lite0, "auto", per_class=2, size=32)
    assert data.data == "imagewoof" and data.images.shape == (20, 3, 32, 32)
    assert data.classes == sorted(idx for idx, _ in spec.classes.values())
    assert {data.names[c] for c in data.classes} == {n for _, n in spec.classes.values()}
    train, test = S.split_classes(data.classes, 5, 0)
    pairs = S.sample_pairs(data, test, "inter", np.random.default_rng(0))
    assert all(p.target in test and data.labels[p.style] == p.target for p in pairs)
    with pytest.raises(ValueError, match="stand-in"):
        S.load_images(lite0, "imagewof")


def test_class_gram_normalised_averaging(lite0, stand_in):
    x = S.normalize(stand_in.images[stand_in.of_class(stand_in.classes[0])], lite0)
    _, layers = S.style_layers(lite0)
    single = {n: gram(f) for n, f in layers_features(lite0, x, layers).items()}
    plain = S.class_gram(lite0, x, layers, normalized=False)
    norm = S.class_gram(lite0, x, layers, normalized=True)
    for n in layers:
        assert torch.allclose(plain[n][0], single[n].mean(0), rtol=1e-4)
        norms = single[n].flatten(1).norm(dim=1)
        assert torch.allclose(
            norm[n].norm(), (single[n] / norms.view(-1, 1, 1)).mean(0).norm() * norms.mean()
        )
    # one exemplar: both statistics are that exemplar's Gram
    one = S.class_gram(lite0, x[:1], layers, normalized=True)
    assert all((one[n][0] - single[n][0]).abs().max() <= 1e-4 * single[n][0].abs().max() for n in layers)


def layers_features(model, x, layers):
    return layer_features(model, x, list(layers))


def test_rerank_before_is_the_models_own_ranking(lite0, stand_in):
    u = S.untuned_theta(lite0).capped(2)
    sources = [0, 5, 13]
    out = S.rerank(lite0, stand_in, sources, u, k=3)
    logits = S.logits(lite0, S.normalize(stand_in.images[sources], lite0))
    classes = torch.tensor(stand_in.classes)
    own = classes[logits[:, classes].argmax(1)]
    assert out["top1"]["before"] == pytest.approx(
        float((own == torch.tensor(stand_in.labels[sources])).float().mean())
    )
    assert out["k"] == 3 and out["n_sources"] == 3 and set(out["top1"]) == {"before", "after", "gain"}
