"""Dataset registry, hash-checked fetch and extraction, and the image pools of notebook 02."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from introspect_lab import datasets as D
from introspect_lab.download import DownloadError
from introspect_lab.models import UnknownNameError, imagenet_categories


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize("name", ["imagenette", "imagewoof"])
def test_wnid_indices_match_torchvision_category_names(name):
    cats = imagenet_categories()
    classes = D.DATASETS[name].classes
    assert len(classes) == 10
    for wnid, (index, label) in classes.items():
        assert wnid.startswith("n") and len(wnid) == 9
        assert cats[index] == label, f"{wnid}: index {index} is {cats[index]!r}, not {label!r}"


def test_registry_files_have_checksums():
    assert {"imagenette", "imagewoof", "flowers102"} <= set(D.DATASETS)
    for spec in D.DATASETS.values():
        for f in spec.files:
            assert f.checksum is None or f.checksum.startswith("md5:") and len(f.checksum) == 4 + 32
    flowers = [f.filename for f in D.DATASETS["flowers102"].files]
    assert flowers == ["102flowers.tgz", "imagelabels.mat", "setid.mat"]


def test_paths_and_unknown_names(data_dir):
    assert D.dataset_path("imagenette") == data_dir / "imagenette"
    assert not D.is_cached("imagenette")
    with pytest.raises(UnknownNameError, match="imagenette"):
        D.dataset_path("imagenete")
    with pytest.raises(UnknownNameError):
        D.image_pool("imagenet")


def test_fetch_offline_says_how_to_prefetch(data_dir):
    with pytest.raises(DownloadError, match="introspect-lab fetch --datasets imagewoof"):
        D.fetch_dataset("imagewoof")
    assert not D.is_cached("imagewoof")
    assert not list(data_dir.rglob("*.part"))


def _make_tgz(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, "JPEG")
    return buf.getvalue()


def _fake_imagenette(tmp_path, monkeypatch, md5=None):
    """Register a local archive laid out like imagenette2-160.tgz, two images per class."""
    members = {}
    for k, wnid in enumerate(sorted(D.IMAGENETTE_CLASSES)):
        for j in range(2):
            members[f"imagenette2-160/val/{wnid}/img_{j}.JPEG"] = _jpeg((20 * k, 100 + 50 * j, 30))
    archive = tmp_path / "imagenette2-160.tgz"
    real_md5 = _make_tgz(archive, members)
    spec = D.DatasetSpec(
        "imagenette",
        "test copy",
        (D.RemoteFile(archive.as_uri(), f"md5:{md5 or real_md5}", extract=True),),
        "imagenette2-160",
        1,
        D.IMAGENETTE_CLASSES,
    )
    monkeypatch.setitem(D.DATASETS, "imagenette", spec)
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "0")


def test_fetch_verifies_extracts_and_marks_complete(tmp_path, data_dir, monkeypatch):
    _fake_imagenette(tmp_path, monkeypatch)
    root = D.fetch_dataset("imagenette", progress=False)
    assert root == data_dir / "imagenette" and D.is_cached("imagenette")
    files = sorted((root / "imagenette2-160" / "val").rglob("*.JPEG"))
    assert len(files) == 20
    marker = json.loads((root / ".complete").read_text())
    assert marker["files"][0]["file"] == "imagenette2-160.tgz"

    pool = D.imagenette_pool(per_class=2, size=32)
    assert len(pool) == 20 and pool.images.shape == (20, 3, 32, 32)
    assert pool.label_names[0] == "tench" and pool.label_names[-1] == "parachute"
    assert list(pool.labels) == [k for k in range(10) for _ in range(2)]
    # the second image of class k was drawn with green 150: check pixels came through
    assert abs(float(pool.images[1, 1].float().mean()) - 150) < 6


def test_auto_pool_prefers_cached_imagenette_and_says_so(tmp_path, data_dir, monkeypatch, capsys):
    _fake_imagenette(tmp_path, monkeypatch)
    D.fetch_dataset("imagenette", progress=False)
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    pool = D.image_pool("auto", per_class=1, size=32)
    assert pool.name == "imagenette" and len(pool) == 10
    assert "imagenette val" in capsys.readouterr().out


def test_fetch_rejects_a_wrong_checksum(tmp_path, data_dir, monkeypatch):
    _fake_imagenette(tmp_path, monkeypatch, md5="0" * 32)
    with pytest.raises(DownloadError, match="not available"):
        D.fetch_dataset("imagenette", progress=False)
    assert not D.is_cached("imagenette")
    assert not list(data_dir.rglob("*.JPEG"))


def test_unsafe_archive_members_are_refused(tmp_path, data_dir):
    archive = tmp_path / "evil.tgz"
    _make_tgz(archive, {"../escaped.txt": b"x"})
    with pytest.raises(DownloadError, match="unsafe path"):
        D._safe_extract(archive, data_dir)
    assert not (data_dir.parent / "escaped.txt").exists()


def test_offline_pool_is_deterministic_labelled_by_source_and_cached(data_dir, capsys):
    a = D.offline_pool(per_class=2, size=32, cache=False)
    b = D.offline_pool(per_class=2, size=32)
    assert len(a) == 2 * (len(D.OFFLINE_PHOTOS) + 10)
    assert a.label_names[: len(D.OFFLINE_PHOTOS)] == list(D.OFFLINE_PHOTOS)
    assert a.label_names[-1] == "digit 9"
    assert np.array_equal(a.images.numpy(), b.images.numpy())
    assert a.sources[0].startswith("chelsea tile") and a.sources[-1].startswith("load_digits")
    # digits are grey (R = G = B); photo tiles of chelsea are not
    assert np.array_equal(a.images[-1, 0].numpy(), a.images[-1, 2].numpy())

    folder = data_dir / "offline_pool"
    (npz,) = folder.glob("*.npz")
    meta = json.loads(npz.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert not list(folder.glob("*.part"))

    # a corrupted cache file is detected, reported and rebuilt
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    capsys.readouterr()
    c = D.offline_pool(per_class=2, size=32)
    assert "failed its hash check" in capsys.readouterr().out
    assert np.array_equal(a.images.numpy(), c.images.numpy())
    assert (
        json.loads(npz.with_suffix(".json").read_text())["sha256"]
        == hashlib.sha256(npz.read_bytes()).hexdigest()
    )


def test_auto_pool_offline_prints_which_pool(data_dir, capsys):
    pool = D.image_pool(per_class=1, size=32)
    out = capsys.readouterr().out
    assert pool.name == "offline"
    assert "Image pool: offline" in out and "Imagenette is not cached" in out
    x = pool.batch()
    assert x.shape == (len(pool), 3, 32, 32) and x.min() < -1  # ImageNet-normalised


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_pool_arguments_are_validated(data_dir, bad):
    with pytest.raises(ValueError, match="per_class"):
        D.offline_pool(per_class=bad)
