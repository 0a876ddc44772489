"""The settings of every registry model: one table per model, with the dataclasses' field names.

The dataclasses and what each field means are in :mod:`introspect_lab.settings`;
fields at their defaults are left out. Sources of the values:
``squeezenet1_1``'s synthesis values are cs231n's; ``efficientnet_lite0``'s
were found by experiment on the bundled model (128 px, 2-core CPU). The
torchvision classics take the bundled model's step sizes with layers of
their own: they run, at random weights in the tests, but are not tuned.
CAM/Grad-CAM layers follow pytorch-grad-cam's advice per family (ResNet
``layer4``, VGG/AlexNet the last ``features`` module, SqueezeNet its last
Fire module, EfficientNet its head). VGG-16 and VGG-19 share one table,
written in VGG's own layer names (``relu4_2``, ``pool5``). Look a model's settings up with
:func:`introspect_lab.models.settings`.
"""

from __future__ import annotations

from .settings import (
    ClassVisSettings,
    DreamSettings,
    InversionSettings,
    ModelSettings,
    PathwayLayers,
    StyleSettings,
    TextureSettings,
)

__all__ = ["SETTINGS"]

_CS231N_CLASS = ClassVisSettings(size=224, jitter=16)
_LITE0_CLASS = ClassVisSettings(size=128, jitter=8)


def _vgg_layers(convs_per_block: tuple[int, ...]) -> dict[str, str]:
    """VGG's layer names (Simonyan & Zisserman 2015; ``relu4_2``, ``pool5``, ...) → torchvision module names.

    ``convs_per_block`` is (2, 2, 3, 3, 3) for VGG-16 and (2, 2, 4, 4, 4) for VGG-19; ``reluB_last`` is the
    last ReLU of block B (``relu5_3`` in VGG-16, ``relu5_4`` in VGG-19).
    """
    names, i = {}, 0
    for b, n in enumerate(convs_per_block, start=1):
        for c in range(1, n + 1):
            names[f"conv{b}_{c}"], names[f"relu{b}_{c}"] = f"features.{i}", f"features.{i + 1}"
            i += 2
        names[f"relu{b}_last"], names[f"pool{b}"] = f"features.{i - 1}", f"features.{i}"
        i += 1
    return names


def _vgg(convs_per_block: tuple[int, ...]) -> ModelSettings:
    """One table for VGG-16 and VGG-19, in VGG's layer names (they differ only in block depth)."""
    L = _vgg_layers(convs_per_block)

    def at(*names: str) -> tuple[str, ...]:
        return tuple(L[n] for n in names)

    gatys = at("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # Gatys et al.'s style layers
    return ModelSettings(
        activation_layer=L["relu3_1"],
        feature_layers=(*gatys, L["relu5_last"]),
        patch_layer=L["relu4_1"],
        patch_layers=at("relu2_1", "relu3_1", "relu3_last", "relu4_1", "relu4_last", "relu5_1"),
        cam_layer=L["pool5"],
        grad_cam_layers=at("pool3", "pool4", "pool5"),
        neuron_layers=at("relu3_1", "relu4_1", "relu5_last"),
        channel_layers=at("relu1_2", "relu3_last", "relu4_last", "relu5_last"),
        dream_layers=at("relu3_last", "relu4_last", "relu5_1", "relu5_last"),
        inversion_layers=at("relu1_2", "relu2_2", "relu3_last", "relu4_last", "relu5_last"),
        mid_layer=L["relu3_last"],
        deep_layer=L["relu5_last"],
        class_vis=_LITE0_CLASS,
        channel_vis=_LITE0_CLASS,
        deepdream=DreamSettings(layer=L["relu4_last"]),
        inversion=InversionSettings(),
        style=StyleSettings(content_layer=L["relu4_2"], style_layers=gatys, style_weights=(1.0,) * 5),
        texture=TextureSettings(style_layers=gatys, style_weights=(1.0,) * 5),
        pathways=PathwayLayers(
            location=L["pool5"],
            topic="classifier.4",
            dropout=("classifier.2", "classifier.5"),  # torchvision's VGG drops relu6 and relu7, as Caffe's
            code=("classifier.4", "classifier.1", L["pool5"]),
            roles=(
                ("pool5", L["pool5"]),
                ("fc6", "classifier.1 (ReLU of fc6)"),
                ("fc7", "classifier.4 (ReLU of fc7)"),
            ),
        ),
        novelty_layers=at("conv1_1", "conv1_1", "relu1_1", "pool1", "pool2", "pool3", "pool4", "pool5")
        + ("avgpool",),
    )


#: The settings of every registry model, by name: one table per model, with the dataclasses' field
#: names (fields at their defaults are left out). The torchvision classics take the bundled
#: model's step sizes with layers of their own.
SETTINGS: dict[str, ModelSettings] = {
    "efficientnet_lite0": ModelSettings(
        activation_layer="blocks.4.depthwise",
        feature_layers=("stem", "blocks.1.depthwise", "blocks.4.depthwise", "blocks.10.depthwise", "head"),
        patch_layer="blocks.4",
        patch_layers=("blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.7"),
        cam_layer="head",
        grad_cam_layers=("blocks.5", "blocks.10", "blocks.15", "head"),
        neuron_layers=("blocks.3", "blocks.8", "blocks.14"),
        channel_layers=("stem", "blocks.3", "blocks.8", "blocks.14"),
        dream_layers=("blocks.2", "blocks.6", "blocks.10", "blocks.14"),
        inversion_layers=("stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8", "blocks.12", "head"),
        mid_layer="blocks.5",
        deep_layer="blocks.12",
        class_vis=_LITE0_CLASS,
        channel_vis=_LITE0_CLASS,
        deepdream=DreamSettings(
            layer="blocks.8",
        ),
        inversion=InversionSettings(),
        style=StyleSettings(
            content_layer="blocks.5",
            style_layers=("stem", "blocks.1", "blocks.3", "blocks.5"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        texture=TextureSettings(
            style_layers=("stem", "blocks.1", "blocks.3", "blocks.5"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        pathways=PathwayLayers(
            location="head",
            topic="flatten",
            dropout=("dropout",),
            code=("flatten", "head"),
            roles=(
                ("pool5", "head (last conv map, 1×1 conv + ReLU6)"),
                ("fc6", "none: no hidden FC layer; the 1×1 head conv acts as one at every location"),
                (
                    "fc7",
                    (
                        "flatten (the head map averaged: the classifier's input, "
                        "where its training dropout acts)"
                    ),
                ),
            ),
        ),
        novelty_layers=(
            "stem.conv",
            "stem.bn",
            "stem.act",
            "blocks.0",
            "blocks.2",
            "blocks.4",
            "blocks.10",
            "head",
            "pool",
        ),
    ),
    "squeezenet1_1": ModelSettings(
        activation_layer="features.4",
        feature_layers=("features.1", "features.4", "features.7", "features.10", "features.12"),
        patch_layer="features.7",
        patch_layers=("features.3", "features.4", "features.6", "features.7", "features.9", "features.10"),
        cam_layer="features.12",
        grad_cam_layers=("features.5", "features.9", "features.12"),
        neuron_layers=("features.4", "features.7", "features.12"),
        channel_layers=("features.1", "features.4", "features.7", "features.12"),
        dream_layers=("features.4", "features.7", "features.10", "features.12"),
        inversion_layers=(
            "features.1",
            "features.3",
            "features.4",
            "features.6",
            "features.7",
            "features.9",
            "features.12",
        ),
        mid_layer="features.7",
        deep_layer="features.12",
        class_vis=_CS231N_CLASS,
        channel_vis=_CS231N_CLASS,
        deepdream=DreamSettings(
            layer="features.9",
            size=224,
            steps=20,
            jitter=16,
        ),
        inversion=InversionSettings(
            size=192,
            steps=200,
            lr=3.0,
            lr_drop=(0.9, 0.1),
            tv_weight=0.02,
        ),
        style=StyleSettings(
            content_layer="features.3",
            style_layers=("features.1", "features.4", "features.6", "features.7"),
            style_weights=(3e5, 1e3, 15, 3),
            size=192,
            lr=3.0,
            lr_drop=(0.9, 0.1),
            content_weight=0.06,
            tv_weight=0.02,
            clamp_range=(-1.5, 1.5),
        ),
        texture=TextureSettings(
            style_layers=("features.1", "features.4", "features.6", "features.7"),
            style_weights=(3e5, 1e3, 15, 3),
            size=192,
        ),
        pathways=PathwayLayers(
            location="features.12",
            topic="classifier.0",
            dropout=("classifier.0",),
            code=("classifier.0", "features.12"),
            roles=(
                ("pool5", "features.12 (last Fire module, after ReLU)"),
                ("fc6", "none: no hidden FC layer"),
                (
                    "fc7",
                    (
                        "classifier.0 (the map the 1×1 classifier conv reads, "
                        "where dropout acts; averaged for NMF)"
                    ),
                ),
            ),
        ),
        novelty_layers=(
            "features.0",
            "features.0",
            "features.1",
            "features.2",
            "features.4",
            "features.7",
            "features.10",
            "features.12",
            "classifier.3",
        ),
    ),
    "resnet18": ModelSettings(
        activation_layer="layer2",
        feature_layers=("relu", "layer1", "layer2", "layer3", "layer4"),
        patch_layer="layer2",
        patch_layers=("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1"),
        cam_layer="layer4",
        grad_cam_layers=("layer2", "layer3", "layer4"),
        neuron_layers=("layer2", "layer3", "layer4"),
        channel_layers=("layer1", "layer2", "layer3", "layer4"),
        dream_layers=("layer2", "layer3.0", "layer3", "layer4"),
        inversion_layers=("relu", "layer1", "layer2", "layer3", "layer4"),
        mid_layer="layer2",
        deep_layer="layer4",
        class_vis=_LITE0_CLASS,
        channel_vis=_LITE0_CLASS,
        deepdream=DreamSettings(
            layer="layer3",
        ),
        inversion=InversionSettings(),
        style=StyleSettings(
            content_layer="layer3",
            style_layers=("relu", "layer1", "layer2", "layer3"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        texture=TextureSettings(
            style_layers=("relu", "layer1", "layer2", "layer3"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        pathways=PathwayLayers(
            location="layer4",
            topic="avgpool",
            dropout=("avgpool",),
            code=("avgpool", "layer4"),
            roles=(
                ("pool5", "layer4 (last conv map, after ReLU)"),
                ("fc6", "none: no hidden FC layer"),
                ("fc7", "avgpool (the last map averaged: the classifier's input)"),
            ),
        ),
        novelty_layers=("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"),
    ),
    "alexnet": ModelSettings(
        activation_layer="features.4",
        feature_layers=("features.1", "features.4", "features.7", "features.9", "features.11"),
        patch_layer="features.7",
        patch_layers=("features.1", "features.4", "features.7", "features.9", "features.11"),
        cam_layer="features.12",
        grad_cam_layers=("features.5", "features.9", "features.12"),
        neuron_layers=("features.4", "features.7", "features.11"),
        channel_layers=("features.1", "features.4", "features.7", "features.11"),
        dream_layers=("features.4", "features.7", "features.9", "features.11"),
        inversion_layers=("features.1", "features.4", "features.7", "features.9", "features.11"),
        mid_layer="features.7",
        deep_layer="features.11",
        class_vis=_LITE0_CLASS,
        channel_vis=_LITE0_CLASS,
        deepdream=DreamSettings(
            layer="features.9",
        ),
        inversion=InversionSettings(),
        style=StyleSettings(
            content_layer="features.7",
            style_layers=("features.1", "features.4", "features.7", "features.9"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        texture=TextureSettings(
            style_layers=("features.1", "features.4", "features.7", "features.9"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
        ),
        pathways=PathwayLayers(
            location="features.12",
            topic="classifier.5",
            dropout=("classifier.0", "classifier.3"),
            code=("classifier.5", "classifier.2", "features.12"),
            roles=(
                ("pool5", "features.12"),
                ("fc6", "classifier.2 (ReLU of fc6)"),
                ("fc7", "classifier.5 (ReLU of fc7)"),
            ),
        ),
        novelty_layers=(
            "features.0",
            "features.0",
            "features.1",
            "features.2",
            "features.4",
            "features.7",
            "features.9",
            "features.12",
            "avgpool",
        ),
    ),
    "vgg16": _vgg((2, 2, 3, 3, 3)),
    "vgg19": _vgg((2, 2, 4, 4, 4)),
}
