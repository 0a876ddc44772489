"""The real download path, against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch
import torchvision

from introspect_lab import models
from introspect_lab.download import DownloadError, fetch_file


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate: set[str] = set()
    hits: list[str] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        name = self.path.lstrip("/")
        if name in self.truncate:
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("INTROSPECT_LAB_OFFLINE", raising=False)  # the local server is the network
    root = tmp_path / "www"
    root.mkdir()
    _Handler.hits = []
    _Handler.truncate = set()

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(root: Path, name: str, payload: bytes) -> str:
    (root / name).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def test_first_download_then_cache(server, tmp_path, capsys):
    root, base, handler = server
    digest = _publish(root, "w.bin", b"x" * 300_000)
    dest = tmp_path / "cache" / "w.bin"
    fetch_file(f"{base}/w.bin", dest, digest, progress=True)
    assert dest.read_bytes() == b"x" * 300_000
    assert "Downloading w.bin" in capsys.readouterr().err  # the tqdm bar
    assert len(handler.hits) == 1
    fetch_file(f"{base}/w.bin", dest, digest)
    assert len(handler.hits) == 1  # served from the cache


def test_md5_checksums(server, tmp_path):
    root, base, _ = server
    payload = b"flowers"
    (root / "f.tgz").write_bytes(payload)
    dest = fetch_file(f"{base}/f.tgz", tmp_path / "f.tgz", "md5:" + hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload


def test_corrupt_cache_is_replaced(server, tmp_path, capsys):
    root, base, handler = server
    digest = _publish(root, "w.bin", b"good" * 1000)
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"bad")
    fetch_file(f"{base}/w.bin", dest, digest)
    assert dest.read_bytes() == b"good" * 1000
    assert "corrupt" in capsys.readouterr().out
    assert len(handler.hits) == 1


def test_corrupt_cache_offline_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"bad")
    with pytest.raises(DownloadError, match="corrupt.*introspect-lab fetch"):
        fetch_file("http://127.0.0.1:9/w.bin", dest, "ab" * 32)


def test_interrupted_download_leaves_nothing(server, tmp_path):
    root, base, handler = server
    digest = _publish(root, "big.bin", bytes(range(256)) * 8000)
    handler.truncate.add("big.bin")
    dest = tmp_path / "c" / "big.bin"
    with pytest.raises(DownloadError, match="Nothing was cached"):
        fetch_file(f"{base}/big.bin", dest, digest)
    assert not dest.exists()
    assert not dest.parent.exists()  # the cache folder this call made is removed again


def test_wrong_hash_is_not_cached(server, tmp_path):
    root, base, _ = server
    _publish(root, "w.bin", b"payload")
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="not cached"):
        fetch_file(f"{base}/w.bin", dest, "0" * 64)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_missing_file_on_server(server, tmp_path):
    _, base, _ = server
    with pytest.raises(DownloadError, match="404"):
        fetch_file(f"{base}/nope.bin", tmp_path / "c" / "nope.bin", None)
    assert not (tmp_path / "c").exists()


def test_classic_model_through_a_mirror(server, tmp_path, monkeypatch, unchanged):
    """load_model('squeezenet1_1') end to end: download, hash check, cache, load."""
    root, base, handler = server
    spec = models.MODELS["squeezenet1_1"]
    torch.manual_seed(0)
    reference = torchvision.models.squeezenet1_1(weights=None)
    buf = tmp_path / "sq.pth"
    torch.save(reference.state_dict(), buf)
    digest = hashlib.sha256(buf.read_bytes()).hexdigest()
    # Serve it under the official name with this file's hash in place of the real one.
    fake = dataclass_replace_weights(spec, digest)
    monkeypatch.setitem(models.MODELS, "squeezenet1_1", fake)
    (root / fake.filename).write_bytes(buf.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INTROSPECT_LAB_MIRROR", base)

    model = models.load_model("squeezenet1_1", verbose=False)
    assert not model.training
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert models.is_cached("squeezenet1_1", verify=True)
    assert (tmp_path / "torch" / "hub" / "checkpoints" / fake.filename).is_file()
    models.load_model("squeezenet1_1", verbose=False)
    assert len(handler.hits) == 1
    # corrupt the cache: the next load notices and downloads again
    models.weights_path("squeezenet1_1").write_bytes(b"junk")
    models.load_model("squeezenet1_1", verbose=False)
    assert len(handler.hits) == 2


def dataclass_replace_weights(spec, digest):
    """A spec whose file name carries ``digest``'s prefix, as torchvision's names do."""
    import dataclasses

    class Spec(type(spec)):
        @property
        def filename(self):
            return f"squeezenet1_1-{digest[:8]}.pth"

        @property
        def url(self):
            import os

            return f"{os.environ['INTROSPECT_LAB_MIRROR']}/{self.filename}"

    return Spec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
