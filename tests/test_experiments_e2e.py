"""Both paper experiments end to end through run()/main() on small fake caches in torchvision's layout.

Random-weight SqueezeNet 1.1 (style shift) and ResNet-18 (novelty), as a networked machine would run
them; the tests check what the real path promises: image size, classes, partition, recorded settings.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from introspect_lab import load_model
from introspect_lab.datasets import DATASETS, dataset_path
from introspect_lab.experiments import novelty as nv
from introspect_lab.experiments import novelty_run as NR
from introspect_lab.experiments import style_shift_run as R
from introspect_lab.experiments.class_images import ClassImages, load_images


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    return tmp_path


def _fake_imagenette(root, per_class=3):
    """Imagenette's layout: <root>/<spec.root>/val/<wnid>/*.JPEG, each class its own colour."""
    spec = DATASETS["imagenette"]
    rng = np.random.default_rng(0)
    for k, wnid in enumerate(sorted(spec.classes)):
        folder = root / "imagenette" / spec.root / "val" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            im = rng.integers(0, 60, (250, 230, 3)) + np.array([20 * k, 200 - 20 * k, 100])
            Image.fromarray(im.clip(0, 255).astype(np.uint8)).save(folder / f"im{i}.JPEG")
    (root / "imagenette" / ".complete").write_text("{}")


def test_style_shift_main_on_a_fake_imagenette(cache, monkeypatch):
    _fake_imagenette(cache)
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_MODEL", "squeezenet1_1")
    out = cache / "ss.json"
    model = load_model("squeezenet1_1")
    assert load_images(model, "imagenette", per_class=3).images.shape[-2:] == (224, 224)  # the default size
    argv = [
        "--out",
        str(out),
        "--model",
        "squeezenet1_1",
        "--size",
        "64",  # the real path at a size a test affords; the default (224) is checked above
        "--n-images",
        "2",
        "--per-class",
        "3",
        "--n-train-classes",
        "5",
        "--generations",
        "1",
        "--popsize",
        "2",
        "--steps-min",
        "1",
        "--steps-max",
        "2",
        "--test-batches",
        "1",
        "--rerank-sources",
        "2",
        "--exemplars",
        "2",
        "--n-boot",
        "20",
    ]
    assert R.main(argv) == 0
    res = json.loads(out.read_text())
    spec = DATASETS["imagenette"]
    assert res["data"]["name"] == "imagenette" and res["image_size"] == 64 and res["model"] == "squeezenet1_1"
    assert sorted(int(c) for c in res["classes"]["names"]) == sorted(i for i, _ in spec.classes.values())
    f1, f2 = res["folds"]
    assert f1["train_classes"] == f2["test_classes"] and f1["test_classes"] == f2["train_classes"]
    assert not set(f1["train_classes"]) & set(f1["test_classes"])
    assert res["theta"]["untuned"]["lr"] == 3.0  # SqueezeNet's own lr ...
    cma = f1["tuning"]["inter"]["cmaes"]
    lo, hi = cma["bounds"]
    assert lo[-2] < math.log10(3.0) < hi[-2]  # ... lies inside the lr box, not clipped
    assert f1["tuning"]["inter"]["random"]["evaluations"] == cma["evaluations"] == 2
    assert {"sigma0", "popsize", "CMA_stds", "steps_range"} <= set(cma)
    assert res["command"].startswith("python -m introspect_lab.experiments.style_shift_run --out")
    assert res["config"]["steps_max"] == 2 and res["config"]["lr_drop"] == [0.9, 0.1]  # real data: lr decay
    assert all(
        res["table1"][k]["mean"]["tuned"][1] <= res["table1"][k]["mean"]["tuned"][0] for k in res["table1"]
    )


def test_real_data_gets_the_papers_step_budget():
    real = ClassImages(np.zeros((2, 3, 224, 224)), np.array([0, 1]), {0: "a", 1: "b"}, "imagenette", "", "")
    photos = ClassImages(np.zeros((2, 3, 96, 96)), np.array([0, 1]), {0: "a", 1: "b"}, "photos", "", "")
    assert R.resolve_config(real)["steps_max"] == 200 and R.resolve_config(real)["size"] == 224
    assert R.resolve_config(photos)["steps_max"] == 24 and R.resolve_config(photos)["lr_drop"] is None
    assert R.resolve_config(real)["lr_drop"] == [0.9, 0.1]  # SqueezeNet's own decay, cs231n's
    with pytest.raises(ValueError, match="Unknown settings"):
        R.resolve_config(real, step_max=3)


def _fake_flowers(root, n_classes=9, per_class=4):
    from scipy.io import savemat

    base = dataset_path("flowers102") / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    labels = np.repeat(np.arange(1, n_classes + 1), per_class)
    rng = np.random.default_rng(0)
    for i, lab in enumerate(labels, 1):
        im = rng.integers(0, 80, (260, 240, 3)) + np.array([25 * int(lab), 100, 0])
        Image.fromarray(im.clip(0, 255).astype(np.uint8)).save(base / "jpg" / f"image_{i:05d}.jpg")
    ids = np.arange(1, len(labels) + 1)
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(base / "setid.mat", {"trnid": ids[0::2], "valid": ids[1::2], "tstid": ids[:2]})
    (dataset_path("flowers102") / ".complete").write_text("{}")


def test_novelty_main_on_a_fake_flowers102(cache, monkeypatch):
    from torchvision.datasets import Flowers102

    _fake_flowers(cache)
    monkeypatch.setattr(
        Flowers102, "_check_integrity", lambda self: True
    )  # the fake .mat files have other MD5s
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_MODEL", "resnet18")
    out = cache / "nv.json"
    assert nv.load_data("flowers102").images.shape[-2:] == (224, 224)  # the default size on Flowers
    argv = [
        "--out",
        str(out),
        "--preset",
        "quick",
        "--data",
        "flowers102",
        "--partitions",
        "2",
        "--size",
        "64",
    ]
    assert NR.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["data"]["name"] == "flowers102" and res["data"]["image_size"] == 64
    assert res["model"]["ran"] == "resnet18" and [n for _, _, n in res["model"]["layers"]][-1] == "avgpool"
    assert len(res["partitions"]) == 2 == res["settings"]["partitions"]
    for p in res["partitions"]:
        s1, s2, s3 = set(p["S1"]), set(p["S2"]), set(p["S3"])
        assert len(s1) == len(s2) == len(s3) == 3 and not (s1 & s2 or s1 & s3 or s2 & s3)
    assert (
        res["partitions"][0]["S1"] != res["partitions"][1]["S1"]
        or res["partitions"][0]["S3"] != res["partitions"][1]["S3"]
    )
    assert res["settings"]["select_fraction"] == 0.25 and res["settings"]["freeze_bn"] is True
    f4 = res["figure4"]
    assert len(f4["fc"]["test_auroc"]) == 10 and all(len(c) == 3 for c in f4["fc"]["test_auroc"])
    assert res["verdict"] and res["command"].startswith("python -m introspect_lab.experiments.novelty_run")
