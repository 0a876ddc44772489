"""The curated photo set: the Qt resource reader on a hand-built bundle, the README parser, the committed
set.
"""

import struct
import zlib

import pytest

from introspect_lab import photos


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A Qt resource bundle built by hand: one root directory holding ``files`` (name -> (bytes, zlib?))."""
    names, data, nodes = b"", b"", []
    extra = b"\0" * 8 if version >= 2 else b""
    name_offs, data_offs = [], []
    for name, (payload, compress) in files.items():
        name_offs.append(len(names))
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        body = struct.pack(">I", len(payload)) + zlib.compress(payload) if compress else payload
        data_offs.append(len(data))
        data += struct.pack(">I", len(body)) + body
    nodes.append(struct.pack(">IHII", 0, 0x02, len(files), 1) + extra)  # root directory
    for n_off, d_off, (_, compress) in zip(name_offs, data_offs, files.values()):
        nodes.append(struct.pack(">IHHHI", n_off, 0x01 if compress else 0, 0, 0, d_off) + extra)
    tree = b"".join(nodes)
    head = 24 if version >= 3 else 20
    t, d = head, head + len(tree)
    header = (
        b"qres" + struct.pack(">IIII", version, t, d, d + len(data)) + (b"\0" * 4 if version >= 3 else b"")
    )
    return header + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_read_rcc_plain_and_zlib(version):
    files = {"README": (b"hello", False), "a.webp": (b"\x00\x01" * 50, True)}
    assert photos.read_rcc(_rcc(files, version)) == {"README": b"hello", "a.webp": b"\x00\x01" * 50}


def test_read_rcc_rejects_other_files():
    with pytest.raises(ValueError, match="qres"):
        photos.read_rcc(b"PK\x03\x04 not a bundle")


def test_parse_readme_inline_and_listed_files():
    text = (
        "Copyright: Ann\nSource: https://x/a.jpg\nLicense: CC0-1.0\nFiles:\na.webp\nb.webp\n\n"
        "Copyright: Bob\nSource: https://x/c.jpg\nLicense: CC-BY-SA-4.0\nComments: cropping\nFiles: c.webp\n"
    )
    got = photos.parse_readme(text)
    assert (
        got["a.webp"] == got["b.webp"] == {"author": "Ann", "source": "https://x/a.jpg", "license": "CC0-1.0"}
    )
    assert got["c.webp"]["author"] == "Bob" and got["c.webp"]["license"] == "CC-BY-SA-4.0"
    assert photos.ALLOWED.match("Public Domain") and photos.ALLOWED.match("CC-BY 2.0")
    assert not photos.ALLOWED.match("CC-BY-NC-4.0") and not photos.ALLOWED.match("GPL-3.0")


def test_committed_set_is_real_photos_with_attribution():
    images, recs = photos.load_photos()
    assert images.shape == (len(recs), 3, 192, 192)
    per_class = {}
    for r in recs:
        per_class.setdefault(r.label, set()).add(r.source)
        assert r.author and r.source.startswith("http") and photos.ALLOWED.match(r.license)
        assert r.rank <= 5
    assert len(per_class) >= 6 and all(len(s) >= 3 for s in per_class.values())  # distinct sources
    assert images.float().std() > 30  # photos, not flat fills
    assert sum((photos.PHOTOS_DIR / r.file).stat().st_size for r in recs) < 2_000_000
