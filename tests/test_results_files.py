"""The committed results files cannot go stale: settings recorded, θ as the code gives it, a slice recomputed.

Each file under data/results is checked against today's code. Tolerances are what a recompute
varies by across machines, measured: on the CPU that made the files, a style-shift row recomputed in
the batch the run used (all its pairs, all four columns) gave the stored ranks exactly, and the
novelty slice reproduced exactly. On another CPU (AMD EPYC, same torch 2.14.1) float sums differ in
the last bits and the optimisations drift: the column without transfer (no optimisation) stays
exact, a transferred pair's rank moves by up to a factor 1.6 (``(rank+1)`` 7 → 11, 136 → 170);
the novelty network's head phase stays exact to the stored 4 decimals, the full fine-tuning loss
moves by up to 0.003 and the AUROCs by up to 0.004. So: ranks within a factor 2 of ``rank+1``
(a stale θ moves them by factors of 10–100), head-phase losses within 1e-3, the rest within 0.01.
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import numpy as np
import pytest

from introspect_lab import load_model
from introspect_lab.experiments import novelty as nv
from introspect_lab.experiments import novelty_run as NR
from introspect_lab.experiments import style_shift_run as R
from introspect_lab.experiments.class_images import Pair, load_images
from introspect_lab.experiments.style_shift import style_layers, transfer_ranks
from introspect_lab.experiments.style_shift_tuning import Theta, untuned_theta


def check_style_shift_settings(res: dict, model) -> None:
    """Every setting recorded, and the stored untuned θ and layers are what the code gives today."""
    assert set(R.RUN_DEFAULTS) <= set(res["config"]), "a run setting is not recorded"
    assert res["theta"]["untuned"] == untuned_theta(model).capped(res["config"]["steps_max"]).to_dict()
    assert [res["layers"]["content"], tuple(res["layers"]["style"])] == [
        *style_layers(model)[:1],
        style_layers(model)[1],
    ]
    for fold in res["folds"]:
        for rel in ("intra", "inter"):
            cma = fold["tuning"][rel]["cmaes"]
            assert {"sigma0", "popsize", "bounds", "evaluations", "steps_range"} <= set(cma)
            assert fold["tuning"][rel]["random"]["evaluations"] == cma["evaluations"]
    for key in ("command", "model", "image_size", "frozen_bn", "torch_version", "threads"):
        assert key in res, f"{key} is not recorded"


def check_style_shift_slice(res: dict, model, data, key: str = "inter/train") -> None:
    """Recompute fold 1's row ``key`` as the run did (all its pairs, the four columns in one call)."""
    row = res["folds"][0]["rows"][key]
    theta = res["folds"][0]["theta"][key.split("/")[0]]
    pairs = [Pair(**p) for p in row["pairs"]]
    thetas = [
        None,
        Theta.from_dict(res["theta"]["untuned"]),
        Theta.from_dict(theta["tuned"]),
        Theta.from_dict(theta["random"]),
    ]
    got = transfer_ranks(model, data, pairs, thetas, lr_drop=res["config"]["lr_drop"])
    for k, col in enumerate(R.COLUMNS):
        want = np.asarray(row["ranks"][col])
        ratio = (np.asarray(got[k]) + 1) / (want + 1)
        ok = (ratio == 1).all() if col == "no_transfer" else ((ratio >= 0.5) & (ratio <= 2)).all()
        assert ok, f"{key} {col}: recomputed {got[k].tolist()}, stored {want.tolist()}"


@pytest.fixture(scope="module")
def style_shift():
    res = R.load_results()
    model = load_model(res["model"], verbose=False)
    data = load_images(
        model, res["data"]["name"], per_class=res["config"]["per_class"], size=res["image_size"]
    )
    return res, model, data


def test_style_shift_file_records_every_setting_and_todays_theta(style_shift):
    res, model, data = style_shift
    check_style_shift_settings(res, model)
    assert res["classes"]["names"] == {str(c): data.names[c] for c in data.classes}
    assert res["data"]["description"] == data.description and res["data"]["limits"] == data.limits
    bad = copy.deepcopy(res)  # a stored setting altered: the check must notice
    bad["theta"]["untuned"]["tv"] *= 10
    with pytest.raises(AssertionError):
        check_style_shift_settings(bad, model)


def test_style_shift_file_slice_recomputes(style_shift):
    res, model, data = style_shift
    check_style_shift_slice(res, model, data)


def check_novelty_settings(res: dict, model) -> None:
    s = nv.stand_in_settings()
    s.model, s.data = res["settings"]["model"], res["settings"]["data"]
    stored = {k: (tuple(v) if isinstance(v, list) else v) for k, v in res["settings"].items()}
    assert stored == {k: (tuple(v) if isinstance(v, list) else v) for k, v in asdict(s).items()}
    assert [n for _, _, n in res["model"]["layers"]] == nv.stages(model)
    assert len(res["partitions"]) == s.partitions >= 5


def check_novelty_slice(res: dict, model, layer: int = 6) -> None:
    """Partition 1, Figure 4 network, one layer: FC detector's test AUROC and MSP recomputed."""
    s = nv.NoveltySettings(**{**res["settings"], "figure4": tuple(res["settings"]["figure4"])})
    data = nv.load_data(s.data, s.size, per_class=s.per_class)
    part = nv.partition(data.labels, data.split, s.seed)
    net = nv.fine_tune(
        model,
        data,
        part.finetune,
        head_epochs=s.figure4[0],
        full_epochs=s.figure4[1],
        seed=s.seed,
        freeze_bn=s.freeze_bn,
        batch_size=s.batch_size,
    )
    got = NR.evaluate_partition(net, part, data, nv.stages(model), [layer], ("fc",), s, s.seed)
    want = res["figure4"]["partitions"][0]
    losses = [[ph, round(v, 4)] for ph, v in net.history]
    assert [ph for ph, _ in losses] == [ph for ph, _ in want["finetune_loss"]]
    for (ph, v), (_, w) in zip(losses, want["finetune_loss"]):
        assert abs(v - w) <= (1e-3 if ph == "head" else 0.01), f"fine-tuning loss {losses} != {want}"
    assert abs(got["fc"]["test_auroc"][0] - want["fc"]["test_auroc"][layer]) <= 0.01
    assert abs(got["fc"]["select_auroc"][0] - want["fc"]["select_auroc"][layer]) <= 0.01
    assert abs(got["msp_auroc"] - want["msp_auroc"]) <= 0.01


@pytest.fixture(scope="module")
def novelty():
    res = NR.load_results()
    return res, load_model(res["model"]["ran"], verbose=False)


def test_novelty_file_records_every_setting(novelty, tmp_path, monkeypatch):
    res, model = novelty
    check_novelty_settings(res, model)
    bad = copy.deepcopy(res)
    bad["settings"]["detector_epochs"] += 1
    with pytest.raises(AssertionError):
        check_novelty_settings(bad, model)


def test_novelty_file_slice_recomputes(novelty, tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))  # no feature cache from elsewhere
    res, model = novelty
    check_novelty_slice(res, model)
