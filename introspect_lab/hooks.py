"""Look inside a model safely: capture activations and gradients by layer name.

Everything here is a context manager that undoes itself on exit, also
when the body raises:

* :func:`capture` records the outputs (and, on request, the gradients) of
  named layers;
* :func:`no_inplace` turns in-place activations (torchvision's
  ``ReLU(inplace=True)``) off for the duration, so captured tensors are not
  overwritten and backward hooks work;
* :func:`frozen` puts a model in eval mode with parameters that need no
  gradient, and restores every flag afterwards;
* :func:`forward_hooks` places any forward hooks (by layer name or module)
  and removes them on exit: every hook in the package is placed here.
  A hook that ends a pass early raises :class:`StopForward`.

The design follows pytorch-grad-cam's ``ActivationsAndGradients``: hooks
live in one object whose lifetime is a ``with`` block.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .names import get_layer

__all__ = [
    "Capture",
    "capture",
    "forward_hooks",
    "StopForward",
    "no_inplace",
    "frozen",
    "count_hooks",
    "weights_key",
]


@contextmanager
def no_inplace(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily set ``inplace=False`` on every module that has the flag.

    In-place ReLUs overwrite the tensor a hook just saw, and break module
    backward hooks ("Output 0 of BackwardHookFunctionBackward is a view and
    is being modified inplace", Captum #973). The flags are restored on exit.
    """
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield model
    finally:
        for m in changed:
            m.inplace = True


@contextmanager
def frozen(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on all parameters, restored on exit.

    Used by every method that differentiates with respect to the *input*:
    parameter gradients would cost time and memory, and a model left in
    train mode would change BatchNorm statistics and dropout.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def count_hooks(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on the model's modules (0 when clean)."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, attr, {}) or {})
    return total


class StopForward(Exception):
    """Raised inside a forward hook to skip the layers no one needs.

    :meth:`Capture.run` and every caller in the package catch it; it reaches
    you only when a model is called directly inside a ``capture(..., stop=True)``
    block.
    """

    def __init__(self, message: str = ""):
        super().__init__(
            message
            or "The forward pass was stopped early by capture(..., stop=True): inside that block, "
            "run the model with cap.run(x), not model(x)."
        )


@contextmanager
def forward_hooks(model: nn.Module, hooks, *, inplace_off: bool = True) -> Iterator[nn.Module]:
    """Place forward hooks for the ``with`` block; all are removed on exit, whatever happens.

    ``hooks`` maps a layer name (or a module of ``model``) to
    ``fn(module, inputs, output)`` as in ``register_forward_hook``; a hook
    may return a replacement output or raise :class:`StopForward`. Unknown
    names raise before any hook is placed. In-place activations are off in
    the block (``inplace_off=True``), see :func:`no_inplace`. A list of
    ``(name, fn)`` pairs places several hooks on one layer.
    """
    pairs = hooks.items() if isinstance(hooks, dict) else hooks
    modules = [(get_layer(model, key), fn) for key, fn in pairs]
    handles = []
    with ExitStack() as stack:
        if inplace_off:
            stack.enter_context(no_inplace(model))
        try:
            for module, fn in modules:
                handles.append(module.register_forward_hook(fn))
            yield model
        finally:
            for h in handles:
                h.remove()


@dataclass
class Capture:
    """What :func:`capture` recorded during the forward/backward passes in its block.

    ``activations[name]`` and ``gradients[name]`` hold the latest tensors,
    batch-first, for each requested layer.
    """

    model: nn.Module
    layers: list[str]
    detach: bool = True
    stop: bool = False
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.activations[name]

    def run(self, x: torch.Tensor) -> torch.Tensor | None:
        """Forward ``x``; with ``stop=True`` the pass ends after the last captured layer.

        Returns the model output, or ``None`` when the pass was stopped early
        (the captured activations are all there is to use then).
        """
        self.activations.clear()
        try:
            return self.model(x)
        except StopForward:
            return None


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"Cannot capture a layer whose output is {type(output).__name__}.")


@contextmanager
def capture(
    model: nn.Module,
    layers: str | Sequence[str],
    *,
    gradients: bool = False,
    detach: bool = True,
    stop: bool = False,
) -> Iterator[Capture]:
    """Record the outputs of named layers (and their gradients) inside a ``with`` block.

    Parameters
    ----------
    layers:
        One name or a list, as in ``model.named_modules()`` (e.g. ``"layer4"``,
        ``"features.12"``, ``"blocks.10"``). Unknown names raise before any
        hook is placed, listing close matches.
    gradients:
        Also record ∂(whatever you backpropagate)/∂(layer output) in
        ``cap.gradients``. The input or the parameters must require grad.
    detach:
        Store detached activations (default). ``detach=False`` keeps them in
        the graph, for losses built on them (feature visualisation, style).
    stop:
        With :meth:`Capture.run`, end the forward pass once every requested
        layer has fired: a model truncated after its deepest needed layer.

    In-place activations are switched off in the block and every hook is
    removed on exit, whatever happens inside.

    Example
    -------
    >>> with capture(model, ["blocks.5", "head"]) as cap:   # doctest: +SKIP
    ...     model(x)
    >>> cap.activations["head"].shape                        # doctest: +SKIP
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("capture() needs at least one layer name.")
    for name in names:
        get_layer(model, name)
    cap = Capture(model, names, detach=detach, stop=stop)

    def make_hook(name: str):
        def hook(module, inputs, output):
            out = _first_tensor(output)
            cap.activations[name] = out.detach() if detach else out
            if gradients and out.requires_grad:

                def store_grad(grad, name=name):
                    cap.gradients[name] = grad.detach()

                out.register_hook(store_grad)
            if stop and len(cap.activations) == len(names):
                raise StopForward

        return hook

    with forward_hooks(model, {name: make_hook(name) for name in names}):
        yield cap


def weights_key(model: nn.Module) -> tuple:
    """What identifies ``model``'s current weights.

    Each tensor's storage, in-place version, dtype and device, and the float64 sum of each
    floating-point tensor (which also sees edits through ``.data`` that skip the version). Used
    to tell when a cache built from a module's weights (a frozen inference copy, a filter spectrum)
    is stale. Source: ``Tensor.data_ptr`` and ``Tensor._version``, PyTorch's in-place counter.
    """
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    with torch.no_grad():
        floats = [t.sum(dtype=torch.float64) for t in tensors if t.is_floating_point()]
        sums = tuple(torch.stack(floats).tolist()) if floats else ()
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors) + sums
