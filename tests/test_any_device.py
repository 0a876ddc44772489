"""Every entry point follows the model's device and dtype.

A ``float64`` copy of the bundled model is the CPU proxy for a GPU: a tensor made without the model's
dtype (or device) fails here the way it fails on CUDA. On a machine with CUDA the same calls also run there.
"""

from __future__ import annotations

import copy

import pytest
import torch
from entry_points import SIZE, entry_points

from introspect_lab import load_image, sample_image
from introspect_lab.images import as_model_input, device_dtype
from introspect_lab.synthesis import visualize_class


@pytest.fixture(scope="module")
def lite0_64(lite0):
    return copy.deepcopy(lite0).double()


@pytest.fixture(scope="module")
def photos64(lite0_64):
    x = load_image(sample_image("chelsea"), lite0_64, size=SIZE)
    s = load_image(sample_image("coffee"), lite0_64, size=SIZE)
    return as_model_input(x, lite0_64), as_model_input(s, lite0_64)


def test_device_dtype_reads_the_model():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    assert device_dtype(net) == (torch.device("cpu"), torch.float32)
    assert device_dtype(net.double()) == (torch.device("cpu"), torch.float64)
    assert device_dtype(torch.nn.ReLU()) == (torch.device("cpu"), torch.float32)  # no tensors: the default
    assert as_model_input(torch.zeros(1, 3, 4, 4), net).dtype == torch.float64


@pytest.mark.parametrize("name", list(entry_points(None, None, None)))
def test_every_entry_point_runs_in_float64(lite0_64, photos64, name, unchanged):
    """The float64 proxy: no tensor inside is made in float32, and the result keeps the model's dtype."""
    check = unchanged(lite0_64)
    x, s = photos64
    out = entry_points(lite0_64, x, s)[name]()
    assert out.dtype == torch.float64, (name, out.dtype)
    assert torch.isfinite(out).all()
    check()


def test_float64_synthesis_matches_float32(lite0, lite0_64):
    """Same seed, same start: the float64 image is the float32 one up to rounding (not just "it runs")."""
    a = visualize_class(lite0, 1, size=SIZE, steps=3, seed=0, progress=False).image
    b = visualize_class(lite0_64, 1, size=SIZE, steps=3, seed=0, progress=False).image
    assert b.dtype == torch.float64
    torch.testing.assert_close(b.float(), a, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", list(entry_points(None, None, None)))
def test_every_entry_point_runs_on_cuda(lite0, name):
    m = copy.deepcopy(lite0).cuda()
    x = load_image(sample_image("chelsea"), m, size=SIZE).cuda()
    s = load_image(sample_image("coffee"), m, size=SIZE).cuda()
    out = entry_points(m, x, s)[name]()
    assert out.device.type == "cuda", (name, out.device)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, capsys):
    from introspect_lab.devices import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert "CPU (no CUDA or MPS GPU found)" in capsys.readouterr().out
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Tesla T4")
    assert pick_device("auto") == torch.device("cuda")
    assert "CUDA GPU Tesla T4" in capsys.readouterr().out


def test_asking_for_a_missing_gpu_names_the_fix(monkeypatch):
    from introspect_lab.devices import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU; use device='auto' or 'cpu'"):
        pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_load_image_follows_the_model(lite0_64):
    x = load_image(sample_image("chelsea"), lite0_64, size=SIZE)
    assert (x.device, x.dtype) == device_dtype(lite0_64)
    assert load_image(sample_image("chelsea"), size=SIZE).dtype == torch.float32  # no model: CPU float32
