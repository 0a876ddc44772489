"""Tasks of exercise sets 05–08: activation maximisation, DeepDream, feature inversion, texture and style."""

from __future__ import annotations

import torch

from ..synthesis import objectives as O
from ..synthesis import priors as R
from ._common import LAYER, context, randint_between, randn64
from .checks import Task, register

# --- ex05: activation maximisation -----------------------------------------------------------


def _class_objective_cases(g, more):
    out = [(randn64(g, 1, 10), randn64(g, 1, 3, 6, 6), randint_between(g, 0, 9), 1e-2)]
    out.append((randn64(g, 3, 10), randn64(g, 3, 3, 5, 7), randint_between(g, 0, 9), 0.3))
    if more:
        out.append((randn64(g, 2, 1000), randn64(g, 2, 3, 16, 16), 281, 1e-3))
    return out


def _class_objective_reference(logits, image, c, lam):
    obj = O.class_score(list(range(logits.shape[1])), c) - lam * R.l2()
    return obj(context({O.LOGITS: logits}, image))


register(
    Task(
        "class_objective",
        cases=_class_objective_cases,
        reference=_class_objective_reference,
        blocked=("introspect_lab.synthesis.objectives.class_score", "introspect_lab.synthesis.priors.l2"),
        hint=(
            "S_c is the logit of class c (before softmax), summed over the batch; "
            "‖I‖² sums the squares of every pixel."
        ),
    )
)


def _step_cases(g, more):
    out = [
        (randn64(g, 1, 3, 6, 6), randn64(g, 1, 3, 6, 6), 2.0),
        (randn64(g, 3, 3, 5, 4), randn64(g, 3, 3, 5, 4), 25.0),
    ]
    if more:
        out.append(
            (
                randn64(g, 4, 3, 9, 9),
                randn64(g, 4, 3, 9, 9) * torch.logspace(-3, 3, 4, dtype=torch.float64).view(4, 1, 1, 1),
                1.0,
            )
        )
    return out


def _ascent_step_reference(image, grad, lr):
    # the "ascent" step of synthesis.synthesize: the gradient divided by its L2 norm, per image
    return image + lr * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


register(
    Task(
        "ascent_step",
        cases=_step_cases,
        reference=_ascent_step_reference,
        hint="Divide each image's gradient by its own L2 norm (over all its pixels), not by the batch's.",
    )
)


def _channel_objective_cases(g, more):
    out = [
        (randn64(g, 1, 6, 5, 5), randint_between(g, 0, 5)),
        (randn64(g, 3, 4, 7, 3), randint_between(g, 0, 3)),
    ]
    if more:
        out.append((randn64(g, 2, 16, 1, 1), 15))
    return out


register(
    Task(
        "channel_objective",
        cases=_channel_objective_cases,
        reference=lambda act, k: O.channel(LAYER, k)(context({LAYER: act})),
        blocked=(
            "introspect_lab.synthesis.objectives.channel",
            "introspect_lab.synthesis.objectives.layer_activation",
        ),
        hint="Average channel k over its positions for each image, then sum over the batch.",
    )
)

# --- ex06: DeepDream -------------------------------------------------------------------------

register(
    Task(
        "dream_objective",
        cases=lambda g, more: (
            [(randn64(g, 1, 4, 5, 5),), (randn64(g, 3, 8, 3, 6),)]
            + ([(randn64(g, 2, 32, 9, 9),)] if more else [])
        ),
        reference=lambda act: O.dream(LAYER, reduction="sum")(context({LAYER: act})),
        blocked=("introspect_lab.synthesis.objectives.dream",),
        hint="Σ_i f_i(I)²: the sum of the squares of every activation of the layer (and over the batch).",
    )
)


def _dream_step_reference(image, grad, lr):
    # the "dream" step of synthesis.synthesize: the gradient divided by its mean absolute value, per image
    return image + lr * grad / grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


register(
    Task(
        "dream_step",
        cases=_step_cases,
        reference=_dream_step_reference,
        hint=(
            "Divide each image's gradient by the mean of its absolute values (per image), "
            "then take a step of size lr."
        ),
    )
)


def _octave_cases(g, more):
    out = [
        (224, 224, 3, 1.4),
        (randint_between(g, 100, 300), randint_between(g, 100, 300), randint_between(g, 2, 5), 1.3),
    ]
    if more:
        out += [(40, 90, 4, 2.0), (160, 160, 1, 1.4)]
    return out


def _octave_reference(h, w, octaves, scale):
    # the octave sizes of synthesis.deepdream, smallest first; never below 16 px
    return torch.tensor(
        [(max(16, round(h / scale**k)), max(16, round(w / scale**k))) for k in reversed(range(octaves))],
        dtype=torch.float64,
    )


register(
    Task(
        "octave_sizes",
        cases=_octave_cases,
        reference=_octave_reference,
        compare=lambda a, e: (torch.as_tensor(a, dtype=torch.float64).reshape(-1, 2), e),
        hint=(
            "Octave k (counting down from the full size, k = 0) is round(h / scale**k) by "
            "round(w / scale**k), at least 16; smallest first."
        ),
    )
)

# --- ex07: feature inversion -----------------------------------------------------------------


def _tv_cases(g, more):
    out = [(randn64(g, 1, 3, 6, 6), 2.0), (randn64(g, 2, 3, 5, 8), 1.0)]
    if more:
        out += [(randn64(g, 3, 3, 9, 4), 3.0), (randn64(g, 1, 1, 2, 2), 2.0)]
    return out


register(
    Task(
        "total_variation",
        cases=_tv_cases,
        reference=lambda x, beta: R.total_variation(x, beta),
        blocked=("introspect_lab.synthesis.priors.total_variation", "introspect_lab.synthesis.priors.tv"),
        hint=(
            "Both differences on the (H−1)×(W−1) grid where they exist: x[..., :-1, 1:] − x[..., :-1, :-1] "
            "and x[..., 1:, :-1] − x[..., :-1, :-1]."
        ),
    )
)


def _feature_loss_cases(g, more):
    out = [(randn64(g, 1, 4, 3, 3), randn64(g, 1, 4, 3, 3)), (randn64(g, 3, 2, 5, 5), randn64(g, 3, 2, 5, 5))]
    if more:
        out.append((randn64(g, 2, 64), randn64(g, 2, 64) * 100))
    return out


register(
    Task(
        "feature_loss",
        cases=_feature_loss_cases,
        reference=lambda phi, phi0: O.feature_match(LAYER, phi0)(context({LAYER: phi})),
        blocked=("introspect_lab.synthesis.objectives.feature_match",),
        hint="‖Φ − Φ₀‖² / ‖Φ₀‖² for each image (norms over all its features), summed over the batch.",
    )
)
register(
    Task(
        "alpha_norm",
        cases=lambda g, more: (
            [(randn64(g, 1, 3, 4, 4), 6.0), (randn64(g, 2, 3, 5, 3), 3.0)]
            + ([(randn64(g, 1, 3, 8, 8), 1.5)] if more else [])
        ),
        reference=lambda x, alpha: R.alpha_norm(alpha)(context({}, x)),
        blocked=("introspect_lab.synthesis.priors.alpha_norm",),
        hint="Σ |x|^α over every pixel (absolute value first, so odd and fractional α work).",
    )
)

# --- ex08: texture and style -----------------------------------------------------------------

_GRAM_BLOCKED = ("introspect_lab.synthesis.objectives.gram",)


def _gram_cases(g, more):
    out = [(randn64(g, 1, 4, 3, 3),), (randn64(g, 2, 6, 5, 2),)]
    if more:
        out.append((randn64(g, 3, 16, 7, 7),))
    return out


register(
    Task(
        "gram",
        cases=_gram_cases,
        reference=lambda f: O.gram(f),
        blocked=_GRAM_BLOCKED,
        hint="Reshape to [B, N, H·W], then F @ Fᵀ per image (transpose the last two dimensions).",
    )
)


def _gram_loss_cases(g, more):
    out = []
    for b, n, h, w in [(1, 4, 3, 3), (2, 6, 4, 5)] + ([(3, 8, 6, 2)] if more else []):
        feats, other = randn64(g, b, n, h, w), randn64(g, 1, n, h + 1, w)
        out.append((feats, O.gram(other)))
    return out


register(
    Task(
        "gram_loss",
        cases=_gram_loss_cases,
        reference=lambda f, target: O.gram_loss(LAYER, target)(context({LAYER: f})),
        blocked=_GRAM_BLOCKED
        + ("introspect_lab.synthesis.objectives.gram_loss", "introspect_lab.synthesis.objectives.style_loss"),
        hint=(
            "E = Σ_ij (G_ij − A_ij)² / (4 N² M²) with N channels and M = H·W of the features you were given; "
            "sum over the batch."
        ),
    )
)


def _content_cases(g, more):
    out = [(randn64(g, 1, 4, 3, 3), randn64(g, 1, 4, 3, 3)), (randn64(g, 2, 3, 2, 5), randn64(g, 2, 3, 2, 5))]
    if more:
        out.append((randn64(g, 3, 8, 4, 4), randn64(g, 1, 8, 4, 4)))
    return out


register(
    Task(
        "content_loss",
        cases=_content_cases,
        reference=lambda f, p: O.content_loss(LAYER, p)(context({LAYER: f})),
        blocked=("introspect_lab.synthesis.objectives.content_loss",),
        hint=(
            "½ Σ (F − P)² over every feature; the target P may be one image for the whole batch (broadcast)."
        ),
    )
)
