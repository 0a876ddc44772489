"""Adversarial examples: fooling images, FGSM, PGD, and robust (adversarial) training.

Every attack has the call shape ``attack(model, x, target, **options)``:

* ``x`` is a batch ``[B, 3, H, W]`` in the model's *normalised* space
  (:func:`~introspect_lab.images.load_image`), and so is the result;
* ``target`` is a class index, a class name, or one per image
  (:func:`~introspect_lab.models.class_indices`); for untargeted attacks it is
  the true class (default: the model's own prediction);
* budgets (``eps``, ``step``) are in **pixel units of [0, 1]** (``2/255`` is
  two grey levels); the attack works on ``denormalize(x)`` and clamps the
  result to valid pixels, so what you get is an image a camera could store
  (up to 8-bit rounding).

The model is left exactly as it was: eval mode for the attack, parameters
that need no gradient, everything restored on exit (:func:`~introspect_lab.hooks.frozen`).

Sources: seed 004 (CSE 891, "Adversarial examples: recipe", FGSM); seed 001
(HKUST, "Fooling images", "Adversarial robust training"); Szegedy et al. 2014,
"Intriguing properties of neural networks"; Goodfellow, Shlens & Szegedy 2015,
"Explaining and harnessing adversarial examples"; Madry et al. 2018, "Towards
deep learning models resistant to adversarial attacks".
"""

from __future__ import annotations

from ..transfer.training import accuracy, correct
from .attacks import FoolingResult, fgsm, fgsm_family, fool, linf_pixels, pgd, quantize, random_sign
from .plots import plot_eps_sweeps, plot_fooling, plot_gradients
from .robustness import (
    EpsSweep,
    adversarial_training,
    eps_sweep,
    neighbour_correlation,
    robust_accuracy,
    train_substitute,
)

__all__ = [
    "fgsm",
    "fgsm_family",
    "pgd",
    "fool",
    "FoolingResult",
    "linf_pixels",
    "quantize",
    "random_sign",
    "accuracy",
    "correct",
    "train_substitute",
    "neighbour_correlation",
    "plot_gradients",
    "eps_sweep",
    "EpsSweep",
    "robust_accuracy",
    "adversarial_training",
    "plot_fooling",
    "plot_eps_sweeps",
]
