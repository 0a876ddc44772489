"""Install PyTorch into the venv before the package: the CPU-only build where no NVIDIA GPU can use CUDA.

    python .ci/install_torch.py --python .venv/bin/python [--torch auto|cpu|cuda]

Called by the Makefile's install step (``make lab`` / ``make test`` on a new venv), before
``pip install -e .[dev]``, which then finds torch and torchvision already there.

- ``auto`` (default, or ``TORCH`` unset): on Linux without an NVIDIA GPU, the CPU build;
  anywhere else, the default index (macOS and Windows wheels on PyPI are CPU builds already;
  Linux with a GPU wants CUDA).
- ``cpu``: torch and torchvision from PyTorch's CPU wheel index (``+cpu`` wheels, about
  200 MB of downloads) instead of PyPI's Linux build, which pulls about 3 GB of ``nvidia-*``
  wheels. If that index cannot be reached (a proxy, an offline mirror), say so and fall back
  to the default index.
- ``cuda``: the default index (PyPI's CUDA build on Linux).

A venv that already has torch is left alone (a re-install after ``pyproject.toml`` changed must
not download PyTorch again; ``make clean`` first to switch builds). Standard library only: it
runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGES = ["torch>=2.2", "torchvision>=0.17"]  # the ranges of pyproject.toml


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded (``/proc/driver/nvidia``) or ``nvidia-smi`` lists a GPU."""
    if Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def choose(torch: str, platform: str, gpu: bool) -> str:
    """``"cpu"`` (the CPU wheel index) or ``"default"`` (pip's configured index) for a ``TORCH`` value."""
    torch = (torch or "auto").lower()
    if torch not in ("auto", "cpu", "cuda"):
        raise SystemExit(f"TORCH={torch!r}: use TORCH=cpu, TORCH=cuda or leave it unset (auto).")
    if torch == "auto":
        return "cpu" if platform.startswith("linux") and not gpu else "default"
    return "cpu" if torch == "cpu" else "default"


def reachable(index: str, timeout: float = 5.0) -> str | None:
    """None if ``index``'s torch page answers, else why not (one short request, no retries)."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=timeout) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def installed(python: str) -> str | None:
    """The torch version in the venv of ``python``, or None."""
    code = "import importlib.metadata as m; print(m.version('torch'))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the venv's python (its pip installs)")
    ap.add_argument("--torch", default=os.environ.get("TORCH", "auto"), help="auto, cpu or cuda")
    ap.add_argument("--index", default=os.environ.get("TORCH_CPU_INDEX", CPU_INDEX), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if version := installed(args.python):
        print(f"torch {version} is already installed; `make clean` first to switch builds (TORCH=cpu|cuda).")
        return 0
    gpu = has_nvidia_gpu() if sys.platform.startswith("linux") else False
    if choose(args.torch, sys.platform, gpu) == "default":
        why = "TORCH=cuda" if args.torch == "cuda" else ("an NVIDIA GPU" if gpu else sys.platform)
        print(f"PyTorch from the default index ({why}); pip installs it with the package.")
        return 0
    if why := reachable(args.index):
        print(
            f"PyTorch's CPU wheel index {args.index} cannot be reached ({why}); falling back to the "
            "default index, which on Linux is the CUDA build (about 3 GB more to download)."
        )
        return 0
    print(f"PyTorch CPU-only build from {args.index} (no NVIDIA GPU; TORCH=cuda overrides).")
    cmd = [args.python, "-m", "pip", "install", "--quiet", "--index-url", args.index, *PACKAGES]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
