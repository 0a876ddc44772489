"""Hash-checked, atomic downloads into a cache folder.

One function, :func:`fetch_file`, is used for model weights and datasets
alike. Its rules:

* A cached file is used only when its checksum matches the expected digest
  (SHA-256 or MD5; a full digest, or a prefix as in torchvision's
  ``name-<8 hex>.pth``).
* A download goes to ``<name>.part`` beside the target and is renamed into
  place only after its hash checks out, so an interrupted or corrupt
  download never leaves a file that looks complete.
* Without a network the call fails fast with :class:`DownloadError`, whose
  message says how to prefetch; it never hangs.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from . import config

__all__ = ["DownloadError", "fetch_file", "file_digest", "hash_matches", "mirrored"]

CHUNK = 1 << 20
TIMEOUT_S = 20.0

PREFETCH_HINT = (
    "On a machine with a network, run `introspect-lab fetch` (or `make fetch`) "
    "once; the files are cached and later runs work offline."
)


class DownloadError(RuntimeError):
    """A file could not be downloaded or failed its hash check."""


def mirrored(url: str) -> str:
    """``url``, or the same file name on the ``INTROSPECT_LAB_MIRROR`` server when one is set."""
    mirror = config.mirror()
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if mirror else url


def _parse_checksum(expected: str) -> tuple[str, str]:
    """``"md5:abc…"``, ``"sha256:abc…"`` or a bare SHA-256 hex (prefix) → (algorithm, hex)."""
    algo, _, hexdigest = expected.rpartition(":")
    algo = algo.lower() or "sha256"
    if algo not in ("sha256", "md5"):
        raise ValueError(f"Unknown checksum algorithm {algo!r}; use 'sha256:<hex>' or 'md5:<hex>'.")
    return algo, hexdigest.lower()


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file (``sha256`` or ``md5``), read in 1 MiB chunks."""
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_matches(path: str | os.PathLike, expected: str | None) -> bool:
    """True if ``path`` exists and its digest starts with ``expected``.

    ``expected`` is ``"md5:<hex>"``, ``"sha256:<hex>"`` or a bare SHA-256
    hex string or prefix (torchvision's file-name convention). ``None``
    accepts any existing file (only for files whose publisher gives no digest).
    """
    path = Path(path)
    if not path.is_file():
        return False
    if expected is None:
        return True
    algo, hexdigest = _parse_checksum(expected)
    return file_digest(path, algo).startswith(hexdigest)


def fetch_file(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None,
    *,
    progress: bool | None = None,
    description: str | None = None,
) -> Path:
    """Return ``dest``, downloading ``url`` there first if needed.

    Parameters
    ----------
    url:
        Where the file lives (``http://``, ``https://`` or ``file://``).
    dest:
        The cache path. Its folder is created.
    checksum:
        Expected digest: ``"sha256:<hex>"``, ``"md5:<hex>"``, or a bare
        SHA-256 hex digest or prefix (torchvision puts the first 8 hex
        digits of the SHA-256 in its file names).
    progress:
        Show a ``tqdm`` bar; default from ``INTROSPECT_LAB_PROGRESS``.

    Raises
    ------
    DownloadError
        No network, an HTTP error, or a hash mismatch after download. A
        cached file that fails its hash is replaced when a download is
        possible, and otherwise reported, never silently used.
    """
    dest = Path(dest)
    name = description or dest.name
    if _cached(dest, checksum, name):
        return dest
    if progress is None:
        progress = config.show_progress()
    part = dest.with_name(dest.name + ".part")
    algo, expected = _parse_checksum(checksum) if checksum else ("sha256", None)
    digest = hashlib.new(algo)
    created: list[Path] = []  # cache folders this call made, removed again if it fails
    ok = False
    try:
        response = _open(url, name)
        try:
            created = _make_folders(dest.parent)
        except OSError:
            response.close()
            raise
        with response, open(part, "wb") as out:
            total = _stream(response, out, digest, name, url, progress)
        if total is not None and part.stat().st_size != total:
            raise DownloadError(
                f"The download of {name} from {url} stopped after {part.stat().st_size} of "
                f"{total} bytes. Nothing was cached; run the same command again."
            )
        got = digest.hexdigest()
        if expected is not None and not got.startswith(expected):
            raise DownloadError(
                f"The file downloaded from {url} has {algo} {got[:16]}…, expected {expected[:16]}…. "
                "It was not cached. The server may be serving a different file; try again later."
            )
        os.replace(part, dest)
        ok = True
    finally:
        # Whatever happened (error, Ctrl-C), no partial file and no new empty folder is left behind.
        if part.exists():
            part.unlink()
        if not ok:
            _remove_empty(created)
    return dest


def _cached(dest: Path, checksum: str | None, name: str) -> bool:
    """Whether ``dest`` is cached with the right hash; a corrupt or missing file offline raises."""
    if dest.is_file():
        if hash_matches(dest, checksum):
            return True
        stale = f"The cached file {dest} is corrupt (its checksum does not match {checksum})."
        if config.is_offline():
            raise DownloadError(f"{stale} Delete it and fetch again with a network. {PREFETCH_HINT}")
        print(f"{stale} Downloading it again.")
    elif config.is_offline():
        raise DownloadError(
            f"{name} is not cached at {dest} and INTROSPECT_LAB_OFFLINE is set. {PREFETCH_HINT}"
        )
    return False


def _open(url: str, name: str):
    """The open response for ``url``, or a DownloadError that says what to do."""
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"Could not download {name}: {url} answered {exc.code} {exc.reason}. "
            "The file may have moved; check for a newer introspect-lab, or set "
            "INTROSPECT_LAB_MIRROR to a server that has it."
        ) from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"Could not download {name} from {url} ({reason}). "
            f"This machine seems to be offline. {PREFETCH_HINT}"
        ) from None


def _stream(response, out, digest, name: str, url: str, progress: bool) -> int | None:
    """Copy ``response`` to ``out`` in chunks, hashing as it goes; returns the announced size (or None)."""
    total = int(response.headers.get("Content-Length") or 0) or None
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"Downloading {name}",
        disable=not progress,
    ) as bar:
        while True:
            try:
                block = response.read(CHUNK)
            except (TimeoutError, OSError) as exc:
                raise DownloadError(
                    f"The download of {name} from {url} was interrupted ({exc}). Nothing was cached; "
                    "run the same command again."
                ) from None
            if not block:
                return total
            out.write(block)
            digest.update(block)
            bar.update(len(block))


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; return the folders that did not exist yet, deepest last."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    missing.reverse()
    for path in missing:
        path.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty."""
    for path in reversed(folders):
        try:
            path.rmdir()
        except OSError:  # not empty, or already gone
            break
