"""introspect-lab: look inside convolutional networks, in lecture-sized notebooks.

The helper library behind the notebooks in ``notebooks/``. Start with
:func:`load_model`, :func:`load_image` and :func:`sample_image`; every
lecture topic has its own module (``attribution``, ``synthesis``, …).
"""

from .config import fast, is_fast
from .hooks import capture, frozen, no_inplace
from .images import denormalize, load_image, normalize, sample_image, sample_names, show, to_display
from .memory import trim_after_cells
from .models import (
    MODELS,
    class_index,
    get_layer,
    list_layers,
    load_model,
    model_info,
    predict,
)

__version__ = "0.1.0"

trim_after_cells()  # in a notebook kernel on Linux: give freed memory back after each cell

__all__ = [
    "MODELS",
    "capture",
    "class_index",
    "denormalize",
    "fast",
    "frozen",
    "get_layer",
    "is_fast",
    "list_layers",
    "load_image",
    "load_model",
    "model_info",
    "no_inplace",
    "normalize",
    "predict",
    "sample_image",
    "sample_names",
    "show",
    "to_display",
]
