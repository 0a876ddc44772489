"""Novelty-detection experiment (seed 000, §3.2): partition, layer indexing, features, baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect_lab import load_model
from introspect_lab.experiments import novelty as nv
from introspect_lab.experiments import novelty_detectors as nd
from introspect_lab.models import MODELS, model_settings


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def digits():
    return nv.digits_data(48, per_class=12)


@pytest.mark.parametrize("n_classes", [10, 102, 7])
def test_partition_invariants(n_classes):
    rng = np.random.default_rng(n_classes)
    labels = rng.integers(0, n_classes, 1500)
    split = (rng.random(1500) < 0.3).astype(int)
    p = nv.partition(labels, split, seed=1)
    k = n_classes // 3
    # three even, disjoint class sets; the leftover classes are dropped
    assert len(p.s1) == len(p.s2) == len(p.s3) == k
    sets = [set(p.s1), set(p.s2), set(p.s3), set(p.dropped)]
    assert sum(map(len, sets)) == n_classes and len(set().union(*sets)) == n_classes
    # fine-tuning: S1 training images only; no image both fine-tunes and trains the detector
    assert set(labels[p.finetune]) <= set(p.s1) and (split[p.finetune] == 0).all()
    assert not set(p.finetune) & set(p.train)
    assert not set(p.train) & set(p.test)
    # detector training: S1 (seen) vs S2 (unseen), training split, balanced
    assert (split[p.train] == 0).all()
    assert set(labels[p.train][p.train_unseen == 0]) <= set(p.s1)
    assert set(labels[p.train][p.train_unseen == 1]) <= set(p.s2)
    assert (p.train_unseen == 0).sum() == (p.train_unseen == 1).sum() > 0
    # S1's training images are halved (per class, the halves differ by at most one image)
    for c in p.s1:
        n_ft = (labels[p.finetune] == c).sum()
        n_total = ((labels == c) & (split == 0)).sum()
        assert n_total // 2 == n_ft
    # test: every validation image of S1 and S3, nothing else
    expected = np.flatnonzero(np.isin(labels, p.s1 + p.s3) & (split == 1))
    assert np.array_equal(np.sort(p.test), expected)
    assert np.array_equal(p.test_unseen, np.isin(labels[p.test], p.s3).astype(int))


def test_partition_of_the_digits_stand_in(digits):
    assert digits.images.dtype == torch.uint8 and digits.images.shape[1:] == (3, 48, 48)
    p = nv.partition(digits.labels, digits.split)
    assert (len(p.s1), len(p.s2), len(p.s3), len(p.dropped)) == (3, 3, 3, 1)
    c = p.counts()
    assert c["train_seen"] == c["train_unseen"] and c["test_seen"] == c["test_unseen"] == 3 * 4


def test_layer_indexing_matches_the_paper_on_resnet18():
    model = load_model("resnet18", pretrained=False, verbose=False)
    names = nv.stages(model)
    children = [n for n, _ in model.named_children()]
    assert names[0] == "input" and names[1:] == children[: children.index("avgpool") + 1]
    assert names[6:10] == ["layer2", "layer3", "layer4", "avgpool"]
    assert nv.PAPER_LAYERS[1:] == tuple(names[1:])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_model_has_a_layer_mapping(name):
    assert len(model_settings(name).novelty_layers) == 9
    with torch.device("meta"):  # shapes only: builds VGG in milliseconds
        model = load_model(name, pretrained=False, verbose=False)
        names = nv.stages(model)  # resolves every name with get_layer
        feats = nv.layer_embeddings(
            model, torch.zeros(1, 3, 64, 64), names, max_side=8
        )  # AlexNet needs ≥ 64 px
    assert len(names) == len(nv.PAPER_LAYERS) == 10
    shapes = [tuple(feats[n].shape) for n in names]
    assert all(s[0] == 1 for s in shapes), "one row per image, also for a name listed twice"
    assert all(len(s) == 4 and max(s[2:]) <= 8 for s in shapes), shapes
    channels = [s[1] for s in shapes]
    assert channels[0] == 3 and channels[8] > channels[5], "layer 8 is the last conv stage"
    if name in ("resnet18", "efficientnet_lite0", "squeezenet1_1"):
        assert shapes[-1][2:] == (1, 1), "layer 9 is the global average pool"


def test_features_of_a_batch_equal_those_of_its_images_one_by_one(lite0, digits, unchanged):
    check = unchanged(lite0)
    x = digits.batch(lite0, [0, 5, 40])
    names = nv.stages(lite0)
    batch = nv.layer_embeddings(lite0, x, names, batch_size=3)
    single = nv.layer_embeddings(lite0, x, names, batch_size=1)
    for n in names:
        torch.testing.assert_close(batch[n], single[n], rtol=1e-4, atol=1e-4)
    check()


def test_feature_cache_hits_and_never_leaves_partial_files(lite0, digits, data_dir, monkeypatch):
    x = digits.batch(lite0, [1, 2])
    layers = ["input", "blocks.4", "pool"]
    first = nv.cached_layer_embeddings(lite0, x, layers)
    files = sorted((data_dir / "novelty_features").iterdir())
    assert len(files) == 3 and not [f for f in files if f.name.endswith(".part")]

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(nd, "layer_embeddings", boom)
    again = nv.cached_layer_embeddings(lite0, x, layers)
    for n in layers:
        assert torch.equal(first[n], again[n])
    monkeypatch.undo()
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(data_dir))

    def failing_save(obj, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        nv.cached_layer_embeddings(lite0, x, ["blocks.10"])
    assert len([f for f in (data_dir / "novelty_features").iterdir() if f.suffix == ".pt"]) == 3


def test_fine_tune_works_on_a_copy(lite0, digits, unchanged):
    check = unchanged(lite0)
    p = nv.partition(digits.labels, digits.split)
    net = nv.fine_tune(lite0, digits, p.finetune[:8], head_epochs=1, full_epochs=1, batch_size=4)
    check()
    assert net.backbone is not lite0 and not net.training
    assert any(not torch.equal(a, b) for a, b in zip(net.backbone.parameters(), lite0.parameters()))
    assert [phase for phase, _ in net.history] == ["head", "full"]


def test_msp_on_a_hand_made_case():
    logits = torch.tensor([[np.log(3.0), 0.0], [0.0, 0.0], [100.0, 0.0]])
    np.testing.assert_allclose(nv.msp_scores(logits), [0.25, 0.5, 0.0], atol=1e-12)


def test_mahalanobis_on_a_hand_made_case():
    # Two classes with the same spread: x ∈ {±1}, y ∈ {±2} around their means (0,0) and (10,0)
    # → shared covariance diag(0.5, 2).
    offsets = np.array([[1, 0], [-1, 0], [0, 2], [0, -2]], dtype=float)
    train = np.concatenate([offsets, offsets + [10, 0]])
    labels = np.repeat([0, 1], 4)
    test = np.array([[0, 2], [3, 0], [10, -1]])
    # (0,2): 0²/0.5 + 2²/2 = 2; (3,0): 3²/0.5 = 18 (class 0 is nearer than 7²/0.5); (10,-1): 1/2
    np.testing.assert_allclose(nv.mahalanobis_scores(train, labels, test, shrinkage=None), [2, 18, 0.5])
    # shrinkage ρ: Σ → (1−ρ)Σ + ρ·tr(Σ)/d·I = diag(0.875, 1.625) for ρ = 0.5
    np.testing.assert_allclose(
        nv.mahalanobis_scores(train, labels, test, shrinkage=0.5), [4 / 1.625, 9 / 0.875, 1 / 1.625]
    )
    lw = nv.mahalanobis_scores(train, labels, test)  # Ledoit–Wolf: between the two
    assert lw[1] > lw[0] and lw.shape == (3,)


@pytest.mark.parametrize("n", [30, 200])  # fewer images than features, and more
@pytest.mark.parametrize("shrinkage", [None, 0.3, "ledoit-wolf"])
def test_mahalanobis_without_forming_the_covariance_is_the_textbook_formula(n, shrinkage):
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(0)
    dim = 64
    train = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))  # correlated features
    labels = np.arange(n) % 3
    test = rng.normal(size=(7, dim)) * 3
    means = np.stack([train[labels == c].mean(0) for c in range(3)])
    centred = train - means[labels]
    cov = centred.T @ centred / n
    if shrinkage == "ledoit-wolf":
        cov = ledoit_wolf(centred, assume_centered=True)[0]
    elif shrinkage:
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / dim * np.eye(dim)
    prec = np.linalg.pinv(cov, hermitian=True)
    d = test[:, None] - means[None]
    want = np.einsum("mkd,de,mke->mk", d, prec, d).min(1)
    np.testing.assert_allclose(nv.mahalanobis_scores(train, labels, test, shrinkage), want, rtol=1e-7)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "oas"])
def test_mahalanobis_names_the_shrinkage_it_accepts(bad):
    with pytest.raises(ValueError, match="shrinkage must be None, 'ledoit-wolf' or a number"):
        nv.mahalanobis_scores(np.zeros((4, 2)), [0, 0, 1, 1], np.zeros((1, 2)), bad)


def test_metrics():
    y = np.array([0, 0, 1, 1])
    assert nv.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert nv.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert nv.detection_accuracy(y, [0.1, 0.6, 0.8, 0.4]) == 0.5


def test_detector_learns_a_separable_case():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, 2, 2, generator=gen)
    y = (x[:, 0].mean((1, 2)) > 0).long().numpy()
    for kind in ("fc", "conv"):
        det = nv.train_detector(kind, x, y, epochs=30)
        assert nv.auroc(y, nv.detector_scores(det, x)) > 0.95
    with pytest.raises(ValueError, match="'fc' or 'conv'"):
        nv.train_detector("svm", x, y)


def test_unknown_data_and_model_errors():
    with pytest.raises(ValueError, match="'auto', 'flowers102' or 'digits'"):
        nv.load_data("mnist")
    with pytest.raises(ValueError, match="not a registry model"):
        nv.stages(torch.nn.Linear(2, 2))


def test_flowers_path_reads_a_cached_flowers102(data_dir, monkeypatch):
    """A fake Flowers 102 cache in torchvision's layout: ``load_data("auto")`` must pick it up."""
    from PIL import Image
    from scipy.io import savemat
    from torchvision.datasets import Flowers102

    from introspect_lab.datasets import dataset_path

    root = dataset_path("flowers102")
    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    labels = np.repeat(np.arange(1, 7), 4)  # 6 classes (1-based in the .mat), 4 images each
    for i, lab in enumerate(labels, 1):
        Image.new("RGB", (30, 20), (40 * int(lab), 0, 0)).save(base / "jpg" / f"image_{i:05d}.jpg")
    ids = np.arange(1, 25)
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(base / "setid.mat", {"trnid": ids[0::2], "valid": ids[1::2], "tstid": ids[:2]})
    (root / ".complete").write_text("{}")
    monkeypatch.setattr(
        Flowers102, "_check_integrity", lambda self: True
    )  # the fake .mat files have other MD5s
    data = nv.load_data("auto", size=16)
    assert data.name == "flowers102" and not data.stand_in
    assert data.images.shape == (24, 3, 16, 16)
    assert sorted(np.unique(data.labels)) == list(range(6))
    assert (data.split == 0).sum() == (data.split == 1).sum() == 12
    red = data.images[:, 0].float().mean((1, 2)).numpy()
    assert np.allclose(red, 40 * (data.labels + 1), atol=3), "each image carries its own label"
    p = nv.partition(data.labels, data.split)
    assert len(p.s1) == len(p.s2) == len(p.s3) == 2 and len(p.test) == 8
