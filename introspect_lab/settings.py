"""Per-model settings of the registry: the layers each notebook uses and the synthesis hyper-parameters.

One frozen dataclass per task, grouped in :class:`ModelSettings`, one entry
per registry model in :data:`SETTINGS`. Look them up with
:func:`introspect_lab.models.settings`::

    s = settings(model)                  # or settings("resnet18")
    s.cam_layer                          # "layer4"
    s.class_vis.l2_weight                # 1e-3
    replace(s.inversion, tv_weight=1e-5)  # dataclasses.replace: a changed copy

Penalty weights share one naming scheme: ``<term>_weight`` is the weight of
a term and ``<term>_<parameter>`` a parameter of it (``l2_weight``,
``tv_weight`` and ``tv_beta``, ``alpha_weight`` and ``alpha``,
``content_weight``, ``style_weights`` per style layer). The synthesis
methods take the same names as keyword arguments, and the notebooks'
sliders are named after them, so a value can be followed by name from
widget to loss.

Sources of the values: ``squeezenet1_1``'s synthesis values are cs231n's
(class visualisation and style transfer on SqueezeNet 1.1);
``efficientnet_lite0``'s were found by experiment on the bundled model
(128 px, 2-core CPU). The other models' synthesis values reuse the bundled
model's step sizes with layers of their own: they run, at random weights
in the tests, but are not tuned. CAM/Grad-CAM layers follow
pytorch-grad-cam's advice per family (ResNet ``layer4``, VGG/AlexNet the
last ``features`` module, SqueezeNet its last Fire module, EfficientNet its
head).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = [
    "ClassVisSettings",
    "DreamSettings",
    "InversionSettings",
    "StyleSettings",
    "PathwayLayers",
    "LUCENT",
    "ModelSettings",
    "SETTINGS",
    "layer_fields",
    "override",
]


@dataclass(frozen=True)
class ClassVisSettings:
    """Class and channel visualisation (seed 001; cs231n): gradient ascent with Yosinski's priors.

    ``param`` is ``"pixel"`` or ``"fft"`` (decorrelated Fourier spectrum);
    ``pad``, ``jitter``, ``scale`` (a range) and ``rotate`` (± degrees) are
    Lucent's transformation robustness (see :data:`LUCENT`); 0/None is off.
    """

    size: int = 128
    steps: int = 100
    optimizer: str = "ascent"
    lr: float = 25.0
    l2_weight: float = 1e-3
    blur_every: int = 10
    blur_sigma: float = 0.5
    jitter: int = 8
    init_scale: float = 1.0
    clip_pixels: float = 0.0
    clip_grads: float = 0.0
    param: str = "pixel"
    pad: int = 0
    scale: tuple[float, float] | None = None
    rotate: float = 0.0


@dataclass(frozen=True)
class DreamSettings:
    """DeepDream: the layer, octaves and the per-octave ascent."""

    layer: str
    size: int = 160
    octaves: int = 3
    octave_scale: float = 1.4
    steps: int = 15
    lr: float = 0.02
    jitter: int = 8


@dataclass(frozen=True)
class InversionSettings:
    """Feature inversion (seed 002, Eq. 1): Adam with TV^β and α-norm priors."""

    size: int = 128
    steps: int = 150
    optimizer: str = "adam"
    lr: float = 0.3
    lr_drop: tuple[float, float] | None = (0.8, 0.1)
    tv_weight: float = 1e-4
    tv_beta: float = 2.0
    alpha_weight: float = 0.0
    alpha: float = 6.0


@dataclass(frozen=True)
class StyleSettings:
    """Texture synthesis and style transfer (Gatys et al.): layers, weights and the optimiser.

    ``steps``, ``lr``, ``tv_weight``, ``colour_weight`` are style transfer's
    (from the content photo); the ``texture_`` ones texture synthesis's
    (from noise, where grey exemplars need the stronger colour term).
    ``colour_weight`` weights the pixel colour statistics ("layer 0",
    :func:`~introspect_lab.synthesis.objectives.colour_loss`), ``tv_weight`` the total
    variation (a sum over pixels). The bundled model's values were chosen by
    the look tests (tests/test_look.py): with them a grey exemplar gives a
    grey texture and each texture is matched to its own exemplar.
    """

    content_layer: str
    style_layers: tuple[str, ...]
    style_weights: tuple[float, ...]
    size: int = 128
    steps: int = 200
    lr: float = 0.1
    lr_drop: tuple[float, float] | None = None
    content_weight: float = 1e-3
    tv_weight: float = 6e-4
    colour_weight: float = 1e3
    texture_steps: int = 300
    texture_lr: float = 0.2
    texture_tv_weight: float = 2e-3
    texture_colour_weight: float = 1e4
    clamp_range: tuple[float, float] | None = None

    def __post_init__(self):
        if len(self.style_weights) != len(self.style_layers):
            raise ValueError(
                f"{len(self.style_weights)} style weights for {len(self.style_layers)} style layers."
            )


@dataclass(frozen=True)
class PathwayLayers:
    """The layers that play AlexNet's roles in seed 002's neural pathways (notebook 13).

    ``location``: the last conv map (pool5, ``m₅``), whose ``k×k`` windows are
    opened; ``topic``: the non-negative penultimate features (fc7, ``m₇``) for
    NMF; ``dropout``: where the ensemble masks go, the model's own dropout
    modules (a mask on a dropout module's output masks its input, as dropout
    does in training). The paper's Caffe AlexNet drops relu6 and relu7 (fc6–7);
    torchvision's AlexNet drops flattened pool5 (``classifier.0``) and relu6
    (``classifier.3``), and nothing drops relu7; VGG drops relu6 and relu7;
    the bundled EfficientNet-Lite0 drops the pooled head before its one
    linear layer. ``code``: the binary-code layers, deepest first (``m₇, m₆,
    m₅``), ending with ``location`` (one ``m₅`` per model); ``roles``: how they
    correspond to pool5 / fc6 / fc7, in words.
    """

    location: str
    topic: str
    dropout: tuple[str, ...]
    code: tuple[str, ...]
    roles: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelSettings:
    """Everything a notebook or method needs to know about one registry model.

    Layer names, shallow → deep, by notebook:

    * ``activation_layer``, ``feature_layers`` (01): a middle layer's feature
      maps; feature maps from the stem to the last block;
    * ``patch_layer``, ``patch_layers`` (02): maximally activating patches;
    * ``cam_layer``, ``grad_cam_layers`` (03): the CAM/Grad-CAM layer (the
      last feature block before the classifier) and layers to compare;
    * ``neuron_layers`` (04): layers whose neurons guided backprop explains;
    * ``channel_layers`` (05), ``dream_layers`` (06), ``inversion_layers``,
      ``mid_layer``, ``deep_layer`` (07);
    * ``novelty_layers`` (12): the modules that play the roles of ResNet-18's children
      ``conv1, bn1, relu, maxpool, layer1 … layer4, avgpool`` (seed 000's layers 1–9), matched
      by role and output stride; a model without BatchNorm repeats its first conv for ``bn1``.

    Synthesis settings per task: ``class_vis``, ``channel_vis``,
    ``deepdream``, ``inversion``, ``style`` (texture and style, 08).
    """

    activation_layer: str
    feature_layers: tuple[str, ...]
    patch_layer: str
    patch_layers: tuple[str, ...]
    cam_layer: str
    grad_cam_layers: tuple[str, ...]
    neuron_layers: tuple[str, ...]
    channel_layers: tuple[str, ...]
    dream_layers: tuple[str, ...]
    inversion_layers: tuple[str, ...]
    mid_layer: str
    deep_layer: str
    class_vis: ClassVisSettings
    channel_vis: ClassVisSettings
    deepdream: DreamSettings
    inversion: InversionSettings
    style: StyleSettings
    pathways: PathwayLayers | None = None
    novelty_layers: tuple[str, ...] = ()  # layers 1–9 of seed 000's ResNet-18 numbering (notebook 12)


def override(settings, **values):
    """A copy of a settings dataclass with the given fields changed; ``None`` values are ignored.

    How every synthesis method applies its keyword arguments to the
    registry's settings: ``override(s.class_vis, l2_weight=0.0, size=None)``
    changes ``l2_weight`` only. An unknown name raises ``TypeError``.
    """
    return replace(settings, **{k: v for k, v in values.items() if v is not None})


def layer_fields(s: ModelSettings) -> dict[str, tuple[str, ...]]:
    """Every layer name in ``s``, by field (``"style.style_layers"`` etc.), for checks."""
    out: dict[str, tuple[str, ...]] = {}
    for f in fields(s):
        v = getattr(s, f.name)
        if f.name.endswith("_layer"):
            out[f.name] = (v,)
        elif f.name.endswith("_layers"):
            out[f.name] = tuple(v)
    out["deepdream.layer"] = (s.deepdream.layer,)
    out["style.content_layer"] = (s.style.content_layer,)
    out["style.style_layers"] = tuple(s.style.style_layers)
    if s.pathways is not None:
        p = s.pathways
        out["pathways.location"], out["pathways.topic"] = (p.location,), (p.topic,)
        out["pathways.dropout"], out["pathways.code"] = tuple(p.dropout), tuple(p.code)
    return out


#: Lucent's feature-visualisation recipe (Olah et al. 2017; Mordvintsev et al. 2018): Adam 0.05 on a
#: decorrelated Fourier spectrum, transformation robustness (pad 12, jitter 8, scale 0.9–1.1,
#: rotate ±10°, jitter 4), no L2 or blur. ``visualize_class(model, c, settings=LUCENT)``.
LUCENT = ClassVisSettings(size=128, steps=256, optimizer="adam", lr=0.05, l2_weight=0.0, blur_every=0, jitter=8,
                          init_scale=0.1, param="fft", pad=12, scale=(0.9, 1.1), rotate=10.0)  # fmt: skip

_CS231N_CLASS = ClassVisSettings(size=224, jitter=16)
_LITE0_CLASS = ClassVisSettings(size=128, jitter=8)


def _classic(*, activation, features, patch, patches, cam, grad_cams, neurons, channels, dreams, depth, mid,
             deep, dream, content, style) -> ModelSettings:  # fmt: skip
    """Settings for a torchvision classic: its own layers, the bundled model's (untuned) step sizes."""
    return ModelSettings(
        activation_layer=activation, feature_layers=features, patch_layer=patch, patch_layers=patches,
        cam_layer=cam, grad_cam_layers=grad_cams, neuron_layers=neurons, channel_layers=channels,
        dream_layers=dreams, inversion_layers=depth, mid_layer=mid, deep_layer=deep,
        class_vis=_LITE0_CLASS, channel_vis=_LITE0_CLASS, deepdream=DreamSettings(layer=dream),
        inversion=InversionSettings(),
        style=StyleSettings(content_layer=content, style_layers=style, style_weights=(1.0,) * len(style)),
    )  # fmt: skip


def _vgg(relu: dict[str, int], last: int) -> ModelSettings:
    """VGG by its ReLU indices (``relu["3_1"]`` is the output of conv3_1), ``last`` the final pool."""
    f = {k: f"features.{v}" for k, v in relu.items()}
    return _classic(
        activation=f["3_1"], features=(f["1_1"], f["2_1"], f["3_1"], f["4_1"], f["5_1"], f["5_last"]),
        patch=f["4_1"], patches=(f["2_1"], f["3_1"], f["3_last"], f["4_1"], f["4_last"], f["5_1"]),
        cam=f"features.{last}", grad_cams=(f["3_pool"], f["4_pool"], f"features.{last}"),
        neurons=(f["3_1"], f["4_1"], f["5_last"]), channels=(f["1_2"], f["3_last"], f["4_last"], f["5_last"]),
        dreams=(f["3_last"], f["4_last"], f["5_1"], f["5_last"]),
        depth=(f["1_2"], f["2_2"], f["3_last"], f["4_last"], f["5_last"]), mid=f["3_last"], deep=f["5_last"],
        dream=f["4_last"], content=f["4_2"], style=(f["1_1"], f["2_1"], f["3_1"], f["4_1"], f["5_1"]),
    )  # fmt: skip


#: The settings of every registry model, by name.
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
        deepdream=DreamSettings(layer="blocks.8", size=160, steps=15, jitter=8),
        inversion=InversionSettings(size=128, steps=150, lr=0.3, lr_drop=(0.8, 0.1), tv_weight=1e-4),
        style=StyleSettings(
            content_layer="blocks.5",
            style_layers=("stem", "blocks.1", "blocks.3", "blocks.5"),
            style_weights=(1.0, 1.0, 1.0, 1.0),
            size=128,
            steps=200,
            lr=0.1,
            content_weight=1e-3,
            tv_weight=6e-4,
            colour_weight=1e3,
            texture_steps=300,
            texture_lr=0.2,
            texture_tv_weight=2e-3,
            texture_colour_weight=1e4,
        ),  # fmt: skip
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
        ),  # fmt: skip
        mid_layer="features.7",
        deep_layer="features.12",
        class_vis=_CS231N_CLASS,
        channel_vis=_CS231N_CLASS,
        deepdream=DreamSettings(layer="features.9", size=224, steps=20, jitter=16),
        inversion=InversionSettings(size=192, steps=200, lr=3.0, lr_drop=(0.9, 0.1), tv_weight=2e-2),
        style=StyleSettings(
            content_layer="features.3",
            style_layers=("features.1", "features.4", "features.6", "features.7"),
            style_weights=(3e5, 1e3, 15, 3),
            size=192,
            steps=200,
            lr=3.0,
            lr_drop=(0.9, 0.1),
            content_weight=6e-2,
            tv_weight=2e-2,
            clamp_range=(-1.5, 1.5),
        ),  # fmt: skip
    ),
    "resnet18": _classic(
        activation="layer2",
        features=("relu", "layer1", "layer2", "layer3", "layer4"),
        patch="layer2",
        patches=("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1"),
        cam="layer4",
        grad_cams=("layer2", "layer3", "layer4"),
        neurons=("layer2", "layer3", "layer4"),
        channels=("layer1", "layer2", "layer3", "layer4"),
        dreams=("layer2", "layer3.0", "layer3", "layer4"),
        depth=("relu", "layer1", "layer2", "layer3", "layer4"),
        mid="layer2",
        deep="layer4",
        dream="layer3",
        content="layer3",
        style=("relu", "layer1", "layer2", "layer3"),
    ),  # fmt: skip
    "alexnet": _classic(
        activation="features.4",
        features=("features.1", "features.4", "features.7", "features.9", "features.11"),
        patch="features.7",
        patches=("features.1", "features.4", "features.7", "features.9", "features.11"),
        cam="features.12",
        grad_cams=("features.5", "features.9", "features.12"),
        neurons=("features.4", "features.7", "features.11"),
        channels=("features.1", "features.4", "features.7", "features.11"),
        dreams=("features.4", "features.7", "features.9", "features.11"),
        depth=("features.1", "features.4", "features.7", "features.9", "features.11"),
        mid="features.7",
        deep="features.11",
        dream="features.9",
        content="features.7",
        style=("features.1", "features.4", "features.7", "features.9"),
    ),  # fmt: skip
    "vgg16": _vgg(
        {
            "1_1": 1,
            "1_2": 3,
            "2_1": 6,
            "2_2": 8,
            "3_1": 11,
            "3_last": 15,
            "3_pool": 16,
            "4_1": 18,
            "4_2": 20,
            "4_last": 22,
            "4_pool": 23,
            "5_1": 25,
            "5_last": 29,
        },
        last=30,
    ),  # fmt: skip
    "vgg19": _vgg(
        {
            "1_1": 1,
            "1_2": 3,
            "2_1": 6,
            "2_2": 8,
            "3_1": 11,
            "3_last": 17,
            "3_pool": 18,
            "4_1": 20,
            "4_2": 22,
            "4_last": 26,
            "4_pool": 27,
            "5_1": 29,
            "5_last": 35,
        },
        last=36,
    ),  # fmt: skip
}


#: Seed 002's pathway layers per model (notebook 13): pool5 / fc6 / fc7 and their stand-ins.
_PATHWAYS: dict[str, PathwayLayers] = {
    "alexnet": PathwayLayers(
        "features.12", "classifier.5", ("classifier.0", "classifier.3"),
        ("classifier.5", "classifier.2", "features.12"),
        (("pool5", "features.12"), ("fc6", "classifier.2 (ReLU of fc6)"), ("fc7", "classifier.5 (ReLU of fc7)")),
    ),
    "vgg16": PathwayLayers(
        "features.30", "classifier.4", ("classifier.2", "classifier.5"),
        ("classifier.4", "classifier.1", "features.30"),
        (("pool5", "features.30"), ("fc6", "classifier.1 (ReLU of fc6)"), ("fc7", "classifier.4 (ReLU of fc7)")),
    ),
    "vgg19": PathwayLayers(
        "features.36", "classifier.4", ("classifier.2", "classifier.5"),
        ("classifier.4", "classifier.1", "features.36"),
        (("pool5", "features.36"), ("fc6", "classifier.1 (ReLU of fc6)"), ("fc7", "classifier.4 (ReLU of fc7)")),
    ),
    "efficientnet_lite0": PathwayLayers(
        "head", "flatten", ("dropout",), ("flatten", "head"),
        (("pool5", "head (last conv map, 1×1 conv + ReLU6)"),
         ("fc6", "none: no hidden FC layer; the 1×1 head conv acts as one at every location"),
         ("fc7", "flatten (the head map averaged: the classifier's input, where its training dropout acts)")),
    ),
    "resnet18": PathwayLayers(
        "layer4", "avgpool", ("avgpool",), ("avgpool", "layer4"),
        (("pool5", "layer4 (last conv map, after ReLU)"), ("fc6", "none: no hidden FC layer"),
         ("fc7", "avgpool (the last map averaged: the classifier's input)")),
    ),
    "squeezenet1_1": PathwayLayers(
        "features.12", "classifier.0", ("classifier.0",), ("classifier.0", "features.12"),
        (("pool5", "features.12 (last Fire module, after ReLU)"), ("fc6", "none: no hidden FC layer"),
         ("fc7", "classifier.0 (the map the 1×1 classifier conv reads, where dropout acts; averaged for NMF)")),
    ),
}  # fmt: skip
SETTINGS = {name: replace(s, pathways=_PATHWAYS[name]) for name, s in SETTINGS.items()}
# Seed 000's layers 1–9 (ResNet-18's children up to avgpool), stage by stage on every model.
_NOVELTY_LAYERS = {
    "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"),
    "efficientnet_lite0": ("stem.conv", "stem.bn", "stem.act", "blocks.0", "blocks.2", "blocks.4",
                           "blocks.10", "head", "pool"),
    "squeezenet1_1": ("features.0", "features.0", "features.1", "features.2", "features.4", "features.7",
                      "features.10", "features.12", "classifier.3"),
    "alexnet": ("features.0", "features.0", "features.1", "features.2", "features.4", "features.7",
                "features.9", "features.12", "avgpool"),
    "vgg16": ("features.0", "features.0", "features.1", "features.4", "features.9", "features.16",
              "features.23", "features.30", "avgpool"),
    "vgg19": ("features.0", "features.0", "features.1", "features.4", "features.9", "features.18",
              "features.27", "features.36", "avgpool"),
}  # fmt: skip
SETTINGS = {name: replace(s, novelty_layers=_NOVELTY_LAYERS[name]) for name, s in SETTINGS.items()}
