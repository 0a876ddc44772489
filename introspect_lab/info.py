"""What a model expects and predicts: input size, normalisation and class names.

:func:`model_info` reads the :class:`ModelInfo` that
:func:`introspect_lab.models.load_model` attaches; any other network is
taken to expect ImageNet-normalised 224 px input. Kept apart from
:mod:`introspect_lab.models` so that :mod:`introspect_lab.images` can use it
without importing the registry.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from torch import nn

from .lazy import lazy_import

torchvision_models = lazy_import("torchvision.models")

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "model_info", "imagenet_categories"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in torchvision's order (no download needed).

    torchvision keeps them as a literal list in ``torchvision/models/_meta.py`` (the
    ``meta["categories"]`` of every ImageNet weight enum). The list is read from that
    file without importing torchvision, whose model zoo costs about 2 s at import and is
    not needed for the bundled EfficientNet-Lite0; if the file ever changes shape, the
    weight enum is asked instead.
    """
    spec = importlib.util.find_spec("torchvision")
    meta = Path(spec.submodule_search_locations[0]) / "models" / "_meta.py" if spec else None
    try:
        tree = ast.parse(meta.read_text(encoding="utf-8"))
        node = next(
            n
            for n in tree.body
            if isinstance(n, ast.Assign)
            and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in n.targets)
        )
        cats = tuple(ast.literal_eval(node.value))
        if len(cats) == 1000:
            return cats
    except (AttributeError, OSError, StopIteration, SyntaxError, ValueError):
        pass
    return tuple(torchvision_models.SqueezeNet1_1_Weights.DEFAULT.meta["categories"])


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects and predicts: name, preprocessing and class names."""

    name: str
    source: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    categories: tuple[str, ...] = field(default_factory=imagenet_categories, repr=False)


def model_info(model: nn.Module) -> ModelInfo:
    """The :class:`ModelInfo` attached by :func:`load_model`.

    Any other module (a hand-built test model, a student's own network) is
    assumed to take ImageNet-normalised 224 px input.
    """
    info = getattr(model, "lab_info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(name=type(model).__name__, source="user model")
