"""Which device a model runs on: ``load_model(..., device="auto")`` picks CUDA, then Apple's MPS, then the
CPU.

Everything else follows the model: entry points create their tensors on the model's device and in its
dtype (:func:`introspect_lab.images.device_dtype`), and :func:`introspect_lab.images.load_image` puts a
photo where the model is. An entry point given an image on another device than the model's works on
the model's device and returns its result where the image was (:func:`returns_to_input_device`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["pick_device", "returns_to_input_device"]

F = TypeVar("F", bound=Callable)


def pick_device(device: str | torch.device = "auto", *, verbose: bool = True) -> torch.device:
    """``"auto"`` → the first available of CUDA, MPS, CPU (announced); any other name is checked and returned.

    A GPU makes optimisation-based methods (class visualisation, style transfer) several times faster;
    on Colab choose *Runtime → Change runtime type → GPU* first. Source: PyTorch's device semantics
    (``torch.cuda.is_available``, ``torch.backends.mps.is_available``).
    """
    if str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}, but this machine has no CUDA GPU; use device='auto' or 'cpu'."
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r}, but MPS is not available here; use device='auto' or 'cpu'.")
        return dev
    if torch.cuda.is_available():
        dev, why = torch.device("cuda"), f"CUDA GPU {torch.cuda.get_device_name(0)}"
    elif torch.backends.mps.is_available():
        dev, why = torch.device("mps"), "Apple GPU (MPS)"
    else:
        dev, why = torch.device("cpu"), "CPU (no CUDA or MPS GPU found)"
    if verbose:
        print(f"Device: {why}.")
    return dev


def returns_to_input_device(argument: str) -> Callable[[F], F]:
    """Decorator for an entry point: tensors in its result go back to the device of ``argument``.

    The method itself works on the model's device (its inputs are moved there); a student who
    passes a CPU photo to a model on the GPU gets a CPU map or image back, ready for plotting.
    Tensors inside tuples, lists, dicts and dataclasses (such as a ``SynthesisResult``) are moved
    too; dtypes are kept. Nothing is copied when the devices already agree. Source: PyTorch's
    ``Tensor.to(device)``; the convention is Captum's (attributions match the inputs).
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            given = signature.bind_partial(*args, **kwargs).arguments.get(argument)
            out = fn(*args, **kwargs)
            return _moved(out, given.device) if isinstance(given, torch.Tensor) else out

        wrapper.returns_to_input_device = argument  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _moved(value, device: torch.device):
    """``value`` with every tensor in it on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_moved(v, device) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            object.__setattr__(value, f.name, _moved(getattr(value, f.name), device))
    return value
