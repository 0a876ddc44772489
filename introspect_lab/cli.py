"""Command line: ``introspect-lab fetch``, ``info`` and ``exercises``.

``fetch`` downloads the classic models' weights and the datasets ahead of
time (for Binder images and offline labs); ``info`` shows what is cached,
where, and what a notebook would use offline; ``exercises`` writes the
student notebooks from the nbgrader source notebooks (``docs/course``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, config, datasets, models
from .download import DownloadError
from .exercises.assignments import generate

__all__ = ["main"]

DEFAULT_FETCH_MODELS = ["squeezenet1_1", "resnet18", "alexnet"]


def _fetch_one(name: str, fetch, failures: list[str]) -> None:
    """Run ``fetch(name)``, print where it landed, or record and report the failure."""
    try:
        print(f"{name}: ok ({fetch(name)})")
    except DownloadError as exc:
        failures.append(name)
        print(f"{name}: FAILED: {exc}", file=sys.stderr)


def _cmd_fetch(args: argparse.Namespace) -> int:
    model_names = args.models if args.models is not None else DEFAULT_FETCH_MODELS
    if args.all:
        model_names = list(models.MODELS)
    dataset_names = args.datasets or []
    if args.all:
        dataset_names = list(datasets.DATASETS)
    for name in model_names:
        if name not in models.MODELS:
            raise models.unknown_name_error("model", name, list(models.MODELS))
    for name in dataset_names:
        if name not in datasets.DATASETS:
            raise models.unknown_name_error("dataset", name, list(datasets.DATASETS))

    failures = []
    for name in model_names:
        spec = models.MODELS[name]
        if spec.bundled:
            print(f"{name}: bundled with the package, nothing to fetch")
            continue
        _fetch_one(name, models.fetch_weights, failures)
    for name in dataset_names:
        _fetch_one(name, datasets.fetch_dataset, failures)
    if failures:
        print(f"Not fetched: {', '.join(failures)}.", file=sys.stderr)
        return 1
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    print(f"introspect-lab {_version()}")
    print(f"fast mode (INTROSPECT_LAB_FAST): {'on' if config.is_fast() else 'off'}")
    print(f"offline (INTROSPECT_LAB_OFFLINE): {'on' if config.is_offline() else 'off'}")
    print(f"weights cache: {config.weights_dir()}")
    print(f"dataset cache: {config.data_dir()}")
    print("\nModels:")
    for name, spec in models.MODELS.items():
        state = models.cache_status(name)
        if state == "bundled":
            status = "bundled (always available offline)"
        elif state == "cached":
            status = f"cached, hash verified: {models.weights_path(name)}"
        elif state == "corrupt":
            status = (
                f"CORRUPT: {models.weights_path(name)} fails its SHA-256 check; "
                f"`introspect-lab fetch --models {name}` replaces it"
            )
        else:
            status = f"not cached (~{spec.approx_mb} MB; offline, notebooks use {models.BUNDLED_MODEL})"
        print(f"  {name:<20} {status}")
    print("\nDatasets:")
    for name in datasets.DATASETS:
        if datasets.is_cached(name):
            status = f"cached: {datasets.dataset_path(name)}"
        else:
            status = "not cached (offline, notebooks use the bundled stand-in pool)"
        print(f"  {name:<20} {status}")
    return 0


def _cmd_exercises(args: argparse.Namespace) -> int:
    stale = generate(args.course, args.out, check_only=args.check)
    if args.check:
        if stale:
            print("Student notebooks differ from their nbgrader sources (run `introspect-lab exercises`):")
            for path in stale:
                print(f"  {path}")
            return 1
        print("Student notebooks are up to date.")
        return 0
    for path in stale:
        print(f"wrote {path}")
    return 0


def _version() -> str:
    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``introspect-lab`` argument parser (sub-commands ``fetch`` and ``info``)."""
    parser = argparse.ArgumentParser(
        prog="introspect-lab",
        description="Prefetch models and datasets, show what is cached, generate student exercises.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download classic model weights and datasets into the cache")
    fetch.add_argument(
        "--models",
        nargs="*",
        metavar="NAME",
        help=f"models to fetch (default: {' '.join(DEFAULT_FETCH_MODELS)}; `--models` alone fetches none)",
    )
    fetch.add_argument("--datasets", nargs="*", metavar="NAME", help="datasets to fetch (default: none)")
    fetch.add_argument("--all", action="store_true", help="every model and every dataset")
    fetch.set_defaults(func=_cmd_fetch)
    info = sub.add_parser("info", help="show what is cached and what would be used offline")
    info.add_argument(
        "--verify", action="store_true", help="accepted for old scripts: every cached file's hash is checked"
    )
    info.set_defaults(func=_cmd_info)
    ex = sub.add_parser(
        "exercises", help="generate the student notebooks from the nbgrader source notebooks (needs nbgrader)"
    )
    ex.add_argument(
        "--course", default="docs/course", help="nbgrader course folder holding source/ASSIGNMENT/*.ipynb"
    )
    ex.add_argument("--out", default="notebooks/exercises", help="folder for the student versions")
    ex.add_argument("--check", action="store_true", help="only compare; exit 1 when anything differs")
    ex.set_defaults(func=_cmd_exercises)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``introspect-lab`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DownloadError, FileNotFoundError, ImportError) as exc:
        print(f"introspect-lab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
