"""Image datasets: a registry of downloadable sets, and the image pools of the feature-space lecture.

Three datasets are registered in :data:`DATASETS`:

``imagenette`` / ``imagewoof``
    fast.ai's ten-class ImageNet subsets (Howard, https://github.com/fastai/imagenette),
    160 px versions. Class folders are named by WordNet id; :attr:`DatasetSpec.classes`
    maps each id to its ImageNet-1k index, so a pretrained classifier's outputs can be
    compared with the labels directly.
``flowers102``
    Oxford Flowers 102 (Nilsback & Zisserman 2008), the three files exactly as
    ``torchvision.datasets.Flowers102`` expects them, so
    ``Flowers102(dataset_path("flowers102"))`` reads the cache.

Downloads go through :func:`introspect_lab.download.fetch_file` (hash-checked, atomic)
and are extracted into ``config.data_dir() / name``; a ``.complete`` marker written
last records what was extracted, so an interrupted extraction is never mistaken for a
finished one.

:func:`image_pool` gives the pool of images that notebook 02 embeds, searches and
mines for maximally activating patches (lecture 004, "Nearest neighbours",
"Dimensionality reduction", "Maximally activating patches"): the Imagenette validation
set when it is cached or downloadable, otherwise an offline pool built from the photos
that ship with scikit-image and scikit-learn plus scikit-learn's ``load_digits``. It
always prints which pool it used.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import config
from .download import PREFETCH_HINT, DownloadError, fetch_file, file_digest, hash_matches, mirrored
from .images import normalize, sample_image, to_rgb
from .lazy import lazy_import
from .names import unknown_name_error
from .validation import check_int

sklearn_datasets = lazy_import("sklearn.datasets")

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "RemoteFile",
    "ImagePool",
    "dataset_path",
    "is_cached",
    "fetch_dataset",
    "image_pool",
    "imagenette_pool",
    "offline_pool",
    "OFFLINE_PHOTOS",
]


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it lives, its digest, and whether it is an archive to unpack."""

    url: str
    checksum: str | None
    extract: bool = False

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: files to fetch, the folder they land in, and class facts."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    root: str  # sub-folder of dataset_path(name) that holds the data once extracted
    approx_mb: int
    classes: dict[str, tuple[int, str]] = field(default_factory=dict)  # wnid -> (ImageNet index, name)
    citation: str = ""
    archive_has_root: bool = True  # archives unpack into their own top folder ``root``


_S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"

# WordNet id -> (ImageNet-1k index in torchvision's order, torchvision category name).
IMAGENETTE_CLASSES: dict[str, tuple[int, str]] = {
    "n01440764": (0, "tench"),
    "n02102040": (217, "English springer"),
    "n02979186": (482, "cassette player"),
    "n03000684": (491, "chain saw"),
    "n03028079": (497, "church"),
    "n03394916": (566, "French horn"),
    "n03417042": (569, "garbage truck"),
    "n03425413": (571, "gas pump"),
    "n03445777": (574, "golf ball"),
    "n03888605": (701, "parachute"),
}
IMAGEWOOF_CLASSES: dict[str, tuple[int, str]] = {
    "n02086240": (155, "Shih-Tzu"),
    "n02087394": (159, "Rhodesian ridgeback"),
    "n02088364": (162, "beagle"),
    "n02089973": (167, "English foxhound"),
    "n02093754": (182, "Border terrier"),
    "n02096294": (193, "Australian terrier"),
    "n02099601": (207, "golden retriever"),
    "n02105641": (229, "Old English sheepdog"),
    "n02111889": (258, "Samoyed"),
    "n02115641": (273, "dingo"),
}

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "imagenette",
            "Imagenette 160 px: 10 easy ImageNet classes, 9,469 train / 3,925 val images",
            # Full-file MD5 as published with torchvision.datasets.Imagenette (size "160px").
            (RemoteFile(_S3 + "imagenette2-160.tgz", "md5:e793b78cc4c9e9a4ccc0c1155377a412", extract=True),),
            "imagenette2-160",
            94,
            IMAGENETTE_CLASSES,
            "J. Howard, Imagenette, https://github.com/fastai/imagenette",
        ),
        DatasetSpec(
            "imagewoof",
            "Imagewoof 160 px: 10 hard ImageNet dog breeds, 9,025 train / 3,929 val images",
            # Full-file MD5 of the current (v2) archive, as published in catalyst's and other
            # dataset loaders next to the Imagenette MD5 above. (fastai's checks.txt lists a
            # different value: it hashes only the first MiB of a file, so it does not apply.)
            (RemoteFile(_S3 + "imagewoof2-160.tgz", "md5:3d200a7be99704a0d7509be2a9fbfe15", extract=True),),
            "imagewoof2-160",
            88,
            IMAGEWOOF_CLASSES,
            "J. Howard, Imagewoof, https://github.com/fastai/imagenette#imagewoof",
        ),
        DatasetSpec(
            "flowers102",
            "Oxford Flowers 102: 8,189 images of 102 flower species (torchvision Flowers102 layout)",
            # The MD5s torchvision.datasets.Flowers102 checks.
            (
                RemoteFile(_FLOWERS + "102flowers.tgz", "md5:52808999861908f626f3c1f4e79d11fa", extract=True),
                RemoteFile(_FLOWERS + "imagelabels.mat", "md5:e0620be6f572b9609742df49c70aed4d"),
                RemoteFile(_FLOWERS + "setid.mat", "md5:a5357ecc9cb78c4bef273ce3793fc85c"),
            ),
            "flowers-102",
            330,
            {},
            "M.-E. Nilsback and A. Zisserman, Automated flower classification over a large "
            "number of classes, ICVGIP 2008",
            archive_has_root=False,  # 102flowers.tgz holds jpg/, which goes inside flowers-102/
        ),
    ]
}

_MARKER = ".complete"


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise unknown_name_error("dataset", name, list(DATASETS))
    return DATASETS[name]


def dataset_path(name: str) -> Path:
    """The cache folder of a registered dataset: ``config.data_dir() / name``.

    The data itself is in ``dataset_path(name) / DATASETS[name].root`` once fetched
    (for ``flowers102`` the folder torchvision's ``Flowers102(root=dataset_path(...))`` reads).
    """
    _spec(name)
    return config.data_dir() / name


def is_cached(name: str) -> bool:
    """True when :func:`fetch_dataset` has completed for ``name`` (no network needed).

    Checks the marker written after the last file was verified and extracted; it does
    not re-hash the archives (``fetch_dataset`` does that).
    """
    spec = _spec(name)
    marker = dataset_path(name) / _MARKER
    return marker.is_file() and (dataset_path(name) / spec.root).is_dir()


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        dest_resolved = dest.resolve()
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if dest_resolved not in target.parents and target != dest_resolved:
                raise DownloadError(f"{archive.name} contains an unsafe path {member.name!r}; not extracted.")
            if member.issym() or member.islnk():
                raise DownloadError(f"{archive.name} contains a link {member.name!r}; not extracted.")
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python < 3.10.12 has no filter argument; members were checked above
            tar.extractall(dest)  # noqa: S202


def fetch_dataset(name: str, progress: bool | None = None) -> Path:
    """Download, verify and extract a registered dataset; return ``dataset_path(name)``.

    Every file is fetched with :func:`~introspect_lab.download.fetch_file` and checked
    against the publisher's digest before it is used. Archives are unpacked into
    ``dataset_path(name)``; the archives stay in ``downloads/`` so a later call can
    re-verify them. Already cached → returns at once.

    Raises
    ------
    DownloadError
        Offline (``INTROSPECT_LAB_OFFLINE`` or no network) or a hash mismatch. The
        message names the command that prefetches the dataset.
    """
    spec = _spec(name)
    root = dataset_path(name)
    if is_cached(name):
        return root
    downloads = root / "downloads"
    done = []
    for remote in spec.files:
        try:
            path = fetch_file(
                mirrored(remote.url),
                downloads / remote.filename,
                remote.checksum,
                progress=progress,
                description=f"{name}: {remote.filename}",
            )
        except DownloadError as exc:
            raise DownloadError(
                f"The dataset {name!r} is not available: {exc} "
                f"To prefetch it: `introspect-lab fetch --datasets {name}` on a networked machine."
            ) from None
        data_root = root / spec.root
        data_root.mkdir(parents=True, exist_ok=True)
        if remote.extract:
            _safe_extract(path, root if spec.archive_has_root else data_root)
        else:
            target = data_root / remote.filename
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(path.read_bytes())
            os.replace(tmp, target)
        done.append({"file": remote.filename, "checksum": remote.checksum})
    marker = root / _MARKER
    tmp = marker.with_name(marker.name + ".part")
    tmp.write_text(json.dumps({"dataset": name, "files": done}, indent=2))
    os.replace(tmp, marker)
    return root


# ---------------------------------------------------------------------------
# Image pools for the feature-space lecture
# ---------------------------------------------------------------------------


@dataclass
class ImagePool:
    """A labelled pool of equally sized RGB images (uint8, ``[N, 3, S, S]``).

    ``labels[i]`` indexes ``label_names``; ``sources[i]`` says where image ``i`` came
    from (a file, or a photo and the tile position). ``name`` is ``"imagenette"`` or
    ``"offline"``.
    """

    name: str
    images: torch.Tensor
    labels: np.ndarray
    label_names: list[str]
    sources: list[str]
    description: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImagePool({self.name!r}: {len(self)} images of {self.images.shape[-1]} px, "
            f"{len(self.label_names)} labels)"
        )

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def float01(self, indices=None) -> torch.Tensor:
        """The images (or a subset) as floats in [0, 1], ``[N, 3, S, S]``."""
        imgs = self.images if indices is None else self.images[indices]
        return imgs.float() / 255.0

    def batch(self, model=None, indices=None) -> torch.Tensor:
        """The images as a normalised model input (the model's mean/std, default ImageNet)."""
        return normalize(self.float01(indices), model)

    def thumbnails(self, indices=None) -> np.ndarray:
        """``[N, S, S, 3]`` floats in [0, 1] for display."""
        return self.float01(indices).permute(0, 2, 3, 1).numpy()

    def label_of(self, i: int) -> str:
        return self.label_names[int(self.labels[i])]


def _resize_crop(img, size: int) -> np.ndarray:
    """Short side to ``size`` (bicubic), centre crop, → uint8 ``[3, size, size]``."""
    from PIL import Image

    scale = size / min(img.width, img.height)
    new = (max(size, round(img.width * scale)), max(size, round(img.height * scale)))
    img = img.resize(new, Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def imagenette_pool(
    split: str = "val", per_class: int = 20, size: int = 128, dataset: str = "imagenette"
) -> ImagePool:
    """The first ``per_class`` images (sorted by file name) of each class of a cached Imagenette/Imagewoof
    split.

    Labels are the ImageNet class names of the WordNet-id folders
    (:data:`IMAGENETTE_CLASSES`). Raises :class:`DownloadError` if the dataset is not
    cached and cannot be fetched.
    """
    from PIL import Image

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    check_int("per_class", per_class, 1)
    check_int("size", size, 16)
    spec = _spec(dataset)
    if not spec.classes:
        raise ValueError(f"{dataset!r} is not an ImageNet-subset dataset; use 'imagenette' or 'imagewoof'.")
    root = fetch_dataset(dataset) / spec.root / split
    images, labels, sources = [], [], []
    wnids = sorted(spec.classes)
    for label, wnid in enumerate(wnids):
        files = sorted(p for p in (root / wnid).iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        for path in files[:per_class]:
            with Image.open(path) as im:
                images.append(_resize_crop(to_rgb(im), size))
            labels.append(label)
            sources.append(f"{dataset}/{split}/{wnid}/{path.name}")
    return ImagePool(
        name=dataset,
        images=torch.from_numpy(np.stack(images)),
        labels=np.asarray(labels),
        label_names=[spec.classes[w][1] for w in wnids],
        sources=sources,
        description=f"{dataset} {split} split, {per_class} per class",
    )


# Photos cut into tiles for the offline pool: each is one label ("labelled by source").
OFFLINE_PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "motorcycle",
    "china",
    "flower",
    "brick",
    "grass",
    "hubble",
)
_POOL_VERSION = 1  # bump when the recipe below changes: old cache files are then ignored


def _build_offline_pool(per_class: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Deterministic recipe: random square tiles of each photo, plus upscaled digits."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels, sources = [], [], []
    names = list(OFFLINE_PHOTOS)
    for label, name in enumerate(names):
        photo = sample_image(name)
        short = min(photo.size)
        scale = 256 / short
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
        for _ in range(per_class):
            side = int(rng.integers(96, 161))  # tiles of 96–160 px of a 256 px-high photo
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            tile = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            images.append(np.asarray(tile, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
            sources.append(f"{name} tile x={left} y={top} side={side} (of the photo at 256 px)")
    digits = sklearn_datasets.load_digits()
    for d in range(10):
        names.append(f"digit {d}")
        picks = np.flatnonzero(digits.target == d)[:per_class]
        for i in picks:
            gray = (digits.images[i] / 16.0 * 255).round().astype(np.uint8)
            big = Image.fromarray(gray).resize((size, size), Image.BILINEAR).convert("RGB")
            images.append(np.asarray(big, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(len(names) - 1)
            sources.append(f"load_digits #{i} (digit {d})")
    return {
        "images": np.stack(images),
        "labels": np.asarray(labels, dtype=np.int64),
        "label_names": np.asarray(names),
        "sources": np.asarray(sources),
    }


def offline_pool(per_class: int = 12, size: int = 128, seed: int = 0, cache: bool = True) -> ImagePool:
    """The pool that needs no network: tiles of the bundled photos plus ``load_digits``.

    Ten photos (:data:`OFFLINE_PHOTOS`) give ``per_class`` random square tiles each,
    labelled by the photo they come from; scikit-learn's 8×8 digits give ``per_class``
    images per digit, upscaled to ``size`` and labelled ``"digit d"``: 20 labels.

    The pool is built deterministically from ``(per_class, size, seed)`` and cached in
    ``config.data_dir() / "offline_pool"`` with the same rules as downloads: written to a
    ``.part`` file and renamed into place, its SHA-256 recorded beside it and checked on
    every reuse (a file that fails the check is rebuilt, with a message).
    """
    check_int("per_class", per_class, 1)
    check_int("size", size, 16)
    folder = config.data_dir() / "offline_pool"
    stem = f"pool-v{_POOL_VERSION}-n{per_class}-s{size}-seed{seed}"
    path, meta_path = folder / f"{stem}.npz", folder / f"{stem}.json"
    data = None
    if cache and path.is_file() and meta_path.is_file():
        try:
            expected = json.loads(meta_path.read_text())["sha256"]
        except (ValueError, KeyError):
            expected = None
        if expected and hash_matches(path, f"sha256:{expected}"):
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        else:
            print(f"The cached offline pool {path} failed its hash check; rebuilding it.")
    if data is None:
        data = _build_offline_pool(per_class, size, seed)
        if cache:
            _write_atomic(path, meta_path, data)
    return ImagePool(
        name="offline",
        images=torch.from_numpy(data["images"]),
        labels=data["labels"],
        label_names=[str(s) for s in data["label_names"]],
        sources=[str(s) for s in data["sources"]],
        description=f"offline: {per_class} tiles of each of {len(OFFLINE_PHOTOS)} bundled photos "
        f"+ {per_class} scikit-learn digits per class",
    )


def _write_atomic(path: Path, meta_path: Path, data: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as fh:
            np.savez(fh, **data)
        digest = file_digest(part, "sha256")
        os.replace(part, path)
        meta_part = meta_path.with_name(meta_path.name + ".part")
        meta_part.write_text(json.dumps({"sha256": digest, "version": _POOL_VERSION}))
        os.replace(meta_part, meta_path)
    finally:
        if part.exists():
            part.unlink()


_POOLS: dict[str, Callable[..., ImagePool]] = {"imagenette": imagenette_pool, "offline": offline_pool}


def image_pool(
    name: str = "auto", *, per_class: int | None = None, size: int = 128, verbose: bool = True
) -> ImagePool:
    """The image pool of the feature-space notebook; prints which pool it used.

    ``name="auto"``: the Imagenette validation set when it is cached, or when a
    network is allowed and the download works; otherwise the offline pool (the
    switch is printed, never silent). ``"imagenette"`` insists on Imagenette (raising
    :class:`DownloadError` with a prefetch hint offline); ``"offline"`` always builds
    the bundled pool. ``per_class`` defaults to 20 (Imagenette) and 12 (offline).
    """
    if name not in ("auto", *_POOLS):
        raise unknown_name_error("image pool", name, ["auto", *_POOLS])
    reason = ""
    if name == "auto":
        name = "offline"
        if is_cached("imagenette"):
            name = "imagenette"
        elif config.is_offline():
            reason = "Imagenette is not cached and INTROSPECT_LAB_OFFLINE is set"
        else:
            try:
                fetch_dataset("imagenette")
                name = "imagenette"
            except DownloadError:
                reason = "Imagenette is not cached and could not be downloaded"
    if name == "imagenette":
        pool = imagenette_pool("val", per_class=per_class or 20, size=size)
    else:
        pool = offline_pool(per_class=per_class or 12, size=size)
    if verbose:
        msg = (
            f"Image pool: {pool.description} ({len(pool)} images, {len(pool.label_names)} labels, {size} px)."
        )
        if reason:
            msg += f" Using the offline pool because {reason}. {PREFETCH_HINT}"
        print(msg)
    return pool
