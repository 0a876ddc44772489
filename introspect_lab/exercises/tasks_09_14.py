"""Tasks of exercise sets 09–14: adversarial examples, transfer, ordinal rank, novelty, pathways, fast style.

The ordinal rank is checked against ``experiments.style_shift.ordinal_rank``. For the lectures whose
modules arrive separately, each reference is the formula written out here (naming the library function it
mirrors), and functions to switch off that this installation does not have are skipped.
"""

from __future__ import annotations

import torch

from ..experiments import style_shift as SS
from ..lazy import lazy_import
from ._common import randint_between, randn64
from .checks import Task, register

metrics = lazy_import("sklearn.metrics")

# --- ex09: adversarial examples --------------------------------------------------------------
# Pixel-space formulas of introspect_lab.adversarial (fgsm, pgd, fool), written out here.

_ADV_BLOCKED = (
    "introspect_lab.adversarial.fgsm",
    "introspect_lab.adversarial.pgd",
    "introspect_lab.adversarial.fool",
)


def _pixels(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def _adv_cases(g, more):
    shapes = [(1, 3, 6, 6), (3, 3, 5, 7)] + ([(2, 3, 9, 9)] if more else [])
    out = []
    for s in shapes:
        p = _pixels(g, *s)
        p.view(-1)[:4] = torch.tensor([0.0, 1.0, 0.001, 0.999], dtype=torch.float64)  # pixels at the edges
        out.append((p, randn64(g, *s), float(randint_between(g, 1, 8)) / 255))
    return out


register(
    Task(
        "fgsm_step",
        cases=_adv_cases,
        reference=lambda p, grad, eps: (p + eps * grad.sign()).clamp(0, 1),
        blocked=_ADV_BLOCKED,
        hint=(
            "p + ε·sign(∇) — the sign of the gradient, not the gradient — then clamp to the valid pixels "
            "[0, 1]."
        ),
    )
)


def _project_cases(g, more):
    out = []
    for s in [(1, 3, 6, 6), (2, 3, 4, 5)] + ([(3, 3, 8, 8)] if more else []):
        p0, eps = _pixels(g, *s), 8 / 255
        out.append((p0 + 0.1 * randn64(g, *s), p0, eps))
    return out


register(
    Task(
        "project_linf",
        cases=_project_cases,
        reference=lambda p, p0, eps: torch.min(torch.max(p, p0 - eps), p0 + eps).clamp(0, 1),
        blocked=_ADV_BLOCKED,
        hint="Clip every pixel to [p0 − ε, p0 + ε], and to [0, 1]: both constraints, pixel by pixel.",
    )
)
register(
    Task(
        "fooling_step",
        cases=lambda g, more: [(p, grad, 1.0) for p, grad, _ in _adv_cases(g, more)],
        reference=lambda p, grad, lr: (p + lr * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(
            0, 1
        ),
        blocked=_ADV_BLOCKED,
        hint="Each image's gradient divided by its own L2 norm, a step of length lr, then clamp to [0, 1].",
    )
)

# --- ex10: transfer learning -----------------------------------------------------------------


def _logits_cases(g, more):
    out = []
    for b, c in [(30, 3), (50, 10)] + ([(64, 1000)] if more else []):
        y = torch.randint(0, c, (b,), generator=g)
        logits = randn64(g, b, c) * 2
        logits[torch.arange(b), y] += 3  # a classifier that is right most of the time
        out.append((logits, y))
    return out


register(
    Task(
        "cross_entropy",
        cases=_logits_cases,
        reference=lambda logits, y: torch.nn.functional.cross_entropy(logits, y),
        blocked=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"),
        hint="−log softmax(s)_y averaged over the batch; use logsumexp for a stable log-softmax.",
    )
)


def _probe_cases(g, more):
    out = []
    for n, d, c in [(30, 4, 3), (60, 8, 5)] + ([(200, 16, 10)] if more else []):
        centres = randn64(g, c, d) * 3
        y = (torch.arange(n) % c)[torch.randperm(n, generator=g)]
        f = centres[y] + randn64(g, n, d)
        yq = torch.randint(0, c, (n // 2,), generator=g)
        out.append((f, y, centres[yq] + 2 * randn64(g, n // 2, d), c))
    return out


def _class_mean_reference(train_f, train_y, test_f, classes):
    means = torch.stack([train_f[train_y == k].mean(0) for k in range(classes)])
    return torch.cdist(test_f, means).argmin(1)


register(
    Task(
        "class_mean_probe",
        cases=_probe_cases,
        reference=_class_mean_reference,
        hint=(
            "One mean feature vector per class (from the training features), then each test item takes the "
            "class of the nearest mean."
        ),
    )
)
register(
    Task(
        "accuracy",
        cases=lambda g, more: [(logits, y) for logits, y in _logits_cases(g, more)],
        reference=lambda logits, y: (logits.argmax(1) == y).double().mean(),
        hint="The fraction of items whose largest logit is at the true class (a number between 0 and 1).",
    )
)

# --- ex11: style shift (Introspective Neural Networks) ------------------------------------------


def _rank_cases(g, more):
    out = []
    for b, c in [(24, 10), (40, 20)] + ([(64, 100)] if more else []):
        logits = torch.round(randn64(g, b, c) * 4) / 4  # quarter steps: some ties
        out.append((logits, torch.randint(0, c, (b,), generator=g)))
    return out


def _ordinal_rank_reference(logits, target):
    return SS.ordinal_rank(logits, target)


register(
    Task(
        "ordinal_rank",
        cases=_rank_cases,
        reference=_ordinal_rank_reference,
        blocked=("introspect_lab.experiments.style_shift.ordinal_rank",),
        hint=(
            "rank = 1 + the number of classes with a strictly larger logit than the target's "
            "(ties count in its favour)."
        ),
    )
)
register(
    Task(
        "top_k_accuracy",
        cases=lambda g, more: [(logits, t, k) for (logits, t), k in zip(_rank_cases(g, more), [3, 5, 5])],
        reference=lambda logits, t, k: (_ordinal_rank_reference(logits, t) <= k).double().mean(),
        blocked=("introspect_lab.experiments.style_shift.ordinal_rank",),
        hint=(
            "An image counts when its target's ordinal rank is at most k; return the fraction of such images."
        ),
    )
)

# --- ex12: novelty detection -----------------------------------------------------------------


def _auroc_cases(g, more):
    out = []
    for n, shift in [(20, 1.0), (60, 0.3)] + ([(300, 2.0)] if more else []):
        y = (torch.arange(n) % 2 == 0).long()
        out.append((y, randn64(g, n) + shift * y))
    return out


def _auroc_reference(y, scores):
    return torch.tensor(metrics.roc_auc_score(y.numpy(), scores.numpy()), dtype=torch.float64)


register(
    Task(
        "auroc",
        cases=_auroc_cases,
        reference=_auroc_reference,
        blocked=("sklearn.metrics.roc_auc_score", "introspect_lab.experiments.novelty.auroc"),
        hint=(
            "AUROC = the fraction of (unseen, seen) pairs where the unseen item has the larger score; "
            "ranks (argsort of argsort) give it without a double loop."
        ),
    )
)
register(
    Task(
        "msp_score",
        cases=lambda g, more: [(logits,) for logits, _ in _logits_cases(g, more)],
        reference=lambda logits: 1 - logits.softmax(1).amax(1),
        blocked=("introspect_lab.experiments.novelty.msp_scores",),
        hint="1 − max_c softmax(z)_c per image: confident (seen) images score near 0.",
    )
)


def _standardize_cases(g, more):
    out = []
    for n, m, d in [(20, 5, 3), (50, 10, 8)] + ([(100, 30, 64)] if more else []):
        scale = torch.rand(d, generator=g, dtype=torch.float64) * 5 + 0.1
        out.append((randn64(g, n, d) * scale + 3, randn64(g, m, d) * scale))
    return out


register(
    Task(
        "standardize",
        cases=_standardize_cases,
        reference=lambda train, test: (test - train.mean(0)) / train.std(0, unbiased=False).clamp_min(1e-12),
        hint=(
            "Mean and standard deviation per feature from the TRAINING set only "
            "(population std, unbiased=False), applied to the test set."
        ),
    )
)

# --- ex13: intra-class pathways --------------------------------------------------------------


def _window_cases(g, more):
    out = [(4, 4, 2), (randint_between(g, 3, 7), randint_between(g, 3, 7), 1)]
    if more:
        out += [(5, 7, 3), (6, 6, 6)]
    return out


def _window_reference(h, w, k):
    # the masks of introspect_lab.pathways.window_masks (stride k), corners in row-major order
    corners = [(t, left) for t in range(0, h - k + 1, k) for left in range(0, w - k + 1, k)]
    masks = torch.zeros(len(corners), 1, h, w, dtype=torch.float64)
    for i, (t, left) in enumerate(corners):
        masks[i, 0, t : t + k, left : left + k] = 1
    return masks


register(
    Task(
        "window_masks",
        cases=_window_cases,
        reference=_window_reference,
        blocked=("introspect_lab.pathways.window_masks",),
        hint=(
            "One mask [1, h, w] per k×k window, windows every k cells (row by row, left to right), 1 inside "
            "the window and 0 outside."
        ),
    )
)
register(
    Task(
        "relu_code",
        cases=lambda g, more: [
            (torch.relu(randn64(g, *s)),) for s in [(1, 4, 3, 3), (2, 8)] + ([(3, 16, 5, 5)] if more else [])
        ],
        reference=lambda act: (act > 0).double(),
        blocked=("introspect_lab.pathways.relu_codes",),
        hint="The binary code is 1 where the unit fired (output > 0), else 0, as floats.",
    )
)


def _off_diagonal_reference(desc):
    f = desc.flatten(1)
    f = f / f.norm(dim=1, keepdim=True)
    sim = f @ f.T
    n = sim.shape[0]
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


register(
    Task(
        "mean_cosine",
        cases=lambda g, more: [
            (randn64(g, n, d) + 1,) for n, d in [(3, 5), (10, 32)] + ([(40, 256)] if more else [])
        ],
        reference=_off_diagonal_reference,
        hint=(
            "Normalise each descriptor to length 1, take all pairwise dot products, "
            "and average those with i ≠ j."
        ),
    )
)

# --- ex14: fast style ------------------------------------------------------------------------


def _norm_cases(g, more):
    out = []
    for s in [(1, 3, 5, 5), (4, 8, 6, 3)] + ([(2, 16, 9, 9)] if more else []):
        out.append((randn64(g, *s) * 3 + 1,))
    return out


register(
    Task(
        "instance_norm",
        cases=_norm_cases,
        reference=lambda x: torch.nn.functional.instance_norm(x, eps=1e-5),
        blocked=(
            "torch.nn.functional.instance_norm",
            "torch.nn.functional.batch_norm",
            "torch.nn.functional.layer_norm",
        ),
        hint=(
            "Per image AND per channel: subtract the mean over (H, W) and divide by sqrt(variance + 1e-5), "
            "with the biased variance."
        ),
    )
)


def _cin_cases(g, more):
    out = []
    for b, c, s in [(2, 3, 2), (3, 8, 4)] + ([(4, 16, 3)] if more else []):
        x = randn64(g, b, c, 5, 5) * 2
        weights = torch.rand(b, s, generator=g, dtype=torch.float64)
        weights = weights / weights.sum(1, keepdim=True)
        out.append((x, randn64(g, s, c), randn64(g, s, c), weights))
    return out


def _cin_reference(x, gammas, betas, weights):
    gamma, beta = weights @ gammas, weights @ betas
    return gamma[:, :, None, None] * torch.nn.functional.instance_norm(x, eps=1e-5) + beta[:, :, None, None]


register(
    Task(
        "conditional_instance_norm",
        cases=_cin_cases,
        reference=_cin_reference,
        hint=(
            "Mix the styles' parameters per image (γ = weights @ gammas, β likewise), "
            "then γ·instance_norm(x) + β with γ, β broadcast over H and W."
        ),
    )
)
