"""One small call of every public entry point that takes a model and images (shared by the device and model
tests).
"""

from __future__ import annotations

from introspect_lab import adversarial as Adv
from introspect_lab import attribution as A
from introspect_lab.models import model_settings
from introspect_lab.settings import LUCENT
from introspect_lab.synthesis import deepdream, invert, visualize_channel, visualize_class
from introspect_lab.texture.gatys import style_transfer, texture_synthesis

SIZE = 48


def entry_points(m, x, s):
    """One small call of every public entry point that takes a model and images."""
    tiny = dict(size=SIZE, steps=2, progress=False, seed=0)
    mid = model_settings(m).mid_layer if m is not None else None
    return {
        "gradient": lambda: A.gradient(m, x, 1),
        "saliency": lambda: A.saliency(m, x, 1),
        "smoothgrad": lambda: A.smoothgrad(m, x, 1, n_samples=2),
        "integrated_gradients": lambda: A.integrated_gradients(m, x, 1, n_steps=4, rtol=1.0),
        "occlusion (plain)": lambda: A.occlusion(m, x, 1, window=24, stride=24, method="plain"),
        "occlusion (incremental)": lambda: A.occlusion(m, x, 1, window=16, stride=16, method="incremental"),
        "cam": lambda: A.cam(m, x, 1),
        "grad_cam": lambda: A.grad_cam(m, x, 1),
        "guided_backprop": lambda: A.guided_backprop(m, x, 1),
        "deconvnet": lambda: A.deconvnet(m, x, 1),
        "guided_grad_cam": lambda: A.guided_grad_cam(m, x, 1),
        "fgsm": lambda: Adv.fgsm(m, x, 1, eps=1 / 255),
        "pgd": lambda: Adv.pgd(m, x, 1, eps=1 / 255, steps=2),
        "visualize_class": lambda: visualize_class(m, 1, **tiny).image,
        "visualize_class (fft)": lambda: visualize_class(m, 1, LUCENT, **tiny).image,
        "visualize_channel": lambda: visualize_channel(m, mid, 0, **tiny).image,
        "deepdream": lambda: deepdream(m, x, steps=2, octaves=1, progress=False).image,
        "invert": lambda: invert(m, x, mid, **tiny).image,
        "style_transfer": lambda: style_transfer(m, x, s, **tiny).image,
        "texture_synthesis": lambda: texture_synthesis(m, s, **tiny).image,
    }
