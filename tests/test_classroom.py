"""The classroom states: fake caches in the real layout, the choices of ``introspect_lab.classroom``, the
docs' table.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fake_caches import FLOWER_CLASSES, FLOWERS_SPLIT, N_TRAIN, N_VAL, build_cache, build_dataset

from introspect_lab import classroom, config, datasets, load_model
from introspect_lab.experiments import novelty

ROOT = Path(__file__).resolve().parents[1]
STATE = {s.name: s for s in classroom.STATES}


@pytest.fixture(scope="module")
def full_cache(tmp_path_factory):
    t0 = time.process_time()  # CPU time: the wall clock depends on the machine's load
    root = build_cache(tmp_path_factory.mktemp("fetched"), sorted(datasets.DATASETS))
    return root, time.process_time() - t0


def test_fake_caches_have_the_layout_fetch_dataset_leaves(full_cache, monkeypatch):
    root, seconds = full_cache
    assert seconds < 10, f"building the three caches took {seconds:.1f} s of CPU"
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(root))
    for name, spec in datasets.DATASETS.items():
        assert datasets.is_cached(name), name
        assert datasets.fetch_dataset(name) == root / name  # cached: returns at once, no network
        marker = (root / name / ".complete").read_text()
        assert all(f.filename in marker for f in spec.files)
    for name in ("imagenette", "imagewoof"):
        spec = datasets.DATASETS[name]
        for split, n in (("train", N_TRAIN), ("val", N_VAL)):
            folders = sorted(p.name for p in (root / name / spec.root / split).iterdir())
            assert folders == sorted(spec.classes)
            assert all(len(list((root / name / spec.root / split / w).glob("*.JPEG"))) == n for w in folders)
    base = root / "flowers102" / "flowers-102"
    assert {p.name for p in base.iterdir()} == {"jpg", "imagelabels.mat", "setid.mat"}
    assert len(list((base / "jpg").glob("image_*.jpg"))) == FLOWER_CLASSES * sum(FLOWERS_SPLIT)


def test_fake_images_are_photographs_that_differ_by_class(full_cache, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(full_cache[0]))
    pool = datasets.imagenette_pool("val", per_class=2, size=64)
    x = pool.float01()
    assert x.std(dim=(1, 2, 3)).min() > 0.05, "a flat image"
    means = x.mean(dim=(2, 3))  # mean colour per image
    first = means[::2]
    assert len({tuple(m.round(decimals=2).tolist()) for m in first}) == 10, "two classes share their images"


def test_flowers_reader_agrees_with_torchvision(full_cache, monkeypatch):
    """novelty.flowers_data reads what torchvision's Flowers102 reads (its MD5 check aside: the .mat files are
    ours).
    """
    from torchvision.datasets import Flowers102

    root = full_cache[0]
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(root))
    monkeypatch.setattr(Flowers102, "_check_integrity", lambda self: True)
    data = novelty.flowers_data(size=32)
    expected = []
    for name in ("train", "val"):
        ds = Flowers102(str(datasets.dataset_path("flowers102")), split=name)
        expected += ds._labels
    assert data.labels.tolist() == expected
    assert (data.split == 0).sum() == FLOWER_CLASSES * FLOWERS_SPLIT[0] and (
        data.split == 1
    ).sum() == FLOWER_CLASSES * FLOWERS_SPLIT[1]
    assert not data.stand_in and data.images.shape == (len(expected), 3, 32, 32)


def test_choose_data_prefers_in_order_and_falls_back():
    assert classroom.choose_data("style shift", {"imagenette", "imagewoof"}).dataset == "imagenette"
    assert classroom.choose_data("style shift", {"imagewoof"}).dataset == "imagewoof"
    off = classroom.choose_data("style shift", set())
    assert off.dataset is None and off.pool == "offline" and "fetch --datasets imagenette" in off.text
    assert classroom.choose_data("transfer", {"imagewoof"}).split == "train"
    assert str(classroom.choose_data("feature space", {"imagenette"})) == (
        "Data (feature space): Imagenette, validation images."
    )
    with pytest.raises(ValueError, match="feature space"):
        classroom.choose_data("feature-space")


def test_choose_model_resolves_like_load_model():
    assert classroom.choose_model("alexnet", "efficientnet_lite0", {"alexnet"}) == "alexnet"
    assert classroom.choose_model("alexnet", "efficientnet_lite0", set()) == "efficientnet_lite0"
    assert classroom.choose_model("alexnet", None, set()) == "alexnet"  # no fallback: the request stands
    assert classroom.choose_model("efficientnet_lite0", "efficientnet_lite0", set()) == "efficientnet_lite0"
    assert classroom.other_cached_model("resnet18", {"resnet18", "alexnet"}) == "alexnet"
    assert classroom.other_cached_model("efficientnet_lite0", set()) is None


@pytest.mark.parametrize("cached, expect", [("", "efficientnet_lite0"), ("alexnet,resnet18", "alexnet")])
def test_smoke_run_names_the_model_the_request_resolves_to(cached, expect, monkeypatch, capsys):
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_MODEL", "as-chosen")
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_CACHED", cached)
    assert config.smoke_cached() == frozenset(filter(None, cached.split(",")))
    model = load_model("alexnet", fallback="efficientnet_lite0")
    printed = capsys.readouterr().out
    assert f"with random weights instead of {expect}." in printed and model.lab_info.name == expect
    assert "random weights" in model.lab_info.source


def test_smoke_cached_is_ignored_outside_a_smoke_run(monkeypatch):
    monkeypatch.delenv("INTROSPECT_LAB_SMOKE_MODEL", raising=False)
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_CACHED", "alexnet")
    assert config.smoke_cached() is None


def test_use_data_prints_its_choice_and_the_pool_follows(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))
    build_dataset(tmp_path, "imagenette")
    choice = classroom.use_data("feature space")
    assert capsys.readouterr().out.strip() == str(choice) and choice.pool == "imagenette"
    pool = datasets.image_pool(choice.pool, per_class=1, size=32, verbose=False)
    assert pool.name == "imagenette" and len(pool) == 10


def test_the_plan_changes_only_where_the_cache_matters():
    binder, fetched = STATE["Binder"], STATE["make fetch"]
    assert classroom.plan("13_intra_class_pathways", binder) == (
        ("alexnet",),
        (classroom.choose_data("class images", {"imagenette"}),),
    )
    assert classroom.plan("10_transfer_learning", binder)[1][0].dataset is None  # Imagewoof is not on Binder
    assert classroom.plan("10_transfer_learning", fetched)[1][0].dataset == "imagewoof"
    assert classroom.plan("09_adversarial_examples", binder)[0] == ("efficientnet_lite0", "resnet18")
    assert not classroom.depends_on_cache("03_saliency_and_cam")
    # notebook 01 shows the first-layer filters of every model it can have
    assert (
        classroom.plan("01_filters_and_activations", STATE["nothing cached"])[0]
        == ("efficientnet_lite0",) * 2
    )
    assert classroom.plan("01_filters_and_activations", binder)[0] == (
        "efficientnet_lite0",
        "alexnet",
        "resnet18",
        "squeezenet1_1",
        "efficientnet_lite0",
    )


def _doc_table(path: Path) -> str:
    text = path.read_text()
    m = re.search(r"<!-- classroom table[^>]*-->\n(.*?)\n<!-- end of classroom table -->", text, re.S)
    assert m, f"{path.name} lacks the classroom table"
    return m.group(1).strip()


@pytest.mark.parametrize("doc", ["README.md", "docs/teaching.md"])
def test_docs_say_what_each_state_uses(doc):
    assert _doc_table(ROOT / doc) == classroom.markdown_table().strip(), (
        f"{doc}: paste introspect_lab.classroom.markdown_table() between the classroom-table markers"
    )
    text = " ".join((ROOT / doc).read_text().split())
    said = re.findall(
        r"(?:On Binder|With nothing cached|After `make fetch`), notebook \d\d runs [^.]*\.", text
    )
    assert len(said) >= 3, f"{doc} says what too few notebooks use"
    generated = {classroom.sentence(nb, s) for nb in classroom.NOTEBOOKS for s in classroom.STATES}
    for sentence in said:
        assert sentence in generated, f"{doc}: {sentence!r} is not what the code chooses"
