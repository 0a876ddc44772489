"""Things by name: layers of a model, with errors that list the close matches.

``get_layer(model, "blocks.5")`` is ``model.get_submodule("blocks.5")`` with
an error that suggests ``'blocks.5'`` for ``"block.5"``. Every module that
takes a layer, model, class or photo name builds its "unknown name" error
with :func:`unknown_name_error`, so all of them read alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from torch import nn

__all__ = ["UnknownNameError", "unknown_name_error", "suggest", "layer_names", "get_layer"]


class UnknownNameError(ValueError):
    """A model, layer, class or sample name that does not exist."""


def suggest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` close matches of ``name`` among ``choices`` (case-insensitive, difflib)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def unknown_name_error(kind: str, name: str, choices: Sequence[str], hint: str = "") -> UnknownNameError:
    """Build the package's standard "unknown X" error with close matches."""
    close = suggest(name, choices)
    if close:
        msg = f"Unknown {kind} {name!r}. Did you mean {', '.join(repr(c) for c in close)}?"
    elif len(choices) <= 12:
        msg = f"Unknown {kind} {name!r}. Valid {kind}s: {', '.join(repr(c) for c in choices)}."
    else:
        msg = f"Unknown {kind} {name!r}."
    return UnknownNameError(f"{msg} {hint}".strip())


def layer_names(model: nn.Module) -> list[str]:
    """Every addressable submodule name, in definition order (``model.get_submodule`` names)."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name lists the close matches.

    Names are those of ``model.named_modules()``, e.g. ``"features.7"`` for
    SqueezeNet, ``"layer4"`` for ResNet, ``"blocks.10"`` for EfficientNet-Lite0.
    """
    if isinstance(name, nn.Module):
        return name
    if not isinstance(name, str):
        raise TypeError(f"A layer is given by its name (a str), got {type(name).__name__}.")
    names = layer_names(model)
    if name not in names:
        top = [n for n in names if "." not in n]
        raise unknown_name_error(
            "layer",
            name,
            names,
            hint=f"Top-level layers: {', '.join(top)}. See list_layers(model) for all names and shapes.",
        )
    return model.get_submodule(name)
