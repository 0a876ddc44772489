"""The introspect-lab command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from introspect_lab.cli import main


def test_info_lists_models_and_caches(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "bundled" in out
    assert "squeezenet1_1" in out and "weights cache" in out
    assert "imagenette" in out


def test_fetch_offline_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    assert main(["fetch", "--models", "squeezenet1_1"]) == 1
    err = capsys.readouterr().err
    assert "squeezenet1_1: FAILED" in err and "introspect-lab fetch" in err
    assert not list(tmp_path.rglob("*"))


def test_fetch_unknown_name(capsys):
    assert main(["fetch", "--models", "resnet19"]) == 2
    assert "resnet18" in capsys.readouterr().err


def test_bundled_model_needs_no_fetch(capsys):
    assert main(["fetch", "--models", "efficientnet_lite0"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "introspect-lab"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "fetch" in proc.stdout
