"""Heavy optional dependencies, imported on first use.

``import introspect_lab`` (and each of its subpackages) should cost only what a
notebook's first cell needs. scipy, scikit-learn, scikit-image, torchvision,
ipywidgets and nbgrader each add a fraction of a second to seconds and tens of
MB; most lessons use one or two of them. A module that needs one binds it at
module level with :func:`lazy_import`::

    ndimage = lazy_import("scipy.ndimage")   # nothing is imported yet
    ndimage.binary_dilation(mask)            # first attribute access imports it

This is the one place the package defers imports. A :class:`LazyModule` is a
module object whose module-level ``__getattr__`` (the hook of PEP 562) imports
the real module by name with :func:`importlib.import_module` and copies its
namespace, so later lookups are plain attribute reads. Unlike
:class:`importlib.util.LazyLoader`, it defers dotted names (``sklearn.cluster``)
without importing their parent packages. ``from x import y`` cannot be deferred:
write ``x.y`` at the point of use.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__all__ = ["LazyModule", "lazy_import"]


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it at the first attribute access (PEP 562)."""

    def __init__(self, name: str, hint: str = "") -> None:
        super().__init__(name)
        self.__hint = hint

    def __getattr__(self, attr: str) -> Any:
        try:
            module = importlib.import_module(self.__name__)
        except ImportError as exc:
            if not self.__hint:
                raise
            raise ImportError(f"{self.__hint} ({exc})") from exc
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_import(name: str, hint: str = "") -> types.ModuleType:
    """Module ``name``, imported when one of its attributes is first read (PEP 562, ``importlib``).

    A missing module fails at that first use: with ``hint`` (what to install) as
    an ``ImportError`` naming the fix, otherwise with Python's own
    ``ModuleNotFoundError`` naming the module.
    """
    return LazyModule(name, hint)
