"""Settings for a model the registry does not list: a student's own network, or a torchvision model built
directly.

Two steps, announced once per model:

1. **Recognise** a registry architecture from the module's type and size (``torchvision.models.resnet18()``
   is the registry's ``resnet18``: class ``ResNet``, 11 689 512 parameters), and use its tuned settings.
2. Otherwise **derive** the layers from the structure, with one forward pass at the model's input size:
   the layers whose output is a spatial map ``[B, C, h, w]``, taken at the shallowest depth of the module
   tree that has at least four of them (a ResNet's ``layer1 … layer4``, a VGG's ``features.0 … features.30``,
   a ``nn.Sequential``'s children). CAM and Grad-CAM use the last of them, as pytorch-grad-cam advises per
   family (``layer4``, ``features[-1]``); style, texture, inversion and feature maps take evenly spaced ones;
   class objectives need only the logits. The synthesis step sizes are the bundled model's.

A model without registry facts is assumed to take ImageNet-normalised input (mean and std of
:data:`~introspect_lab.info.IMAGENET_MEAN`); for other data, normalise with
``normalize(x, mean=..., std=...)`` and pass the same statistics to your own loader.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from .hooks import forward_hooks, frozen
from .images import device_dtype
from .info import model_info
from .settings import (
    ClassVisSettings,
    DreamSettings,
    InversionSettings,
    ModelSettings,
    StyleSettings,
    TextureSettings,
)
from .settings_table import SETTINGS

__all__ = ["recognise", "spatial_layers", "infer_settings", "REGISTRY_ARCHITECTURES"]

#: Registry architectures by (module class, number of parameters) as torchvision builds them (1000 classes).
REGISTRY_ARCHITECTURES: dict[tuple[str, int], str] = {
    ("EfficientNetLite0", 4652008): "efficientnet_lite0",
    ("SqueezeNet", 1235496): "squeezenet1_1",
    ("ResNet", 11689512): "resnet18",
    ("AlexNet", 61100840): "alexnet",
    ("VGG", 138357544): "vgg16",
    ("VGG", 143667240): "vgg19",
}

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def recognise(model: nn.Module) -> str | None:
    """The registry name of ``model``'s architecture, or ``None`` (matched by class name and parameter
    count).
    """
    n = sum(p.numel() for p in model.parameters())
    return REGISTRY_ARCHITECTURES.get((type(model).__name__, n))


def spatial_layers(model: nn.Module, size: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, output shape)`` of the block-level layers with a spatial output, in the order they run.

    "Block level" is the shallowest depth of the module tree (number of dots in the name) with at least
    four such layers. One forward pass of a zero image at ``size`` (default: the model's input size),
    in eval mode, without gradients; hooks are removed and the model's mode restored.
    """
    size = size or model_info(model).input_size
    device, dtype = device_dtype(model)
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, out):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
                seen.setdefault(name, tuple(out.shape[1:]))

        return hook

    hooks = {name: record(name) for name, _ in model.named_modules() if name}
    with forward_hooks(model, hooks), frozen(model), torch.no_grad():
        try:
            model(torch.zeros(1, 3, size, size, device=device, dtype=dtype))
        except (RuntimeError, ValueError, TypeError) as e:
            raise ValueError(
                f"{type(model).__name__} does not take a [1, 3, {size}, {size}] image ({e}), "
                "so its layers cannot be derived; pass layer=... and settings=... yourself "
                "(see list_layers(model))."
            ) from None
    if not seen:
        raise ValueError(
            f"{type(model).__name__} has no layer with a spatial output [B, C, h, w] at {size} px, "
            "so there is no feature map to visualise; pass layer=... yourself (see list_layers(model))."
        )
    depths = sorted({n.count(".") for n in seen})
    depth = next((d for d in depths if sum(n.count(".") == d for n in seen) >= 4), depths[-1])
    return [(n, s) for n, s in seen.items() if n.count(".") == depth]


def _spaced(names: list[str], k: int, upto: float = 1.0) -> tuple[str, ...]:
    """``k`` evenly spaced names from the first to the one at fraction ``upto`` of the list (no repeats)."""
    last = max(0, round(upto * (len(names) - 1)))
    idx = sorted({round(i * last / max(k - 1, 1)) for i in range(k)})
    return tuple(names[i] for i in idx)


def _derive(model: nn.Module) -> ModelSettings:
    names = [n for n, _ in spatial_layers(model)]
    at = lambda f: names[round(f * (len(names) - 1))]  # noqa: E731
    style = _spaced(names, 4, 0.7)
    return ModelSettings(
        activation_layer=at(0.4),
        feature_layers=_spaced(names, 5),
        patch_layer=at(0.5),
        patch_layers=_spaced(names, 6, 0.85),
        cam_layer=names[-1],
        grad_cam_layers=_spaced(names, 3),
        neuron_layers=(at(0.4), at(0.7), names[-1]),
        channel_layers=_spaced(names, 4),
        dream_layers=_spaced(names, 4)[1:] or (names[-1],),
        inversion_layers=_spaced(names, 5),
        mid_layer=at(0.5),
        deep_layer=names[-1],
        class_vis=ClassVisSettings(size=128, jitter=8),
        channel_vis=ClassVisSettings(size=128, jitter=8),
        deepdream=DreamSettings(layer=at(0.7)),
        inversion=InversionSettings(),
        style=StyleSettings(content_layer=at(0.6), style_layers=style, style_weights=(1.0,) * len(style)),
        texture=TextureSettings(style_layers=style, style_weights=(1.0,) * len(style)),
    )


def infer_settings(model: nn.Module, *, verbose: bool = True) -> ModelSettings:
    """Settings for any classifier: the registry's when the architecture is recognised, else derived.

    The first call for a model prints what was chosen and why (once per model object); later calls
    return the same settings. Source: pytorch-grad-cam's per-family layer advice; Lucent's
    ``render_vis(model, "labels:281")``, which needs no layer names for a class objective.
    """
    if model in _CACHE:
        return _CACHE[model]
    kind = type(model).__name__
    name = recognise(model)
    if name is not None:
        found, why = SETTINGS[name], f"recognised as the registry's {name}: its tuned settings are used"
    else:
        found = _derive(model)
        why = (
            f"not a registry architecture; derived from its structure: CAM/Grad-CAM layer {found.cam_layer} "
            f"(the last spatial map), feature maps {', '.join(found.feature_layers)}, "
            f"style layers {', '.join(found.style.style_layers)}; class objectives use the logits"
        )
    if verbose:
        print(
            f"{kind}: {why}. Input assumed ImageNet-normalised at {model_info(model).input_size} px "
            "(for other data: normalize(x, mean=..., std=...))."
        )
    _CACHE[model] = found
    return found
