"""Which PyTorch build `make lab` / `make test` install (.ci/install_torch.py), with a fake pip and index."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_torch", ROOT / ".ci" / "install_torch.py")
it = importlib.util.module_from_spec(spec)
spec.loader.exec_module(it)


@pytest.mark.parametrize(
    "torch, platform, gpu, want",
    [
        ("auto", "linux", False, "cpu"),  # a laptop without a GPU: no 3 GB of nvidia wheels
        ("auto", "linux", True, "default"),
        ("auto", "darwin", False, "default"),  # PyPI's macOS / Windows wheels are CPU builds already
        ("auto", "win32", False, "default"),
        ("cpu", "linux", True, "cpu"),
        ("cuda", "linux", False, "default"),
        ("", "linux", False, "cpu"),  # TORCH= (empty) is auto
    ],
)
def test_choice(torch, platform, gpu, want):
    assert it.choose(torch, platform, gpu) == want


def test_unknown_choice_names_the_fix():
    with pytest.raises(SystemExit, match="TORCH=cpu, TORCH=cuda"):
        it.choose("rocm", "linux", False)


def _fake_python(tmp_path: Path, torch_installed: bool) -> tuple[Path, Path]:
    """A stand-in for the venv's python: records its arguments; knows torch only if told so."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"if sys.argv[1] == '-c': print('2.0.0') if {torch_installed} else sys.exit(1)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake, log


@pytest.fixture
def index(tmp_path):
    """A local stand-in for PyTorch's CPU wheel index (serves ``/torch/``)."""
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "index.html").write_text(
        "<a href='torch-2.0.0+cpu-cp311-none-linux_x86_64.whl'>torch</a>"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"  # nothing listens once closed


def test_cpu_build_comes_from_the_cpu_index(tmp_path, index, capsys):
    python, log = _fake_python(tmp_path, torch_installed=False)
    assert it.main(["--python", str(python), "--torch", "cpu", "--index", index]) == 0
    pip = log.read_text().splitlines()[-1]
    assert pip.startswith("-m pip install") and f"--index-url {index}" in pip
    assert "torch>=2.2" in pip and "torchvision>=0.17" in pip
    assert "CPU-only build" in capsys.readouterr().out


def test_unreachable_index_falls_back_to_the_default_and_says_so(tmp_path, capsys):
    python, log = _fake_python(tmp_path, torch_installed=False)
    assert it.main(["--python", str(python), "--torch", "cpu", "--index", _closed_port()]) == 0
    assert not [c for c in log.read_text().splitlines() if "pip" in c]  # pip install -e . brings torch
    out = capsys.readouterr().out
    assert "cannot be reached" in out and "falling back to the default index" in out


def test_cuda_and_an_existing_torch_install_nothing(tmp_path, index, capsys):
    (tmp_path / "new").mkdir(), (tmp_path / "old").mkdir()
    python, log = _fake_python(tmp_path / "new", torch_installed=False)
    assert it.main(["--python", str(python), "--torch", "cuda", "--index", index]) == 0
    python2, log2 = _fake_python(tmp_path / "old", torch_installed=True)
    assert it.main(["--python", str(python2), "--torch", "cpu", "--index", index]) == 0
    assert not [c for c in (log.read_text() + log2.read_text()).splitlines() if "pip" in c]
    out = capsys.readouterr().out
    assert "default index (TORCH=cuda)" in out and "already installed" in out


def test_makefile_runs_it_only_when_the_venv_is_built():
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert ".ci/install_torch.py --python $(BIN)/python --torch $(TORCH)" in recipe
    assert recipe.index("install_torch.py") < recipe.index('-e ".[dev]"')
    assert "TORCH ?= auto" in make
