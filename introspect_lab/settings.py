"""Per-model settings of the registry: the layers each notebook uses and the synthesis hyper-parameters.

One frozen dataclass per task, grouped in :class:`ModelSettings`, one entry
per registry model in :data:`introspect_lab.settings_table.SETTINGS`. Look them up with
:func:`introspect_lab.models.settings`::

    s = model_settings(model)                  # or model_settings("resnet18")
    s.cam_layer                          # "layer4"
    s.class_vis.l2_weight                # 1e-3
    replace(s.inversion, tv_weight=1e-5)  # dataclasses.replace: a changed copy

Penalty weights share one naming scheme: ``<term>_weight`` is the weight of
a term and ``<term>_<parameter>`` a parameter of it (``l2_weight``,
``tv_weight`` and ``tv_beta``, ``alpha_weight`` and ``alpha``,
``content_weight``, ``style_weights`` per style layer). The synthesis
methods take the same names as keyword arguments, and the notebooks'
sliders are named after them, so a value can be followed by name from
widget to loss. The values of each model are in :mod:`introspect_lab.settings_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = [
    "ClassVisSettings",
    "DreamSettings",
    "InversionSettings",
    "StyleSettings",
    "TextureSettings",
    "PathwayLayers",
    "LUCENT",
    "ModelSettings",
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
    """Style transfer (Gatys et al. 2016): layers, weights and the optimiser.

    ``colour_weight`` weights the pixel colour statistics ("layer 0",
    :func:`~introspect_lab.synthesis.objectives.colour_loss`), ``tv_weight`` the total
    variation (a sum over pixels). The bundled model's values were chosen by
    the look tests (tests/test_look.py).
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
    clamp_range: tuple[float, float] | None = None

    def __post_init__(self):
        _check_style_weights(self.style_layers, self.style_weights)


@dataclass(frozen=True)
class TextureSettings:
    """Texture synthesis (Gatys et al. 2015): from noise, the Gram losses plus colour and TV terms.

    From noise, grey exemplars need a stronger colour term than style
    transfer's; with the bundled model's values a grey exemplar gives a grey
    texture and each texture is matched to its own exemplar (tests/test_look.py).
    ``optimizer`` is ``"adam"`` (the synthesis engine, ``steps`` Adam steps)
    or ``"lbfgs"`` (``steps`` L-BFGS iterations with each layer's error
    relative to the exemplar's Gram energy, as Gatys et al. optimised; the
    random texture networks of :mod:`introspect_lab.texture.networks` use it).
    """

    style_layers: tuple[str, ...]
    style_weights: tuple[float, ...]
    size: int = 128
    steps: int = 300
    lr: float = 0.2
    tv_weight: float = 2e-3
    colour_weight: float = 1e4
    optimizer: str = "adam"

    def __post_init__(self):
        _check_style_weights(self.style_layers, self.style_weights)
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}.")


def _check_style_weights(layers, weights) -> None:
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} style weights for {len(layers)} style layers.")


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
    ``deepdream``, ``inversion``, ``style`` and ``texture`` (08).
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
    texture: TextureSettings
    pathways: PathwayLayers | None = None
    novelty_layers: tuple[str, ...] = ()  # layers 1–9 of seed 000's ResNet-18 numbering (notebook 12)


def override(settings, **values):
    """A copy of a settings dataclass with the given fields changed; ``None`` values are ignored.

    How every synthesis method applies its ``**overrides`` to the
    registry's settings: ``override(s.class_vis, l2_weight=0.0, size=None)``
    changes ``l2_weight`` only. An unknown name raises ``TypeError`` listing the fields.
    """
    names = [f.name for f in fields(settings)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise TypeError(f"{type(settings).__name__} has no field(s) {unknown}; its fields are {names}.")
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
    out["texture.style_layers"] = tuple(s.texture.style_layers)
    if s.pathways is not None:
        p = s.pathways
        out["pathways.location"], out["pathways.topic"] = (p.location,), (p.topic,)
        out["pathways.dropout"], out["pathways.code"] = tuple(p.dropout), tuple(p.code)
    return out


#: Lucent's feature-visualisation recipe (Olah et al. 2017; Mordvintsev et al. 2018): Adam 0.05 on a
#: decorrelated Fourier spectrum, transformation robustness (pad 12, jitter 8, scale 0.9–1.1,
#: rotate ±10°, jitter 4), no L2 or blur. ``visualize_class(model, c, settings=LUCENT)``.
LUCENT = ClassVisSettings(
    size=128,
    steps=256,
    optimizer="adam",
    lr=0.05,
    l2_weight=0.0,
    blur_every=0,
    jitter=8,
    init_scale=0.1,
    param="fft",
    pad=12,
    scale=(0.9, 1.1),
    rotate=10.0,
)
