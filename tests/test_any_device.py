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


@pytest.mark.parametrize("name", ["saliency", "grad_cam", "occlusion (plain)", "fgsm", "invert"])
def test_a_float32_photo_follows_a_float64_model(lite0_64, name):
    """A photo loaded without the model (CPU float32) is moved to the model's device and dtype on entry."""
    x = load_image(sample_image("chelsea"), size=SIZE)
    assert x.dtype == torch.float32
    out = entry_points(lite0_64, x, x)[name]()
    assert out.dtype == torch.float64


def test_the_synthesis_loop_does_not_wait_for_the_device_every_step(lite0_64, monkeypatch):
    """No host round trip per step: float64 values read back to Python are counted (a CPU proxy for GPU
    syncs).

    The model is float64, so every value the loop computes from it is float64, while the random transforms'
    CPU draws are float32 or integer. Reads may happen every ``_CHECK_EVERY`` steps and at the end, not per
    step.
    """
    from introspect_lab.synthesis.engine import _CHECK_EVERY

    reads = []
    for name in ("item", "tolist", "__float__", "__bool__", "__int__", "__index__"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *args, _orig=orig, _name=name, **kwargs):
            if self.dtype == torch.float64:
                reads.append(_name)
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)

    def count(steps: int) -> int:
        reads.clear()
        visualize_class(lite0_64, 1, size=SIZE, steps=steps, seed=0, progress=False)
        return len(reads)

    short, long = count(10), count(40)
    per_check = max(short, 1)
    assert long - short <= (30 // _CHECK_EVERY) * per_check, (short, long)
    assert long - short < 30, f"{long - short} reads in 30 more steps"


def test_results_go_back_to_the_input_device():
    """The decorator moves every tensor of a result (plain, tuple, dict, dataclass) to the input's device.

    ``meta`` stands in for a second device on a CPU-only machine: the method's own tensors are on the CPU.
    """
    from dataclasses import dataclass

    from introspect_lab.devices import returns_to_input_device

    @dataclass
    class Out:
        image: torch.Tensor
        value: float

    @returns_to_input_device("x")
    def method(model, x, *, kind="tensor"):
        t = torch.ones(2, dtype=torch.float64)
        return {"tensor": t, "tuple": (t, 3), "dict": {"a": t}, "dataclass": Out(t, 1.0)}[kind]

    meta = torch.empty(1, device="meta")
    assert method(None, meta).device.type == "meta"
    assert method(None, x=meta).dtype == torch.float64
    assert method(None, meta, kind="tuple")[0].device.type == "meta"
    assert method(None, meta, kind="dict")["a"].device.type == "meta"
    out = method(None, meta, kind="dataclass")
    assert out.image.device.type == "meta" and out.value == 1.0
    assert method(None, torch.empty(1)).device.type == "cpu"


def test_every_entry_point_that_takes_an_image_returns_it_where_the_image_was():
    from introspect_lab import adversarial as Adv
    from introspect_lab import attribution as A
    from introspect_lab.synthesis import deepdream, invert
    from introspect_lab.texture.gatys import style_transfer, texture_synthesis

    methods = [
        A.gradient,
        A.saliency,
        A.smoothgrad,
        A.integrated_gradients,
        A.occlusion,
        A.cam,
        A.grad_cam,
        A.guided_backprop,
        A.deconvnet,
        A.guided_grad_cam,
        Adv.fgsm,
        Adv.pgd,
        deepdream,
        invert,
        style_transfer,
        texture_synthesis,
    ]
    missing = [m.__name__ for m in methods if not getattr(m, "returns_to_input_device", None)]
    assert not missing, f"not decorated with returns_to_input_device: {missing}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", list(entry_points(None, None, None)))
def test_a_cpu_photo_and_a_cuda_model_give_a_cpu_result(lite0, name):
    m = copy.deepcopy(lite0).cuda()
    x = load_image(sample_image("chelsea"), lite0, size=SIZE)
    s = load_image(sample_image("coffee"), lite0, size=SIZE)
    out = entry_points(m, x, s)[name]()
    takes_image = not name.startswith("visualize_")
    assert out.device.type == ("cpu" if takes_image else "cuda"), (name, out.device)
