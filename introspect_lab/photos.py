"""A curated set of real photos, several per ImageNet class, rebuilt from Debian's ``gcompris-qt-data``.

GCompris (an educational suite) ships about 250 real photographs, mostly from
Wikimedia Commons, each listed with its author, source and licence in a README next
to it. Debian packs them into Qt resource bundles (``usr/share/gcompris-qt/rcc/*.rcc``).
This module reads those bundles (:func:`read_rcc`), their READMEs
(:func:`parse_readme`), keeps the photos whose licence allows redistribution
(public domain, CC0, CC-BY, CC-BY-SA), labels each with the ImageNet class its file
name names (:data:`LABELS`, written by hand), keeps a photo when the bundled classifier
ranks that class in its top 5, and keeps the classes that have at least
``min_per_class`` distinct photos (:func:`build`). The result lives in ``data/photos/``
(JPEGs, ``photos.json`` with class and attribution per file, ``ATTRIBUTION.md``);
:func:`load_photos` reads it and :func:`photo_pool` wraps it as an image pool.

Rebuild (``data/photos/README.md``)::

    apt-get download gcompris-qt-data && dpkg -x gcompris-qt-data_*.deb /tmp/gcompris
    python -m introspect_lab.photos --rcc /tmp/gcompris/usr/share/gcompris-qt/rcc --out data/photos
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import struct
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .datasets import ImagePool
from .hooks import frozen
from .images import normalize, to_rgb
from .models import load_model, model_info
from .validation import check_int

__all__ = [
    "PHOTOS_DIR",
    "Photo",
    "read_rcc",
    "parse_readme",
    "gcompris_photos",
    "build",
    "load_photos",
    "photo_pool",
    "main",
]

#: The committed curated set (in a source checkout of the repository).
PHOTOS_DIR = Path(__file__).resolve().parents[1] / "data" / "photos"

#: Bundles that hold real photos, and the licences that allow redistribution with attribution.
BUNDLES = ("categorization", "explore_monuments", "explore_farm_animals", "explore_world_animals", "erase")
ALLOWED = re.compile(r"^(public domain|cc0(-1\.0)?|cc-by(-sa)?[- ][0-9.]+)$", re.I)

_DIR, _ZLIB, _ZSTD = 0x02, 0x01, 0x04

#: What each photo shows, read off its file name by hand (ImageNet-1k class name): the labels
#: are not the model's guesses. Photos of other things (fish species, windmills, ...) are left out.
LABELS = {
    r"hammer\d": "hammer",
    r"solar\d": "solar dish",
    r"dam\d": "dam",
    r"screwDriver\d": "screwdriver",
    r"zimniPalace|schwerinPalace|mysorePalace|hawaMahal|chateaudeChambord": "palace",
    r"neuschwansteinCastle|citedeCarcassonne|chateaudeChenonceau|castillodeSanMarcos|castleClinton": "castle",
    r"cathedral|Cathedral": "church",
    r"arcDeTriomphe|IndiaGate|gatewayofIndia|brandenburgGate": "triumphal arch",
    r"canyondeChelly|navajo": "cliff dwelling",
}


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Every file of a Qt resource bundle (``.rcc``, format versions 1–3) as ``{path: bytes}``.

    Layout (Qt's ``rcc`` tool): magic ``qres``, then big-endian version, offsets of the
    tree, the data and the names. A tree node is name offset (4), flags (2), then for a
    directory the child count (4) and first child (4), else locale (4) and data offset
    (4); version ≥ 2 adds an 8-byte modification time. A name is its length (2), a hash
    (4) and UTF-16BE characters; a data entry its length (4) and payload. zlib payloads
    (flag 1) start with the 4-byte uncompressed size.
    """
    if blob[:4] != b"qres":
        raise ValueError("Not a Qt resource bundle: it does not start with b'qres'.")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node = 14 + (8 if version >= 2 else 0)

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", blob[names + off : names + off + 2])
        return blob[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        p = tree + i * node
        name_off, flags = struct.unpack(">IH", blob[p : p + 6])
        path = prefix + (name(name_off) if i else "")
        if flags & _DIR:
            count, first = struct.unpack(">II", blob[p + 6 : p + 14])
            stack.extend((c, path + "/" if i else "") for c in range(first, first + count))
            continue
        (off,) = struct.unpack(">I", blob[p + 10 : p + 14])
        (length,) = struct.unpack(">I", blob[data + off : data + off + 4])
        payload = blob[data + off + 4 : data + off + 4 + length]
        if flags & _ZSTD:
            raise ValueError(f"{path} is zstd-compressed; this reader handles zlib bundles (Qt 5) only.")
        out[path] = zlib.decompress(payload[4:]) if flags & _ZLIB else payload
    return out


def parse_readme(text: str) -> dict[str, dict[str, str]]:
    """GCompris README blocks → ``{file: {"author", "source", "license"}}``.

    Blocks are separated by blank lines; keys ``Copyright``, ``Source``, ``License`` and
    ``Files`` (the files on the same line or on the lines after it).
    """
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        files: list[str] = []
        in_files = False
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("Copyright", "Source", "License", "Comments", "Files"):
                fields[key.strip().lower()] = value.strip()
                in_files = key.strip() == "Files"
                files += value.split() if in_files else []
            elif in_files and line.strip():
                files += line.split()
        for f in files:
            out[f] = {
                "author": fields.get("copyright", ""),
                "source": fields.get("source", ""),
                "license": fields.get("license", ""),
            }
    return out


@dataclass
class Photo:
    """One photo of the curated set, with its attribution."""

    file: str  # file name in data/photos
    label: int  # ImageNet-1k index
    class_name: str
    probability: float  # the model's softmax probability of label, at build time (224 px)
    rank: int  # the model's rank of label, at build time
    author: str
    source: str
    license: str
    origin: str  # path inside the Debian package's bundle


def gcompris_photos(rcc_dir: str | Path) -> list[tuple[str, bytes, dict[str, str]]]:
    """``(origin, image bytes, attribution)`` of every redistributable photo in the bundles, one per source.

    Photos without a README entry, with another licence, or from a source already taken
    (the same Wikimedia file appears in two activities) are left out.
    """
    rcc_dir = Path(rcc_dir)
    found, seen = [], set()
    for bundle in BUNDLES:
        path = rcc_dir / f"{bundle}.rcc"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found; extract the package with `dpkg -x gcompris-qt-data_*.deb DIR`."
            )
        files = read_rcc(path.read_bytes())
        for readme in sorted(p for p in files if p.endswith("/README")):
            folder = readme[: -len("README")]
            for rel, attr in sorted(parse_readme(files[readme].decode("utf-8", "replace")).items()):
                key = attr["source"] or folder + rel
                if not rel.endswith((".webp", ".jpg", ".png")) or folder + rel not in files or key in seen:
                    continue
                if ALLOWED.match(attr["license"].strip()):
                    seen.add(key)
                    found.append((folder + rel, files[folder + rel], attr))
    return found


def _square(data: bytes, size: int) -> Image.Image:
    """The centre square of an image, resized to ``size`` px (bicubic)."""
    with Image.open(io.BytesIO(data)) as im:
        im = to_rgb(im)
        s = min(im.size)
        left, top = (im.width - s) // 2, (im.height - s) // 2
        return im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)


def label_of(origin: str, categories: list[str]) -> int | None:
    """The ImageNet index :data:`LABELS` gives a photo's file name, or ``None`` when it names none."""
    stem = origin.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for pattern, name in LABELS.items():
        if re.fullmatch(pattern, stem):
            return categories.index(name)
    return None


def build(
    rcc_dir: str | Path,
    out: str | Path,
    model=None,
    *,
    size: int = 192,
    min_per_class: int = 3,
    max_rank: int = 5,
    quality: int = 85,
) -> list[Photo]:
    """Curate the set: photos whose hand label (:data:`LABELS`) the model ranks in its top ``max_rank``
    at 224 px.

    Classes with fewer than ``min_per_class`` such photos are dropped. Writes ``size`` px
    JPEGs (centre squares), ``photos.json`` (every setting, and each file's class, the
    model's rank and probability of it, and attribution) and ``ATTRIBUTION.md`` into ``out``.
    """
    model = model if model is not None else load_model("efficientnet_lite0")
    cats = model_info(model).categories
    rows = []
    for origin, data, attr in gcompris_photos(rcc_dir):
        c = label_of(origin, cats)
        if c is None:
            continue
        x = torch.from_numpy(np.array(_square(data, 224))).permute(2, 0, 1)[None].float() / 255
        with frozen(model), torch.no_grad():
            p = torch.softmax(model(normalize(x, model)), 1)[0]
        rank = int((p > p[c]).sum()) + 1
        if rank <= max_rank:
            rows.append((origin, data, attr, c, float(p[c]), rank))
    counts = {c: sum(r[3] == c for r in rows) for c in {r[3] for r in rows}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for origin, data, attr, c, prob, rank in sorted(rows, key=lambda r: (r[3], r[0])):
        if counts[c] < min_per_class:
            continue
        stem = re.sub(r"[^a-z0-9]+", "_", cats[c].lower()).strip("_")
        name = f"{stem}_{hashlib.sha1(origin.encode()).hexdigest()[:6]}.jpg"
        _square(data, size).save(out / name, quality=quality, optimize=True)
        photos.append(
            Photo(
                name,
                c,
                cats[c],
                round(prob, 3),
                rank,
                attr["author"],
                attr["source"],
                attr["license"],
                origin,
            )
        )
    settings = {
        "size": size,
        "min_per_class": min_per_class,
        "max_rank": max_rank,
        "quality": quality,
        "model": model_info(model).name,
        "package": "gcompris-qt-data (Debian bookworm 3.1-2)",
        "bundles": list(BUNDLES),
        "labels": LABELS,
        "command": "python -m introspect_lab.photos --rcc DIR/usr/share/gcompris-qt/rcc --out data/photos",
    }
    (out / "photos.json").write_text(
        json.dumps({"settings": settings, "photos": [asdict(p) for p in photos]}, indent=1) + "\n"
    )
    lines = [
        "# Attribution",
        "",
        "Photos from GCompris (Debian package `gcompris-qt-data`), as listed in its READMEs.",
        "Each is the centre square of the original, resized.",
        "",
        "| file | class | author | source | licence |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {p.file} | {p.class_name} | {p.author} | {p.source} | {p.license} |" for p in photos]
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")
    return photos


def load_photos(
    folder: str | Path | None = None, size: int | None = None
) -> tuple[torch.Tensor, list[Photo]]:
    """The curated photos as uint8 ``[N, 3, S, S]`` (``size`` px, default as stored) and their records."""
    folder = Path(folder) if folder else PHOTOS_DIR
    meta = folder / "photos.json"
    if not meta.is_file():
        raise FileNotFoundError(
            f"No curated photos at {folder}; build them with `python -m introspect_lab.photos`."
        )
    photos = [Photo(**p) for p in json.loads(meta.read_text())["photos"]]
    arrays = []
    for p in photos:
        with Image.open(folder / p.file) as im:
            im = to_rgb(im)
            arrays.append(np.asarray(im if size is None else im.resize((size, size), Image.BICUBIC)))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), photos


def photo_pool(size: int = 128, folder: str | Path | None = None) -> ImagePool:
    """The curated photos as an :class:`~introspect_lab.datasets.ImagePool` at ``size`` px, labelled by class.

    Real, distinct photos of 7 ImageNet classes (castle, dam, hammer, palace,
    screwdriver, solar dish, triumphal arch; 3–7 each), bundled, so it needs no
    network: the pool for methods that must start from real photos of one class,
    such as multifaceted visualisation (Nguyen, Yosinski & Clune 2016).
    ``sources[i]`` is the file name; ``data/photos/ATTRIBUTION.md`` credits it.
    """
    check_int("size", size, 16)
    images, recs = load_photos(folder, size=size)
    names = sorted({r.class_name for r in recs})
    return ImagePool(
        name="photos",
        images=images,
        labels=np.array([names.index(r.class_name) for r in recs]),
        label_names=names,
        sources=[r.file for r in recs],
        description=f"curated photos: {len(recs)} real photos of {len(names)} ImageNet classes",
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: rebuild ``data/photos`` from an extracted ``gcompris-qt-data`` package."""
    ap = argparse.ArgumentParser(prog="python -m introspect_lab.photos", description=__doc__.split("\n")[0])
    ap.add_argument("--rcc", required=True, help="usr/share/gcompris-qt/rcc of the extracted package")
    ap.add_argument("--out", default=str(PHOTOS_DIR))
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    photos = build(args.rcc, args.out)
    classes = sorted({(p.label, p.class_name) for p in photos})
    print(f"Wrote {len(photos)} photos of {len(classes)} classes to {args.out}:")
    for c, n in classes:
        print(f"  {n} ({c}): {sum(p.label == c for p in photos)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
