"""Which device a model runs on: ``load_model(..., device="auto")`` picks CUDA, then Apple's MPS, then the CPU.

Everything else follows the model: entry points create their tensors on the model's device and in its
dtype (:func:`introspect_lab.images.device_dtype`), and :func:`introspect_lab.images.load_image` puts a
photo where the model is.
"""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


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
