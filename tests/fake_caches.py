"""Dataset caches in their real on-disk layout, filled with small crops of the curated real photos.

:func:`build_cache` writes, under a data folder (what ``INTROSPECT_LAB_DATA`` points at),
exactly the files :func:`introspect_lab.datasets.fetch_dataset` leaves behind:

- Imagenette / Imagewoof: ``<name>/<root>/{train,val}/<wnid>/*.JPEG`` (file names as in
  fast.ai's archives) and the ``<name>/.complete`` marker listing the verified archive;
- Oxford Flowers 102: ``flowers102/flowers-102/jpg/image_NNNNN.jpg`` with ``imagelabels.mat``
  (1-based labels) and ``setid.mat`` (``trnid``/``valid``/``tstid``), the files
  ``torchvision.datasets.Flowers102`` reads, and the marker.

The downloaded archives (``<name>/downloads/``) are left out: nothing reads them once the
marker is written. The images are real photographs: crops of the curated photo set
(``data/photos``, :mod:`introspect_lab.photos`), one photo per class (26 classes, 32
photos) and a different crop per file, JPEG-encoded like the originals, so every
decoder, resize and crop on the way runs as in class. The caches are tiny, to keep the
suite's classroom runs fast: Imagenette and Imagewoof keep all ten classes (their
readers list every WordNet-id folder) with 8 training and 4 validation images each;
Flowers 102 keeps the torchvision files but only :data:`FLOWER_CLASSES` classes (the
novelty notebook partitions the classes present into three sets). No network; all three
take well under a second.

:func:`binder_fetch` reads what ``binder/postBuild`` prefetches, through the CLI's own
argument parser, so the Binder state rehearsed by the tests cannot drift from the image.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from introspect_lab import cli, datasets, models
from introspect_lab.photos import PHOTOS_DIR

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted(p["file"] for p in json.loads((PHOTOS_DIR / "photos.json").read_text())["photos"])
N_TRAIN, N_VAL = 8, 4  # images per class and split (notebook 10 takes 8 per class in fast mode)
FLOWER_CLASSES = 6  # of 102: two per novelty set S1, S2, S3
FLOWERS_SPLIT = (
    6,
    2,
    1,
)  # train / val / test per class: the novelty run holds out a quarter of 6 + 6 detector images
SIDE = 96  # short side of the written JPEGs (the archives' 160 px; the notebooks use 48-96 px in fast mode)
FIRST_CLASS = {"imagenette": 0, "imagewoof": 10, "flowers102": 20}  # each class its own photo

_photos: dict[str, Image.Image] = {}


def _crop(k: int, i: int) -> Image.Image:
    """Crop ``i`` of class ``k``: curated photo ``k``, a seeded window, 4:3 like most ImageNet photos."""
    name = PHOTOS[k % len(PHOTOS)]
    if name not in _photos:
        with Image.open(PHOTOS_DIR / name) as im:
            _photos[name] = im.convert("RGB")
    photo = _photos[name]
    rng = np.random.default_rng(1000 * k + i)
    h = int(min(photo.size) * rng.uniform(0.45, 0.8))
    w = min(photo.width, int(h * 4 / 3))
    left, top = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
    return photo.crop((left, top, left + w, top + h)).resize((round(SIDE * w / h), SIDE), Image.BICUBIC)


def _marker(folder: Path, name: str) -> None:
    files = [{"file": r.filename, "checksum": r.checksum} for r in datasets.DATASETS[name].files]
    (folder / ".complete").write_text(json.dumps({"dataset": name, "files": files}, indent=2))


def _imagenette_like(data_dir: Path, name: str) -> None:
    spec = datasets.DATASETS[name]
    for k, wnid in enumerate(sorted(spec.classes)):
        for split, n in (("train", N_TRAIN), ("val", N_VAL)):
            folder = data_dir / name / spec.root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                stem = f"{wnid}_{1000 + i}" if split == "train" else f"ILSVRC2012_val_{50 * k + i:08d}"
                _crop(FIRST_CLASS[name] + k, i).save(folder / f"{stem}.JPEG", quality=85)
    _marker(data_dir / name, name)


def _flowers(data_dir: Path) -> None:
    base = data_dir / "flowers102" / datasets.DATASETS["flowers102"].root
    (base / "jpg").mkdir(parents=True, exist_ok=True)
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    per_class = sum(FLOWERS_SPLIT)
    for c in range(FLOWER_CLASSES):
        for i in range(per_class):
            image_id = len(labels) + 1
            labels.append(c + 1)  # imagelabels.mat counts from 1
            key = "trnid" if i < FLOWERS_SPLIT[0] else "valid" if i < sum(FLOWERS_SPLIT[:2]) else "tstid"
            ids[key].append(image_id)
            _crop(FIRST_CLASS["flowers102"] + c, i).save(
                base / "jpg" / f"image_{image_id:05d}.jpg", quality=85
            )
    savemat(base / "imagelabels.mat", {"labels": np.asarray([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {k: np.asarray([v], dtype=np.uint16) for k, v in ids.items()})
    _marker(data_dir / "flowers102", "flowers102")


def build_dataset(data_dir: Path, name: str) -> Path:
    """Write the cache of one registry dataset under ``data_dir``; return its folder."""
    if name == "flowers102":
        _flowers(data_dir)
    elif datasets.DATASETS[name].classes:
        _imagenette_like(data_dir, name)
    else:
        raise ValueError(f"no fake layout for the dataset {name!r}; add one to tests/fake_caches.py")
    return data_dir / name


def build_cache(data_dir: Path, names) -> Path:
    """Write the caches of ``names`` (registry datasets) under ``data_dir``; return ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        build_dataset(data_dir, name)
    return data_dir


def fetched_by(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """``(models, datasets)`` that the ``introspect-lab fetch`` commands in ``path`` download.

    Each command (in ``binder/postBuild``, or the Makefile's ``fetch`` target) is parsed by
    ``introspect_lab.cli.build_parser``, defaults included, so a change of the command or
    of its defaults changes the rehearsed state with it.
    """
    fetched_models, fetched_data = set(), set()
    for line in path.read_text().splitlines():
        if "introspect-lab fetch" not in line:
            continue
        words = shlex.split(line, comments=True)
        at = next(
            (
                i
                for i, w in enumerate(words)
                if w.endswith("introspect-lab") and words[i + 1 :][:1] == ["fetch"]
            ),
            None,
        )
        if at is None:
            continue
        args = cli.build_parser().parse_args(words[at + 1 :])
        if args.all:
            fetched_models |= set(models.MODELS)
            fetched_data |= set(datasets.DATASETS)
        fetched_models |= set(cli.DEFAULT_FETCH_MODELS if args.models is None else args.models)
        fetched_data |= set(args.datasets or [])
    return frozenset(m for m in fetched_models if not models.MODELS[m].bundled), frozenset(fetched_data)


def binder_fetch() -> tuple[frozenset[str], frozenset[str]]:
    """What the Binder image holds: the fetch commands of ``binder/postBuild``."""
    return fetched_by(ROOT / "binder" / "postBuild")


def make_fetch() -> tuple[frozenset[str], frozenset[str]]:
    """What ``make fetch`` leaves: the fetch command of the Makefile."""
    return fetched_by(ROOT / "Makefile")
