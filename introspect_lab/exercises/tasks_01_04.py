"""Tasks of exercise sets 01–04: filters and activations, feature space, saliency and CAM, guided backprop."""

from __future__ import annotations

import torch
from torch import nn

from .. import attribution as A
from .. import features as Fe
from .. import hooks as H
from .. import images as I  # noqa: E741
from ..attribution import backprop as AB
from ._common import LAYER, randint_between, randn64, random_image, tiny_cnn
from .checks import Task, register

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
            [(randn64(g, 6, 3, 5, 5),), (randn64(g, 4, 3, 3, 3),)]
            + (
                [(torch.cat([randn64(g, 3, 3, 7, 7), torch.full((1, 3, 7, 7), 0.3, dtype=torch.float64)]),)]
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
    out = [(tiny_cnn(g), random_image(g, 2, 12), "relu1"), (tiny_cnn(g), random_image(g, 1, 10), "conv2")]
    if more:
        out.append((tiny_cnn(g), random_image(g, 3, 9, 13), "features"))
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
    out = [
        (randn64(g, 12, 6), randint_between(g, 0, 11), 3),
        (randn64(g, 20, 4, 2, 2), randint_between(g, 0, 19), 5),
    ]
    if more:
        out.append((randn64(g, 30, 16), 29, 10))
    return out


register(
    Task(
        "nearest",
        cases=_nearest_cases,
        reference=lambda f, q, k: Fe.nearest_neighbors(f, q, k).indices[0],
        blocked=("introspect_lab.features.nearest_neighbors",),
        hint=(
            "Flatten each item, take Euclidean distances to item q, leave q itself out, keep the k smallest."
        ),
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
                (randn64(g, 15, 5) * torch.tensor([5.0, 3, 2, 1, 0.5], dtype=torch.float64) + 4, 2),
                (randn64(g, 25, 8) * torch.linspace(6, 1, 8, dtype=torch.float64), 3),
            ]
            + (
                [
                    (
                        randn64(g, 40, 3, 2, 2)
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
        hint=(
            "Centre the features (subtract the mean over items) before the SVD; "
            "project on the top n directions."
        ),
    )
)


def _top_images_cases(g, more):
    out = [
        (randn64(g, 10, 4, 5, 5), randint_between(g, 0, 3), 3),
        (randn64(g, 16, 6, 3, 4), randint_between(g, 0, 5), 5),
    ]
    if more:
        out.append((randn64(g, 30, 2, 7, 7), 1, 30))
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
        hint=(
            "For each image take the channel's maximum over all positions, then the k largest, "
            "strongest first."
        ),
    )
)

# --- ex03: saliency, CAM, Grad-CAM --------------------------------------------------------------


def _saliency_cases(g, more):
    out = [
        (tiny_cnn(g), random_image(g, 1, 12), randint_between(g, 0, 9)),
        (tiny_cnn(g), random_image(g, 2, 10), randint_between(g, 0, 9)),
    ]
    if more:
        out.append((tiny_cnn(g), random_image(g, 3, 9, 14), 7))
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
        hint=(
            "Gradient of the class score (the logit, not the softmax) w.r.t. x, absolute value, "
            "max over dim 1."
        ),
    )
)


def _cam_cases(g, more):
    out = []
    for b, h in [(1, 12), (2, 10)] + ([(3, 15)] if more else []):
        model, x, c = tiny_cnn(g), random_image(g, b, h), randint_between(g, 0, 9)
        with H.capture(model, LAYER) as cap:
            cap.run(x)
        out.append((cap.activations[LAYER], model.fc.weight.detach().clone(), c, model, x))
    return out


register(
    Task(
        "cam",
        cases=_cam_cases,
        reference=lambda f, w, c, model, x: A.cam(model, x, c, raw=True, relu=False),
        arity=3,
        blocked=("introspect_lab.attribution.cam",),
        hint=(
            "M_c(h, w) = Σ_k w[c, k] · f[:, k, h, w]: weight each feature map by the class's row of "
            "fc.weight."
        ),
    )
)


def _grad_cam_cases(g, more):
    out = []
    for b, h in [(1, 12), (2, 10)] + ([(3, 15)] if more else []):
        model, x, c = tiny_cnn(g), random_image(g, b, h), randint_between(g, 0, 9)
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
        z = randn64(g, *s)
        z.view(-1)[: max(1, z.numel() // 10)] = 0.0  # some units exactly at the kink
        out.append((z, randn64(g, *s)))
    return out


def _relu_rule_reference(rule):
    def ref(z, grad_out):
        relu = nn.ReLU()
        zz = z.detach().clone().requires_grad_(True)
        with AB.modified_relus(relu, rule):  # the library's rule, on a lone ReLU
            y = relu(zz)
        (grad_in,) = torch.autograd.grad(y, zz, grad_out)
        return grad_in

    return ref


_RULES_BLOCKED = (
    "introspect_lab.attribution.guided_backprop",
    "introspect_lab.attribution.deconvnet",
    "introspect_lab.attribution.backprop._RuleReLU",
    "introspect_lab.attribution.backprop.modified_relus",
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
        reference=_relu_rule_reference("deconvnet"),
        blocked=_RULES_BLOCKED,
        hint="Deconvnet ignores the forward input z: it sends back max(y', 0).",
    )
)


def _spearman_cases(g, more):
    out = []
    for n in [30, 60] + ([200] if more else []):
        a = randn64(g, n)
        out.append((a, torch.exp(2 * a) + 0.5 * randn64(g, n).abs()))  # monotone but far from linear
    if more:
        a = randn64(g, 8, 8)
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
        hint=(
            "Rank each map (argsort of the argsort of the flattened values), "
            "then take the Pearson correlation of the ranks."
        ),
    )
)
