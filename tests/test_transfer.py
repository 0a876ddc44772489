"""Transfer learning: offline tasks, feature extraction vs fine-tuning, BatchNorm handling, probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect_lab import transfer as T
from introspect_lab.hooks import count_hooks
from introspect_lab.transfer import finetune
from introspect_lab.transfer.training import correct


@pytest.fixture(scope="module")
def digits48():
    return T.digits(48)


def test_offline_tasks_are_images_in_the_unit_range():
    d, f, s = T.digits(32), T.faces(32), T.synthetic_shapes(per_class=3, size=16)
    assert d.images.shape == (1797, 3, 32, 32) and len(d.classes) == 10
    assert f.images.shape == (200, 3, 32, 32) and f.labels.sum() == 100
    assert s.images.shape == (30, 3, 16, 16) and s.labels.bincount().tolist() == [3] * 10
    for t in (d, f, s):
        assert 0 <= t.images.min() and t.images.max() <= 1
    # shapes differ from class to class: class-mean images are not all alike
    means = torch.stack([s.images[s.labels == c].mean(0) for c in range(10)]).flatten(1)
    assert torch.cdist(means, means)[~torch.eye(10, dtype=bool)].min() > 0.5


def test_val_test_split_halves_the_held_out_set_stratified():
    y = np.repeat(np.arange(4), 20)
    tr, rest = T.per_class_split(y, 6, seed=0)
    va, te = T.val_test_split(y, rest, seed=0)
    assert len(np.intersect1d(va, te)) == 0 and sorted(np.r_[va, te].tolist()) == sorted(rest.tolist())
    assert np.bincount(y[va]).tolist() == np.bincount(y[te]).tolist() == [7, 7, 7, 7]


def test_faces_at_a_lower_source_resolution_lose_detail():
    full, low = T.faces(32), T.faces(32, source_size=8)
    assert low.images.shape == full.images.shape and "8×8" in low.description
    # an 8 px source blown up to 32 px is smoother: smaller differences between neighbouring pixels
    assert low.images.diff(dim=-1).abs().mean() < 0.6 * full.images.diff(dim=-1).abs().mean()


def test_per_class_split_counts_and_errors():
    y = np.repeat(np.arange(3), 10)
    tr, te = T.per_class_split(y, 4, seed=1)
    assert np.bincount(y[tr]).tolist() == [4, 4, 4]
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 30
    tr, te = T.per_class_split(y, 4, test_size=9)
    assert len(te) == 9 and np.bincount(y[te]).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="n_per_class must be below"):
        T.per_class_split(y, 10)
    with pytest.raises(ValueError, match="n_per_class"):
        T.per_class_split(y, 0)


def test_feature_extraction_and_fine_tuning_beat_chance_widely(lite0, digits48, unchanged):
    check = unchanged(lite0)
    y = digits48.labels.numpy()
    tr, te = T.per_class_split(y, 10, seed=0, test_size=300)
    x = digits48.batch(lite0)
    fe, h_fe = T.feature_extraction(
        lite0, x[tr], y[tr], digits48.classes, epochs=30, x_val=x[te], labels_val=y[te]
    )
    ft, h_ft = T.fine_tune(
        lite0, x[tr], y[tr], digits48.classes, epochs=4, head_epochs=30, x_val=x[te], labels_val=y[te]
    )
    check()
    assert count_hooks(lite0) == 0
    # measured (48 px, 10 per class, chance 0.10): feature extraction 0.80, fine-tuning 0.74
    assert h_fe.final > 0.5 and h_ft.final > 0.5, (h_fe.final, h_ft.final)
    assert ft.trainable == ["blocks.15", "head"]
    assert h_ft.epoch == [30, 31, 32, 33, 34] and h_ft.val_acc[0] == pytest.approx(h_fe.final)
    # the returned models predict what their curves say
    with torch.no_grad():
        assert (fe(x[te]).argmax(1).numpy() == y[te]).mean() == pytest.approx(h_fe.final)


def test_fine_tuning_from_a_feature_extraction_start_is_fine_tuning_from_scratch(lite0, digits48):
    y = digits48.labels.numpy()
    tr, te = T.per_class_split(y, 3, seed=0, test_size=30)
    x = digits48.batch(lite0)
    val = dict(x_val=x[te], labels_val=y[te])
    fe, h_fe = T.feature_extraction(lite0, x[tr], y[tr], digits48.classes, epochs=3, **val)
    kept = {k: v.clone() for k, v in fe.state_dict().items()}
    a, h_a = T.fine_tune(lite0, x[tr], y[tr], digits48.classes, epochs=1, head_epochs=3, **val)
    b, h_b = T.fine_tune(lite0, x[tr], y[tr], digits48.classes, epochs=1, start=(fe, h_fe), **val)
    with torch.no_grad():
        assert torch.allclose(a(x[te]), b(x[te]), atol=1e-5)
        assert not torch.allclose(fe(x[te]), b(x[te]), atol=1e-5)  # it did fine-tune
    assert h_a.epoch == h_b.epoch == [3, 4] and h_a.val_acc == pytest.approx(h_b.val_acc)
    assert all(torch.equal(kept[k], v) for k, v in fe.state_dict().items())  # start is not changed
    with pytest.raises(ValueError, match=r"start must be the \(model, history\) pair"):
        T.fine_tune(lite0, x[tr], y[tr], digits48.classes, start=fe)
    with pytest.raises(ValueError, match="run feature_extraction on this model and task first"):
        T.fine_tune(lite0, x[tr], y[tr], list("abcdefghij"), start=(fe, h_fe))
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 48 * 48, 10))
    with pytest.raises(ValueError, match="not from this Sequential"):
        T.fine_tune(other, x[tr], y[tr], digits48.classes, start=(fe, h_fe))
    with pytest.raises(ValueError, match="leave layer out"):
        T.fine_tune(lite0, x[tr], y[tr], digits48.classes, layer="blocks.3", start=(fe, h_fe))


def test_faces_transfer_beats_chance_widely(lite0):
    task = T.faces(48)
    y = task.labels.numpy()
    tr, te = T.per_class_split(y, 10, seed=0)
    _, h = T.feature_extraction(
        lite0,
        task.batch(lite0, tr),
        y[tr],
        task.classes,
        epochs=30,
        x_val=task.batch(lite0, te),
        labels_val=y[te],
    )
    # measured (48 px, 10 per class, chance 0.5): 0.99
    assert h.final > 0.75


def _bn_stats(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_batchnorm_frozen_for_features_and_as_stated_for_fine_tuning(lite0, digits48):
    y = digits48.labels.numpy()
    tr = T.per_class_split(y, 2, seed=0)[0]
    x = digits48.batch(lite0, tr)
    before = _bn_stats(lite0)
    fe, _ = T.feature_extraction(lite0, x, y[tr], digits48.classes, epochs=2)
    assert all(torch.equal(before[k], v) for k, v in _bn_stats(fe.backbone).items())
    fe.train()
    assert not any(m.training for m in fe.backbone.modules())
    for bn, should_change in (("frozen", False), ("train", True)):
        ft, _ = T.fine_tune(lite0, x, y[tr], digits48.classes, epochs=1, head_epochs=1, bn=bn)
        after = _bn_stats(ft.backbone)
        changed = {k for k in after if not torch.equal(before[k], after[k])}
        assert bool(changed) == should_change, (bn, sorted(changed)[:3])
        # only the retrained stages (blocks.15, head) may move; everything below keeps ImageNet's statistics
        assert all(k.startswith(("blocks.15.", "head.")) for k in changed)
    with pytest.raises(ValueError, match="bn must be"):
        T.fine_tune(lite0, x, y[tr], digits48.classes, bn="update")


def test_layer_probes_and_linear_probe(lite0, digits48):
    sub = T.per_class_split(digits48.labels.numpy(), 12, seed=0)[0]
    x, y = digits48.batch(lite0, sub), digits48.labels.numpy()[sub]
    res = T.layer_probes(lite0, x, y, [4], layers=["stem", "blocks.8", "head"])
    pr = res[4]
    assert set(res) == {4} and list(pr.test) == list(pr.val) == ["stem", "blocks.8", "head"]
    assert all(0.1 < a <= 1 for a in pr.test.values())
    # the best layer is chosen on the validation split, not on the reported test split
    assert pr.best == max(pr.val, key=pr.val.get)
    assert pr.test["head"] == pytest.approx(np.mean([h.mean() for h in pr.hits["head"]]))
    n_held_out = len(y) - 4 * 10
    assert len(pr.hits["head"][0]) in (n_held_out // 2, n_held_out - n_held_out // 2)
    assert pr.gap("head").mean == pytest.approx(pr.test[pr.best] - pr.test["head"])
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    labels = (f[:, 0] > 0).astype(int)
    f[:, 0] += 2 * (2 * labels - 1)  # a clear margin along the first feature
    assert T.linear_probe(f[:20], labels[:20], f[20:], labels[20:]) == 1.0


def test_train_checks_its_input():
    model = T.small_cnn(size=16)
    with pytest.raises(ValueError, match="one label per image"):
        T.train(model, torch.zeros(4, 3, 16, 16), [0, 1, 2])
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        T.train(model, torch.zeros(4, 3, 16, 16), [0, 1, 2, 3])


def test_examples_per_class_reports_the_difference_with_its_interval(lite0, monkeypatch):
    task = T.digits(32)
    rows = T.examples_per_class(lite0, task, [2], epochs=1, head_epochs=3, test_size=60)
    d = rows["difference"][0]
    assert d.mean == pytest.approx(rows["fine-tuning"][0] - rows["feature extraction"][0])
    assert d.low <= d.mean <= d.high and (d.a, d.b) == ("fine-tuning", "feature extraction")
    # the two methods are feature_extraction and fine_tune themselves, on the same split (fine-tuning
    # starts from the feature-extraction head instead of training the same head twice): the models scored
    # inside give the outputs of the two functions' models
    scored = []

    def keep(model, x, labels):
        with torch.no_grad():
            scored.append(model(x))
        return correct(model, x, labels)

    monkeypatch.setattr(finetune, "correct", keep)
    T.examples_per_class(lite0, task, [2], epochs=1, head_epochs=3, test_size=60)
    monkeypatch.undo()
    y = task.labels.numpy()
    tr, te = T.per_class_split(y, 2, seed=0, test_size=60)
    x = task.batch(lite0)
    fe, _ = T.feature_extraction(lite0, x[tr], y[tr], task.classes, epochs=3)
    ft, _ = T.fine_tune(lite0, x[tr], y[tr], task.classes, epochs=1, head_epochs=3)
    with torch.no_grad():
        assert torch.allclose(scored[0], fe(x[te]), atol=1e-5)
        assert torch.allclose(scored[1], ft(x[te]), atol=1e-5)
        assert not torch.allclose(scored[0], scored[1], atol=1e-5)  # fine-tuning changed the model
