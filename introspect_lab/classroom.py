"""What each lecture notebook uses, given what a classroom has cached.

A class runs in one of three states (the README's "Prefetch" paragraph, and
``docs/teaching.md`` §2–3):

``nothing cached``
    a fresh install, offline: the bundled EfficientNet-Lite0 and the bundled photos;
``Binder``
    the image ``binder/postBuild`` builds: SqueezeNet 1.1, ResNet-18, AlexNet and Imagenette;
``make fetch``
    every classic model and every dataset of the registries.

The choices live here, in one place: :func:`use_data` picks a notebook's images for a
*purpose* (a dataset split when it is cached, else an offline stand-in) and prints one
line saying which, and :func:`choose_model` resolves ``load_model(name, fallback=...)``
the way :func:`introspect_lab.models.load_model` does. :data:`NOTEBOOKS` records what each
lecture notebook asks for, so :func:`plan` says what it uses in a state and
:func:`markdown_table` writes the table the README and the teaching guide show (a test
keeps them equal, and the classroom tests check every notebook's printed choice against
:func:`plan`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import config, datasets, models
from .download import DownloadError

__all__ = [
    "DATA",
    "NOTEBOOKS",
    "STATES",
    "DataChoice",
    "Needs",
    "State",
    "choose_data",
    "choose_model",
    "depends_on_cache",
    "markdown_table",
    "other_cached_model",
    "plan",
    "sentence",
    "use_data",
]


@dataclass(frozen=True)
class State:
    """A classroom's cache: the classic models and the datasets it holds."""

    name: str
    models: frozenset[str]
    datasets: frozenset[str]


STATES: tuple[State, ...] = (
    State("nothing cached", frozenset(), frozenset()),
    State("Binder", frozenset({"squeezenet1_1", "resnet18", "alexnet"}), frozenset({"imagenette"})),
    State(
        "make fetch",
        frozenset(n for n, spec in models.MODELS.items() if not spec.bundled),
        frozenset(datasets.DATASETS),
    ),
)


@dataclass(frozen=True)
class Purpose:
    """Where a notebook's images come from: preferred ``(dataset, split)`` pairs, else ``fallback``."""

    prefer: tuple[tuple[str, str], ...]
    fallback: str
    download: bool = False  # try to download the first preference when online and not cached


# purpose -> preferences; the notebooks that use each are in NOTEBOOKS.
DATA: dict[str, Purpose] = {
    "feature space": Purpose(
        (("imagenette", "val"),), "the offline pool (tiles of the bundled photos, scikit-learn digits)", True
    ),
    "adversarial sweep": Purpose((("imagenette", "val"),), "the bundled photos only"),
    "transfer": Purpose((("imagewoof", "train"),), "scikit-learn's digits and faces only"),
    "style shift": Purpose(
        (("imagenette", "val"), ("imagewoof", "val")), "the curated real photos (data/photos)"
    ),
    "novelty": Purpose((("flowers102", "train+val"),), "the offline stand-in (scikit-learn digits)"),
    "class images": Purpose((("imagenette", "val"),), "crops of the bundled photos"),
}
_TITLES = {"imagenette": "Imagenette", "imagewoof": "Imagewoof", "flowers102": "Oxford Flowers 102"}
_SPLITS = {
    "val": "validation images",
    "train": "training images",
    "train+val": "training + validation images",
}


@dataclass(frozen=True)
class DataChoice:
    """The images chosen for a purpose: a registry ``dataset`` and ``split``, or ``None`` (offline)."""

    purpose: str
    dataset: str | None
    split: str | None
    text: str

    @property
    def pool(self) -> str:
        """The :func:`~introspect_lab.datasets.image_pool` name: the dataset, or ``"offline"``."""
        return self.dataset or "offline"

    def __str__(self) -> str:
        return f"Data ({self.purpose}): {self.text}."


def _check_purpose(purpose: str) -> Purpose:
    if purpose not in DATA:
        raise models.unknown_name_error("data purpose", purpose, list(DATA))
    return DATA[purpose]


def choose_data(purpose: str, cached: Iterable[str] | None = None) -> DataChoice:
    """The images a notebook uses for ``purpose``: the first preferred dataset that is cached.

    ``cached``: dataset names to treat as cached (a state of :data:`STATES`); ``None``
    asks :func:`introspect_lab.datasets.is_cached`. Never downloads (see :func:`use_data`).
    """
    spec = _check_purpose(purpose)
    have = set(cached) if cached is not None else {n for n in datasets.DATASETS if datasets.is_cached(n)}
    for name, split in spec.prefer:
        if name in have:
            return DataChoice(purpose, name, split, f"{_TITLES[name]}, {_SPLITS[split]}")
    wanted = " or ".join(_TITLES[n] for n, _ in spec.prefer)
    first = spec.prefer[0][0]
    return DataChoice(
        purpose,
        None,
        None,
        f"{spec.fallback}; {wanted} is not cached (`introspect-lab fetch --datasets {first}`)",
    )


def use_data(purpose: str) -> DataChoice:
    """:func:`choose_data` for this machine's cache, printed as one line ``Data (purpose): ...``.

    For the feature-space pool (lecture 004's nearest neighbours and patches), a
    networked machine without the cache downloads Imagenette first, as
    :func:`~introspect_lab.datasets.image_pool` does.
    """
    choice = choose_data(purpose)
    spec = DATA[purpose]
    if choice.dataset is None and spec.download and not config.is_offline():
        try:
            datasets.fetch_dataset(spec.prefer[0][0])
            choice = choose_data(purpose)
        except DownloadError:
            pass
    print(choice)
    return choice


def choose_model(name: str, fallback: str | None = None, cached: Iterable[str] | None = None) -> str:
    """The model ``load_model(name, fallback=fallback)`` loads: ``name`` when bundled or cached, else
    ``fallback``.

    ``cached``: classic models to treat as cached (a state); ``None`` asks
    :func:`introspect_lab.models.is_cached`. Without a fallback the request stands
    (``load_model`` then downloads it or raises).
    """
    have = (lambda n: models.MODELS[n].bundled or n in cached) if cached is not None else models.is_cached
    models.model_settings(name)  # an unknown name raises, naming the registry
    return name if fallback is None or have(name) else fallback


IMAGENET_PAIR = ("resnet18", "squeezenet1_1", "alexnet", "vgg16")


def other_cached_model(
    exclude: str, cached: Iterable[str] | None = None, candidates: Sequence[str] = IMAGENET_PAIR
) -> str | None:
    """The first of ``candidates`` that is cached and not ``exclude`` (a second model for transfer
    attacks).
    """
    have = (lambda n: n in set(cached)) if cached is not None else models.is_cached
    return next((n for n in candidates if n != exclude and have(n)), None)


@dataclass(frozen=True)
class Needs:
    """What a lecture notebook asks for: ``load_model`` requests, data purposes, a second cached model,
    and models it loads only when they are bundled or cached (notebook 01's ``first_layer_filters``)."""

    models: tuple[tuple[str, str | None], ...] = (("efficientnet_lite0", "efficientnet_lite0"),)
    data: tuple[str, ...] = ()
    second_model: bool = False  # notebook 09: other_cached_model(first model)
    if_cached: tuple[str, ...] = ()


NOTEBOOKS: dict[str, Needs] = {
    "00_welcome": Needs(
        (("efficientnet_lite0", "efficientnet_lite0"), ("squeezenet1_1", "efficientnet_lite0"))
    ),
    "01_filters_and_activations": Needs(
        if_cached=("alexnet", "resnet18", "squeezenet1_1", "efficientnet_lite0")
    ),
    "02_feature_space": Needs(data=("feature space",)),
    "03_saliency_and_cam": Needs(),
    "04_guided_backprop": Needs(),
    "05_activation_maximization": Needs(),
    "06_deepdream": Needs(),
    "07_feature_inversion": Needs(),
    "08_texture_and_style": Needs(),
    "09_adversarial_examples": Needs((("efficientnet_lite0", None),), ("adversarial sweep",), True),
    "10_transfer_learning": Needs((("efficientnet_lite0", None),), ("transfer",)),
    "11_style_shift": Needs((("squeezenet1_1", "efficientnet_lite0"),), ("style shift",)),
    "12_novelty_detection": Needs((("resnet18", "efficientnet_lite0"),), ("novelty",)),
    "13_intra_class_pathways": Needs((("alexnet", "efficientnet_lite0"),), ("class images",)),
    "14_fast_style": Needs((("efficientnet_lite0", None),)),
}


def depends_on_cache(notebook: str) -> bool:
    """Whether what ``notebook`` uses changes between the :data:`STATES`."""
    return len({plan(notebook, s) for s in STATES}) > 1


def plan(notebook: str, state: State) -> tuple[tuple[str, ...], tuple[DataChoice, ...]]:
    """``(models, data)`` that ``notebook`` loads in ``state``, in the order it loads them."""
    if notebook not in NOTEBOOKS:
        raise models.unknown_name_error("notebook", notebook, list(NOTEBOOKS))
    needs = NOTEBOOKS[notebook]
    chosen = [choose_model(n, f, state.models) for n, f in needs.models]
    if needs.second_model:
        other = other_cached_model(chosen[0], state.models)
        chosen += [other] if other else []
    chosen += [n for n in needs.if_cached if models.MODELS[n].bundled or n in state.models]
    return tuple(chosen), tuple(choose_data(p, state.datasets) for p in needs.data)


def _cell(notebook: str, state: State) -> str:
    used, data = plan(notebook, state)
    names = dict.fromkeys(used)  # each model once, in order
    text = " + ".join(f"`{m}`" for m in names)
    for d in data:
        text += "; " + (f"{_TITLES[d.dataset]} {d.split}" if d.dataset else DATA[d.purpose].fallback)
    return text


_WHERE = {"nothing cached": "With nothing cached", "Binder": "On Binder", "make fetch": "After `make fetch`"}


def sentence(notebook: str, state: State) -> str:
    """One sentence for the docs, e.g. "On Binder, notebook 02 runs efficientnet_lite0 on Imagenette's
    validation images".
    """
    used, data = plan(notebook, state)
    where = _WHERE.get(state.name, f"In the state {state.name!r}")
    text = f"{where}, notebook {notebook[:2]} runs {' and '.join(dict.fromkeys(used))}"
    on = [
        f"{_TITLES[d.dataset]}'s {_SPLITS[d.split]}" if d.dataset else DATA[d.purpose].fallback for d in data
    ]
    return text + (f" on {' and '.join(on)}." if on else ".")


def markdown_table() -> str:
    """The notebook × state table of the models and data each lecture notebook uses (Markdown)."""
    head = "| notebook | " + " | ".join(s.name for s in STATES) + " |"
    rows = [head, "|" + "---|" * (len(STATES) + 1)]
    for nb in NOTEBOOKS:
        if depends_on_cache(nb):
            rows.append(f"| `{nb[:2]}` | " + " | ".join(_cell(nb, s) for s in STATES) + " |")
    same = ", ".join(nb[:2] for nb in NOTEBOOKS if not depends_on_cache(nb))
    return "\n".join(rows) + f"\n\nNotebooks {same} use the same model and photos in every state."
