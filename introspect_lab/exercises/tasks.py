"""The exercise tasks: fresh inputs, the library's answer, and what is switched off while checking.

One block per exercise set (``ex01`` … ``ex14``), in the order of the
lecture notebooks. Inputs are small and in float64, so that two correct
implementations agree to ~1e-12 and any real mistake shows as a relative
error far above the tolerance. Models are tiny CNNs with fresh random
weights: a function that only works on one network does not pass.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .. import attribution as A
from .. import features as Fe
from .. import hooks as H
from .. import images as I  # noqa: E741
from .. import objectives as O
from .. import regularizers as R
from .checks import Task, register

__all__ = ["tiny_cnn"]

LAYER = "features"


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def tiny_cnn(g: torch.Generator, classes: int = 10, width: int = 8) -> nn.Module:
    """A small float64 CNN with random weights: conv–ReLU–conv–ReLU, global average pooling, one linear layer.

    Layers by name: ``conv1``, ``relu1``, ``conv2``, ``features`` (the last ReLU,
    the CAM / Grad-CAM layer), ``pool``, ``flatten``, ``fc``.
    """
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, width, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            features=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(2 * width, classes),
        )
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model.eval()


def _image(g: torch.Generator, batch: int, h: int, w: int | None = None) -> torch.Tensor:
    """A random image in the normalised range of ImageNet models (uniform in [−2, 2])."""
    return torch.rand(batch, 3, h, w or h, generator=g, dtype=torch.float64) * 4 - 2


def _ctx(activations: dict, image: torch.Tensor | None = None) -> O.Context:
    img = image if image is not None else torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    return O.Context(activations=activations, image=img, input=img)


# --- ex01: filters and activations --------------------------------------------------------------

register(
    Task(
        "normalize",
        cases=lambda g, more: [
            (torch.rand(b, 3, h, w, generator=g),)  # float32, like a loaded photo
            for b, h, w in ([(1, 8, 8), (2, 5, 7)] + ([(4, 3, 11)] if more else []))
        ],
        reference=lambda img01: I.normalize(img01),
        blocked=("introspect_lab.images.normalize", "introspect_lab.images.load_image"),
        hint="Subtract the mean and divide by the std of each colour channel (dim 1).",
    )
)

register(
    Task(
        "filter_tiles",
        cases=lambda g, more: (
            [(_randn(g, 6, 3, 5, 5),), (_randn(g, 4, 3, 3, 3),)]
            + (
                [(torch.cat([_randn(g, 3, 3, 7, 7), torch.full((1, 3, 7, 7), 0.3, dtype=torch.float64)]),)]
                if more
                else []
            )
        ),
        reference=lambda w: torch.from_numpy(Fe.filters_for_display(w)).double(),
        blocked=(
            "introspect_lab.features.filters_for_display",
            "introspect_lab.features.first_layer_filters",
        ),
        hint="Scale each filter on its own to [0, 1] (its own min and max), then move the colour axis last.",
    )
)


def _activation_cases(g, more):
    out = [(tiny_cnn(g), _image(g, 2, 12), "relu1"), (tiny_cnn(g), _image(g, 1, 10), "conv2")]
    if more:
        out.append((tiny_cnn(g), _image(g, 3, 9, 13), "features"))
    return out


def _activation_reference(model, x, layer):
    with H.capture(model, layer) as cap:
        cap.run(x)
    return cap.activations[layer]


_ACTIVATION_BLOCKED = (
    "introspect_lab.hooks.capture",
    "introspect_lab.features.extract_features",
    "introspect_lab.features.activation_maps",
    "introspect_lab.synthesis.layer_features",
)
register(
    Task(
        "activation",
        cases=_activation_cases,
        reference=_activation_reference,
        blocked=_ACTIVATION_BLOCKED,
        hint="Store the hook's `output` argument; the layer is model.get_submodule(layer).",
    )
)

# --- ex02: feature space ------------------------------------------------------------------------


def _nearest_cases(g, more):
    out = [(_randn(g, 12, 6), _randint(g, 0, 11), 3), (_randn(g, 20, 4, 2, 2), _randint(g, 0, 19), 5)]
    if more:
        out.append((_randn(g, 30, 16), 29, 10))
    return out


register(
    Task(
        "nearest",
        cases=_nearest_cases,
        reference=lambda f, q, k: Fe.nearest_neighbors(f, q, k).indices[0],
        blocked=("introspect_lab.features.nearest_neighbors",),
        hint="Flatten each item, take Euclidean distances to item q, leave q itself out, keep the k smallest.",
    )
)


def _align_signs(answer, expected):
    """PCA components are defined up to sign: flip each column of the answer to match the reference."""
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    if a.shape != e.shape:
        return a, e
    signs = torch.sign((a * e).sum(0))
    signs[signs == 0] = 1
    return a * signs, e


register(
    Task(
        "pca",
        cases=lambda g, more: (
            [
                (_randn(g, 15, 5) * torch.tensor([5.0, 3, 2, 1, 0.5], dtype=torch.float64) + 4, 2),
                (_randn(g, 25, 8) * torch.linspace(6, 1, 8, dtype=torch.float64), 3),
            ]
            + (
                [
                    (
                        _randn(g, 40, 3, 2, 2)
                        * torch.linspace(4, 0.5, 12, dtype=torch.float64).view(1, 3, 2, 2),
                        2,
                    )
                ]
                if more
                else []
            )
        ),
        reference=lambda f, n: torch.from_numpy(Fe.embed(f, "pca", n_components=n)),
        blocked=("introspect_lab.features.embed", "sklearn.decomposition.PCA"),
        compare=_align_signs,
        hint="Centre the features (subtract the mean over items) before the SVD; project on the top n directions.",
    )
)


def _top_images_cases(g, more):
    out = [(_randn(g, 10, 4, 5, 5), _randint(g, 0, 3), 3), (_randn(g, 16, 6, 3, 4), _randint(g, 0, 5), 5)]
    if more:
        out.append((_randn(g, 30, 2, 7, 7), 1, 30))
    return out


def _top_images_reference(acts, channel, k):
    # the statistic of top_patches: per image the channel's strongest unit, then the k strongest images
    values = Fe.ChannelMaxima("", *_maxima(acts)).values[:, channel]
    return torch.sort(values, descending=True, stable=True).indices[:k]


def _maxima(acts):
    val, arg = acts.flatten(2).max(2)
    w = acts.shape[3]
    return val, torch.stack([arg // w, arg % w], -1), tuple(acts.shape[2:])


register(
    Task(
        "top_images",
        cases=_top_images_cases,
        reference=_top_images_reference,
        blocked=("introspect_lab.features.channel_maxima", "introspect_lab.features.top_patches"),
        hint="For each image take the channel's maximum over all positions, then the k largest, strongest first.",
    )
)

# --- ex03: saliency, CAM, Grad-CAM --------------------------------------------------------------


def _saliency_cases(g, more):
    out = [
        (tiny_cnn(g), _image(g, 1, 12), _randint(g, 0, 9)),
        (tiny_cnn(g), _image(g, 2, 10), _randint(g, 0, 9)),
    ]
    if more:
        out.append((tiny_cnn(g), _image(g, 3, 9, 14), 7))
    return out


register(
    Task(
        "saliency",
        cases=_saliency_cases,
        reference=lambda model, x, c: A.saliency(model, x, c),
        blocked=(
            "introspect_lab.attribution.saliency",
            "introspect_lab.attribution.gradient",
            "introspect_lab.attribution.smoothgrad",
            "introspect_lab.attribution.to_map",
            "introspect_lab.attribution.integrated_gradients",
        ),
        hint="Gradient of the class score (the logit, not the softmax) w.r.t. x, absolute value, max over dim 1.",
    )
)


def _cam_cases(g, more):
    out = []
    for b, h in [(1, 12), (2, 10)] + ([(3, 15)] if more else []):
        model, x, c = tiny_cnn(g), _image(g, b, h), _randint(g, 0, 9)
        with H.capture(model, LAYER) as cap:
            cap.run(x)
        out.append((cap.activations[LAYER], model.fc.weight.detach().clone(), c, model, x))
    return out


register(
    Task(
        "cam",
        cases=_cam_cases,
        reference=lambda f, w, c, model, x: A.cam(model, x, c, raw=True),
        arity=3,
        blocked=("introspect_lab.attribution.cam",),
        hint="M_c(h, w) = Σ_k w[c, k] · f[:, k, h, w]: weight each feature map by the class's row of fc.weight.",
    )
)


def _grad_cam_cases(g, more):
    out = []
    for b, h in [(1, 12), (2, 10)] + ([(3, 15)] if more else []):
        model, x, c = tiny_cnn(g), _image(g, b, h), _randint(g, 0, 9)
        xg = x.clone().requires_grad_(True)
        with H.capture(model, LAYER, gradients=True) as cap:
            (grad_x,) = torch.autograd.grad(model(xg)[:, c].sum(), xg)
        out.append((cap.activations[LAYER], cap.gradients[LAYER], model, x, c))
    return out


register(
    Task(
        "grad_cam",
        cases=_grad_cam_cases,
        reference=lambda acts, grads, model, x, c: A.grad_cam(model, x, c, layer=LAYER, raw=True),
        arity=2,
        blocked=("introspect_lab.attribution.grad_cam", "introspect_lab.attribution.guided_grad_cam"),
        hint="α_k is the mean of the gradient over positions (dims 2, 3); the map is ReLU(Σ_k α_k A_k).",
    )
)

# --- ex04: guided backprop and the sanity check -------------------------------------------------


def _relu_rule_cases(g, more):
    shapes = [(2, 4, 5, 5), (1, 3, 6, 4)] + ([(3, 8, 7, 9)] if more else [])
    out = []
    for s in shapes:
        z = _randn(g, *s)
        z.view(-1)[: max(1, z.numel() // 10)] = 0.0  # some units exactly at the kink
        out.append((z, _randn(g, *s)))
    return out


def _relu_rule_reference(rule):
    def ref(z, grad_out):
        zz = z.detach().clone().requires_grad_(True)
        y = A._RuleReLU.apply(zz, 0.0, None, rule)
        (grad_in,) = torch.autograd.grad(y, zz, grad_out)
        return grad_in

    return ref


_RULES_BLOCKED = (
    "introspect_lab.attribution.guided_backprop",
    "introspect_lab.attribution.deconvnet",
    "introspect_lab.attribution._RuleReLU",
)
register(
    Task(
        "guided_relu",
        cases=_relu_rule_cases,
        reference=_relu_rule_reference("guided"),
        blocked=_RULES_BLOCKED,
        hint="Guided: pass y' only where BOTH the forward input z > 0 AND the incoming signal y' > 0.",
    )
)
register(
    Task(
        "deconv_relu",
        cases=_relu_rule_cases,
        reference=_relu_rule_reference("deconv"),
        blocked=_RULES_BLOCKED,
        hint="Deconvnet ignores the forward input z: it sends back max(y', 0).",
    )
)


def _spearman_cases(g, more):
    out = []
    for n in [30, 60] + ([200] if more else []):
        a = _randn(g, n)
        out.append((a, torch.exp(2 * a) + 0.5 * _randn(g, n).abs()))  # monotone but far from linear
    if more:
        a = _randn(g, 8, 8)
        out.append((a, -(a**3)))  # a perfectly reversed ranking: ρ = −1
    return out


register(
    Task(
        "spearman",
        cases=_spearman_cases,
        reference=lambda a, b: torch.tensor(A.spearman(a, b), dtype=torch.float64),
        blocked=(
            "introspect_lab.attribution.spearman",
            "introspect_lab.attribution._rank",
            "scipy.stats.spearmanr",
        ),
        hint="Rank each map (argsort of the argsort of the flattened values), then take the Pearson correlation of the ranks.",
    )
)

# --- ex05: activation maximisation -----------------------------------------------------------


def _class_objective_cases(g, more):
    out = [(_randn(g, 1, 10), _randn(g, 1, 3, 6, 6), _randint(g, 0, 9), 1e-2)]
    out.append((_randn(g, 3, 10), _randn(g, 3, 3, 5, 7), _randint(g, 0, 9), 0.3))
    if more:
        out.append((_randn(g, 2, 1000), _randn(g, 2, 3, 16, 16), 281, 1e-3))
    return out


def _class_objective_reference(logits, image, c, lam):
    obj = O.class_score(list(range(logits.shape[1])), c) - lam * R.l2()
    return obj(_ctx({O.LOGITS: logits}, image))


register(
    Task(
        "class_objective",
        cases=_class_objective_cases,
        reference=_class_objective_reference,
        blocked=("introspect_lab.objectives.class_score", "introspect_lab.regularizers.l2"),
        hint="S_c is the logit of class c (before softmax), summed over the batch; ‖I‖² sums the squares of every pixel.",
    )
)


def _step_cases(g, more):
    out = [
        (_randn(g, 1, 3, 6, 6), _randn(g, 1, 3, 6, 6), 2.0),
        (_randn(g, 3, 3, 5, 4), _randn(g, 3, 3, 5, 4), 25.0),
    ]
    if more:
        out.append(
            (
                _randn(g, 4, 3, 9, 9),
                _randn(g, 4, 3, 9, 9) * torch.logspace(-3, 3, 4, dtype=torch.float64).view(4, 1, 1, 1),
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
    out = [(_randn(g, 1, 6, 5, 5), _randint(g, 0, 5)), (_randn(g, 3, 4, 7, 3), _randint(g, 0, 3))]
    if more:
        out.append((_randn(g, 2, 16, 1, 1), 15))
    return out


register(
    Task(
        "channel_objective",
        cases=_channel_objective_cases,
        reference=lambda act, k: O.channel(LAYER, k)(_ctx({LAYER: act})),
        blocked=("introspect_lab.objectives.channel", "introspect_lab.objectives.layer_activation"),
        hint="Average channel k over its positions for each image, then sum over the batch.",
    )
)

# --- ex06: DeepDream -------------------------------------------------------------------------

register(
    Task(
        "dream_objective",
        cases=lambda g, more: (
            [(_randn(g, 1, 4, 5, 5),), (_randn(g, 3, 8, 3, 6),)]
            + ([(_randn(g, 2, 32, 9, 9),)] if more else [])
        ),
        reference=lambda act: O.dream(LAYER, reduction="sum")(_ctx({LAYER: act})),
        blocked=("introspect_lab.objectives.dream",),
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
        hint="Divide each image's gradient by the mean of its absolute values (per image), then take a step of size lr.",
    )
)


def _octave_cases(g, more):
    out = [(224, 224, 3, 1.4), (_randint(g, 100, 300), _randint(g, 100, 300), _randint(g, 2, 5), 1.3)]
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
        hint="Octave k (counting down from the full size, k = 0) is round(h / scale**k) by round(w / scale**k), at least 16; smallest first.",
    )
)

# --- ex07: feature inversion -----------------------------------------------------------------


def _tv_cases(g, more):
    out = [(_randn(g, 1, 3, 6, 6), 2.0), (_randn(g, 2, 3, 5, 8), 1.0)]
    if more:
        out += [(_randn(g, 3, 3, 9, 4), 3.0), (_randn(g, 1, 1, 2, 2), 2.0)]
    return out


register(
    Task(
        "total_variation",
        cases=_tv_cases,
        reference=lambda x, beta: R.total_variation(x, beta),
        blocked=("introspect_lab.regularizers.total_variation", "introspect_lab.regularizers.tv"),
        hint="Both differences on the (H−1)×(W−1) grid where they exist: x[..., :-1, 1:] − x[..., :-1, :-1] and x[..., 1:, :-1] − x[..., :-1, :-1].",
    )
)


def _feature_loss_cases(g, more):
    out = [(_randn(g, 1, 4, 3, 3), _randn(g, 1, 4, 3, 3)), (_randn(g, 3, 2, 5, 5), _randn(g, 3, 2, 5, 5))]
    if more:
        out.append((_randn(g, 2, 64), _randn(g, 2, 64) * 100))
    return out


register(
    Task(
        "feature_loss",
        cases=_feature_loss_cases,
        reference=lambda phi, phi0: O.feature_match(LAYER, phi0)(_ctx({LAYER: phi})),
        blocked=("introspect_lab.objectives.feature_match",),
        hint="‖Φ − Φ₀‖² / ‖Φ₀‖² for each image (norms over all its features), summed over the batch.",
    )
)
register(
    Task(
        "alpha_norm",
        cases=lambda g, more: (
            [(_randn(g, 1, 3, 4, 4), 6.0), (_randn(g, 2, 3, 5, 3), 3.0)]
            + ([(_randn(g, 1, 3, 8, 8), 1.5)] if more else [])
        ),
        reference=lambda x, alpha: R.alpha_norm(alpha)(_ctx({}, x)),
        blocked=("introspect_lab.regularizers.alpha_norm",),
        hint="Σ |x|^α over every pixel (absolute value first, so odd and fractional α work).",
    )
)

# --- ex08: texture and style -----------------------------------------------------------------

_GRAM_BLOCKED = ("introspect_lab.objectives.gram", "introspect_lab.style.gram_matrix")


def _gram_cases(g, more):
    out = [(_randn(g, 1, 4, 3, 3),), (_randn(g, 2, 6, 5, 2),)]
    if more:
        out.append((_randn(g, 3, 16, 7, 7),))
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
        feats, other = _randn(g, b, n, h, w), _randn(g, 1, n, h + 1, w)
        out.append((feats, O.gram(other)))
    return out


register(
    Task(
        "gram_loss",
        cases=_gram_loss_cases,
        reference=lambda f, target: O.gram_loss(LAYER, target)(_ctx({LAYER: f})),
        blocked=_GRAM_BLOCKED
        + ("introspect_lab.objectives.gram_loss", "introspect_lab.objectives.style_loss"),
        hint="E = Σ_ij (G_ij − A_ij)² / (4 N² M²) with N channels and M = H·W of the features you were given; sum over the batch.",
    )
)


def _content_cases(g, more):
    out = [(_randn(g, 1, 4, 3, 3), _randn(g, 1, 4, 3, 3)), (_randn(g, 2, 3, 2, 5), _randn(g, 2, 3, 2, 5))]
    if more:
        out.append((_randn(g, 3, 8, 4, 4), _randn(g, 1, 8, 4, 4)))
    return out


register(
    Task(
        "content_loss",
        cases=_content_cases,
        reference=lambda f, p: O.content_loss(LAYER, p)(_ctx({LAYER: f})),
        blocked=("introspect_lab.objectives.content_loss",),
        hint="½ Σ (F − P)² over every feature; the target P may be one image for the whole batch (broadcast).",
    )
)

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
        out.append((p, _randn(g, *s), float(_randint(g, 1, 8)) / 255))
    return out


register(
    Task(
        "fgsm_step",
        cases=_adv_cases,
        reference=lambda p, grad, eps: (p + eps * grad.sign()).clamp(0, 1),
        blocked=_ADV_BLOCKED,
        hint="p + ε·sign(∇) — the sign of the gradient, not the gradient — then clamp to the valid pixels [0, 1].",
    )
)


def _project_cases(g, more):
    out = []
    for s in [(1, 3, 6, 6), (2, 3, 4, 5)] + ([(3, 3, 8, 8)] if more else []):
        p0, eps = _pixels(g, *s), 8 / 255
        out.append((p0 + 0.1 * _randn(g, *s), p0, eps))
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
        logits = _randn(g, b, c) * 2
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
        centres = _randn(g, c, d) * 3
        y = (torch.arange(n) % c)[torch.randperm(n, generator=g)]
        f = centres[y] + _randn(g, n, d)
        yq = torch.randint(0, c, (n // 2,), generator=g)
        out.append((f, y, centres[yq] + 2 * _randn(g, n // 2, d), c))
    return out


def _class_mean_reference(train_f, train_y, test_f, classes):
    means = torch.stack([train_f[train_y == k].mean(0) for k in range(classes)])
    return torch.cdist(test_f, means).argmin(1)


register(
    Task(
        "class_mean_probe",
        cases=_probe_cases,
        reference=_class_mean_reference,
        hint="One mean feature vector per class (from the training features), then each test item takes the class of the nearest mean.",
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
        logits = torch.round(_randn(g, b, c) * 4) / 4  # quarter steps: some ties
        out.append((logits, torch.randint(0, c, (b,), generator=g)))
    return out


def _ordinal_rank_reference(logits, target):
    own = logits.gather(1, target.view(-1, 1))
    return 1 + (logits > own).sum(1)


register(
    Task(
        "ordinal_rank",
        cases=_rank_cases,
        reference=_ordinal_rank_reference,
        blocked=("introspect_lab.experiments.style_shift.ordinal_rank",),
        hint="rank = 1 + the number of classes with a strictly larger logit than the target's (ties count in its favour).",
    )
)
register(
    Task(
        "top_k_accuracy",
        cases=lambda g, more: [(logits, t, k) for (logits, t), k in zip(_rank_cases(g, more), [3, 5, 5])],
        reference=lambda logits, t, k: (_ordinal_rank_reference(logits, t) <= k).double().mean(),
        blocked=("introspect_lab.experiments.style_shift.ordinal_rank",),
        hint="An image counts when its target's ordinal rank is at most k; return the fraction of such images.",
    )
)

# --- ex12: novelty detection -----------------------------------------------------------------


def _auroc_cases(g, more):
    out = []
    for n, shift in [(20, 1.0), (60, 0.3)] + ([(300, 2.0)] if more else []):
        y = (torch.arange(n) % 2 == 0).long()
        out.append((y, _randn(g, n) + shift * y))
    return out


def _auroc_reference(y, scores):
    from sklearn.metrics import roc_auc_score

    return torch.tensor(roc_auc_score(y.numpy(), scores.numpy()), dtype=torch.float64)


register(
    Task(
        "auroc",
        cases=_auroc_cases,
        reference=_auroc_reference,
        blocked=("sklearn.metrics.roc_auc_score", "introspect_lab.experiments.novelty.auroc"),
        hint="AUROC = the fraction of (unseen, seen) pairs where the unseen item has the larger score; ranks (argsort of argsort) give it without a double loop.",
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
        out.append((_randn(g, n, d) * scale + 3, _randn(g, m, d) * scale))
    return out


register(
    Task(
        "standardize",
        cases=_standardize_cases,
        reference=lambda train, test: (test - train.mean(0)) / train.std(0, unbiased=False).clamp_min(1e-12),
        hint="Mean and standard deviation per feature from the TRAINING set only (population std, unbiased=False), applied to the test set.",
    )
)

# --- ex13: intra-class pathways --------------------------------------------------------------


def _window_cases(g, more):
    out = [(4, 4, 2), (_randint(g, 3, 7), _randint(g, 3, 7), 1)]
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
        hint="One mask [1, h, w] per k×k window, windows every k cells (row by row, left to right), 1 inside the window and 0 outside.",
    )
)
register(
    Task(
        "relu_code",
        cases=lambda g, more: [
            (torch.relu(_randn(g, *s)),) for s in [(1, 4, 3, 3), (2, 8)] + ([(3, 16, 5, 5)] if more else [])
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
            (_randn(g, n, d) + 1,) for n, d in [(3, 5), (10, 32)] + ([(40, 256)] if more else [])
        ],
        reference=_off_diagonal_reference,
        hint="Normalise each descriptor to length 1, take all pairwise dot products, and average those with i ≠ j.",
    )
)

# --- ex14: fast style ------------------------------------------------------------------------


def _norm_cases(g, more):
    out = []
    for s in [(1, 3, 5, 5), (4, 8, 6, 3)] + ([(2, 16, 9, 9)] if more else []):
        out.append((_randn(g, *s) * 3 + 1,))
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
        hint="Per image AND per channel: subtract the mean over (H, W) and divide by sqrt(variance + 1e-5), with the biased variance.",
    )
)


def _cin_cases(g, more):
    out = []
    for b, c, s in [(2, 3, 2), (3, 8, 4)] + ([(4, 16, 3)] if more else []):
        x = _randn(g, b, c, 5, 5) * 2
        weights = torch.rand(b, s, generator=g, dtype=torch.float64)
        weights = weights / weights.sum(1, keepdim=True)
        out.append((x, _randn(g, s, c), _randn(g, s, c), weights))
    return out


def _cin_reference(x, gammas, betas, weights):
    gamma, beta = weights @ gammas, weights @ betas
    return gamma[:, :, None, None] * torch.nn.functional.instance_norm(x, eps=1e-5) + beta[:, :, None, None]


register(
    Task(
        "conditional_instance_norm",
        cases=_cin_cases,
        reference=_cin_reference,
        hint="Mix the styles' parameters per image (γ = weights @ gammas, β likewise), then γ·instance_norm(x) + β with γ, β broadcast over H and W.",
    )
)
