"""Class activation maps: CAM, Grad-CAM and guided Grad-CAM (lecture 004).

``layer=`` here, as everywhere in the package, names the layer whose output
the method reads; Grad-CAM's default is :func:`cam_layer`: the registry's
``models.model_settings(model).cam_layer``, else :func:`last_conv_layer`.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from ..devices import returns_to_input_device
from ..hooks import capture, forward_hooks, frozen
from ..images import check_batch
from ..models import MODELS, get_layer, model_info
from .backprop import backprop
from .base import Target, finish_map, logits_of, reduce_channels, resolve_targets

__all__ = ["cam", "grad_cam", "guided_grad_cam", "last_conv_layer", "cam_layer"]


def _forward_trace(model: nn.Module, x: torch.Tensor):
    """Forward once; record 4-D outputs of every named module (in exit order) and the last Linear's input."""
    outputs: list[tuple[str, torch.Tensor]] = []
    linear: list[tuple[str, nn.Linear, torch.Tensor]] = []

    def out_hook(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                outputs.append((name, output.detach()))
            if isinstance(module, nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor):
                linear.append((name, module, inputs[0].detach()))

        return hook

    hooks = {name: out_hook(name) for name, _ in model.named_modules() if name}
    with forward_hooks(model, hooks), frozen(model), torch.no_grad():
        logits = logits_of(model(x))
    return logits, outputs, linear


def last_conv_layer(model: nn.Module, size: int | None = None) -> str:
    """Name of the last layer whose output is a spatial feature map (``[B,C,h,w]``, ``h·w > 1``).

    Grad-CAM's usual choice (Selvaraju et al. 2017): ``"head"`` for
    EfficientNet-Lite0, ``"layer4"`` for ResNet, ``"features"`` for AlexNet/VGG.
    """
    size = size or model_info(model).input_size
    key = (size, tuple(name for name, _ in model.named_modules()))
    cached = _LAST_CONV.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    device = next(model.parameters()).device
    _, outputs, _ = _forward_trace(model, torch.zeros(1, 3, size, size, device=device))
    spatial = [name for name, out in outputs if out.shape[-1] * out.shape[-2] > 1]
    if not spatial:
        raise ValueError(
            "The model has no layer with a spatial output; Grad-CAM needs a convolutional layer."
        )
    _LAST_CONV[model] = (key, spatial[-1])
    return spatial[-1]


_LAST_CONV: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cam_layer(model: nn.Module, size: int | None = None) -> str:
    """Grad-CAM's default layer: the registry's ``model_settings(model).cam_layer``, else
    :func:`last_conv_layer`.

    The registry follows pytorch-grad-cam's advice per family (the last
    feature block before the classifier): ``layer4`` for ResNet, the last
    ``features`` module for VGG/AlexNet, the last Fire module for SqueezeNet
    (not its class-score conv), ``head`` for EfficientNet-Lite0.
    """
    spec = MODELS.get(model_info(model).name)
    if spec is not None and spec.settings is not None:
        return spec.settings.cam_layer
    return last_conv_layer(model, size=size)


@returns_to_input_device("x")
def cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    raw: bool = False,
    relu: bool = True,
    interpolate: str = "bilinear",
) -> torch.Tensor:
    """Class activation map (Zhou et al. 2016), from the final linear layer's weights.

    For a model ending in global average pooling plus one linear layer
    (lecture 004): ``F_k = (1/HW) Σ_{h,w} f_{h,w,k}``, ``S_c = Σ_k w_{k,c} F_k``,
    so the class score splits over positions and the map is
    ``M_c(h, w) = Σ_k w_{k,c} f_{h,w,k}`` (bias left out, so
    ``mean(M_c) = S_c − b_c``). For a model whose scores are the spatial mean of
    a class-channel map (SqueezeNet's conv classifier) that map's channel
    ``c`` is the CAM.

    The structure is *checked*, not assumed: the linear layer's input must
    equal the spatial mean of a feature map of the forward pass. Any other
    model raises an error pointing to :func:`grad_cam`.

    Returns ``[B,H,W]`` upsampled (``interpolate``) to the input size, or the
    feature-map resolution with ``raw=True``. ``relu=True`` (default, as
    :func:`grad_cam`) keeps only positive evidence; ``relu=False`` the signed map.
    """
    x = check_batch(x, "x", model)
    logits, outputs, linear = _forward_trace(model, x)
    idx = resolve_targets(model, target, logits)
    maps = None
    if linear:
        _, fc, fc_in = linear[-1]
        for _name, out in reversed(outputs):
            if out.shape[1] == fc.in_features and out.shape[-1] * out.shape[-2] > 1 and fc_in.dim() == 2:
                if torch.allclose(out.mean((2, 3)), fc_in, rtol=1e-4, atol=1e-5):
                    w = fc.weight[idx].detach()  # [B, K]
                    maps = torch.einsum("bk,bkhw->bhw", w, out)
                break
    else:
        for _name, out in reversed(outputs):
            if out.shape[1] == logits.shape[1] and out.shape[-1] * out.shape[-2] > 1:
                if torch.allclose(out.mean((2, 3)), logits, rtol=1e-4, atol=1e-5):
                    maps = out[torch.arange(out.shape[0]), idx]
                break
    if maps is None:
        raise ValueError(
            f"cam() needs a model that ends in global average pooling followed by one linear layer "
            f"(Zhou et al. 2016), and {model_info(model).name} does not (its last linear layer does not "
            "read the spatial mean of a feature map). Use grad_cam(model, x, target, layer=...), which "
            "works at any layer of any CNN."
        )
    return finish_map(maps, x, relu=relu, raw=raw, interpolate=interpolate)


@returns_to_input_device("x")
def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    raw: bool = False,
    relu: bool = True,
    interpolate: str = "bilinear",
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at any named layer.

    Lecture 004: with activations ``A ∈ R^{H×W×K}`` of the chosen layer,
    ``α_k = (1/HW) Σ_{h,w} ∂S_c/∂A_{h,w,k}`` and
    ``M^c_{h,w} = ReLU(Σ_k α_k A_{h,w,k})``.

    ``layer`` defaults to :func:`cam_layer`. Returns ``[B,H,W]``
    upsampled to the input size (``interpolate="bilinear"`` as in the paper;
    ``"nearest"`` matches Captum's default), or ``[B,h,w]`` with ``raw=True``.
    ``relu=False`` keeps the signed map.
    """
    x = check_batch(x, "x", model)
    if layer is None:
        layer = cam_layer(model, size=x.shape[-1] if x.shape[-1] == x.shape[-2] else None)
    get_layer(model, layer)
    xg = x.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad(), capture(model, layer, gradients=True) as cap:
        out = logits_of(model(xg))
        idx = resolve_targets(model, target, out)
        out.gather(1, idx[:, None]).sum().backward()
        acts, grads = cap.activations[layer], cap.gradients.get(layer)
    if grads is None or acts.dim() != 4:
        raise ValueError(
            f"Layer {layer!r} gives no spatial feature map with a gradient (output shape "
            f"{tuple(acts.shape)}); choose a convolutional layer, e.g. {last_conv_layer(model)!r}."
        )
    alpha = grads.mean((2, 3), keepdim=True)
    maps = (alpha * acts).sum(1)
    return finish_map(maps, x, relu=relu, raw=raw, interpolate=interpolate)


@returns_to_input_device("x")
def guided_grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    interpolate: str = "bilinear",
    reduce: str = "none",
) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop × upsampled Grad-CAM.

    ``G^c = GB^c ⊙ up(M^c)`` — fine detail from :func:`guided_backprop`,
    class-discriminative location from :func:`grad_cam`. Pixel space
    ``[B,3,H,W]`` (``reduce`` as in :func:`~.gradients.gradient`).
    ``interpolate="nearest"`` reproduces Captum's ``GuidedGradCam``.
    """
    x = check_batch(x, "x", model)
    gc = grad_cam(model, x, target, layer=layer, interpolate=interpolate)
    gb = backprop(model, x, target, rule="guided")
    return reduce_channels(gb * gc.unsqueeze(1), reduce)
