"""The fast path for methods that run one model many times.

* :func:`batchnorm_folded`: a copy of the model with each BatchNorm folded into the convolution
  before it (one operation fewer per convolution, forward and backward): the synthesis loop,
  integrated gradients, PGD and fooling;
* :class:`ChannelsLast`: calls a function with its image batch in channels-last memory, which
  takes oneDNN's faster convolutions on a CPU, and falls back for a model that cannot take it:
  integrated gradients, the attacks, training and feature extraction.

Both give the same results up to float rounding. The model itself is never changed.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .hooks import count_hooks, frozen

__all__ = ["batchnorm_folded", "ChannelsLast"]


def batchnorm_folded(model: nn.Module, keep: Sequence[str] = ()) -> nn.Module:
    """A copy of an eval-mode ``model`` with each BatchNorm2d folded into the Conv2d before it, or ``model``.

    In eval mode a BatchNorm is a fixed affine map per channel, so it can live in the convolution's
    weights: ``w' = w·γ/σ``, ``b' = (b − μ)·γ/σ + β`` with ``σ = √(var + ε)`` (Ioffe & Szegedy 2015;
    ``torch.nn.utils.fusion.fuse_conv_bn_eval``). The function is the same to rounding (Lite0's
    logits: 1.5e-5) with one operation fewer per pair in the forward and the backward pass. Lite0 at
    128 px on one core, 100 steps, the copy included: style transfer 0.91× the time [95 % interval
    0.84, 0.97], Adam texture synthesis 0.86× [0.77, 0.94] (8 alternating pairs).

    Only pairs that follow each other in a plain ``nn.Sequential`` are folded (its forward runs its
    children in order), and the BatchNorm is replaced by ``nn.Identity``, so every module keeps its
    name: a hook on the BatchNorm sees the same values. Left as they are: a pair whose Conv2d is in
    ``keep`` (a hook there must see the convolution's own output), BatchNorms in train mode, and
    half precision. The copy shares every other weight with ``model``, which is never changed, and
    the hooks ``model`` has now (a pathway's masks, a student's probe): each module of the copy
    calls the very same hook objects, and a pair with a hook on its Conv2d or its BatchNorm is not
    folded. Hooks registered later, on either, stay with that one. A model with nothing to fold is
    returned as it is.
    """
    pairs = [  # (Sequential's name, conv's key, BatchNorm's key)
        (name, key, bn_key)
        for name, seq in model.named_modules()
        if isinstance(seq, nn.Sequential) and type(seq).forward is nn.Sequential.forward
        for (key, conv), (bn_key, bn) in zip(list(seq._modules.items()), list(seq._modules.items())[1:])
        if _foldable(conv, bn) and (f"{name}.{key}" if name else key) not in keep
    ]
    if not pairs:
        return model
    # new modules sharing the model's weights and hooks; only the folded convolutions get weights of
    # their own
    shared = itertools.chain(model.parameters(), model.buffers(), _hooks(model))
    net = copy.deepcopy(model, {id(t): t for t in shared})
    for name, key, bn_key in pairs:
        seq = net.get_submodule(name)
        seq._modules[key] = fuse_conv_bn_eval(seq._modules[key], seq._modules[bn_key]).requires_grad_(False)
        seq._modules[bn_key] = nn.Identity()
    return net


def _hooks(model: nn.Module) -> list:
    """Every hook in every module's hook dictionaries (``_forward_hooks``, ``_backward_pre_hooks``, …)."""
    dicts = [
        d for m in model.modules() for k, d in vars(m).items() if k.endswith("hooks") and isinstance(d, dict)
    ]
    return [fn for d in dicts for fn in d.values()]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        not count_hooks(conv)
        and not count_hooks(bn)
        and type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and not bn.training
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
        and conv.weight.dtype in (torch.float32, torch.float64)
    )


class ChannelsLast:
    """``fn(x, ...)`` with the batch ``x`` ``[B,C,H,W]`` in channels-last memory, else as it is.

    oneDNN's convolutions on a CPU take channels-last (NHWC) batches without reordering them.
    EfficientNet-Lite0 on one core: a pass with the input's gradient takes 0.8–0.9× the time at
    96–224 px; a training step of 32 images at 48 px 0.6×; a forward pass of 16 images at 224 px
    0.65×. The values agree up to float rounding. Only CPU batches are converted (elsewhere the
    gain depends on the device and the library). A model that cannot take such a batch (``view``
    on a channels-last tensor raises, as after the convolutions of PyTorch's tutorial CNN) is
    called with ``x`` as it is, from the first failure on.
    Source: PyTorch's channels-last tutorial (``torch.channels_last``).
    """

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn, self.enabled = fn, True

    @classmethod
    def probed(cls, model: nn.Module, example: torch.Tensor) -> ChannelsLast:
        """``ChannelsLast(model)``, its layout decided up front by one image of ``example``.

        For calls with side effects, such as training steps (a failed pass would already have
        moved train-mode BatchNorm statistics): the probe runs in eval mode without gradients.
        """
        run = cls(model)
        if run.takes(example):
            with frozen(model), torch.no_grad():
                try:
                    model(example[:1].contiguous(memory_format=torch.channels_last))
                except RuntimeError:
                    run.enabled = False
        return run

    def takes(self, x: torch.Tensor) -> bool:
        """Whether ``x`` would be converted: still enabled, and a 4-d batch on a CPU."""
        return self.enabled and x.dim() == 4 and x.device.type == "cpu"

    def __call__(self, x: torch.Tensor, *args, **kwargs):
        if self.takes(x):
            try:
                return self.fn(x.contiguous(memory_format=torch.channels_last), *args, **kwargs)
            except RuntimeError:
                self.enabled = False  # and run it as it is: a genuine error is raised again there
        return self.fn(x, *args, **kwargs)
