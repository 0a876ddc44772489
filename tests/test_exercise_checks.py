"""Every self-check passes a correct answer, and fails a wrong one, a blank one and a borrowed one with a
useful message.
"""

from __future__ import annotations

import sys

import pytest
import torch

from introspect_lab import attribution, capture
from introspect_lab.exercises import TASKS, check, rel_error
from introspect_lab.exercises.checks import disabled
from introspect_lab.synthesis import objectives, priors

# --- correct answers, written as a student would ------------------------------------------------


def normalize(img01):
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=img01.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=img01.dtype).view(1, 3, 1, 1)
    return (img01 - mean) / std


def filter_tiles(weight):
    flat = weight.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1, 1)
    span = hi - lo
    tiles = torch.where(span > 0, (weight - lo) / span.clamp_min(1e-12), torch.full_like(weight, 0.5))
    return tiles.permute(0, 2, 3, 1)


def activation(model, x, layer):
    stored = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: stored.update(out=o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return stored["out"]


def nearest(features, q, k):
    f = features.flatten(1)
    d = (f - f[q]).pow(2).sum(1).sqrt()
    d[q] = float("inf")
    return d.argsort()[:k]


def pca(features, n):
    f = features.flatten(1)
    f = f - f.mean(0)
    _, _, vh = torch.linalg.svd(f, full_matrices=False)
    return f @ vh[:n].T


def top_images(acts, channel, k):
    return acts[:, channel].flatten(1).amax(1).argsort(descending=True)[:k]


def saliency(model, x, c):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, c].sum(), x)
    return grad.abs().amax(dim=1)


def cam(features, fc_weight, c):
    return (fc_weight[c].view(1, -1, 1, 1) * features).sum(1)


def grad_cam(acts, grads):
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    return (alpha * acts).sum(1).clamp(min=0)


def guided_relu(z, grad_out):
    return grad_out.clamp(min=0) * (z > 0)


def deconv_relu(z, grad_out):
    return grad_out.clamp(min=0)


def spearman(a, b):
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return (ra * rb).sum() / (ra.norm() * rb.norm())


def class_objective(logits, image, c, lam):
    return logits[:, c].sum() - lam * image.pow(2).sum()


def ascent_step(image, grad, lr):
    norm = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return image + lr * grad / norm


def channel_objective(act, k):
    return act[:, k].flatten(1).mean(1).sum()


def dream_objective(act):
    return act.pow(2).sum()


def dream_step(image, grad, lr):
    return image + lr * grad / grad.abs().flatten(1).mean(1).view(-1, 1, 1, 1)


def octave_sizes(h, w, octaves, scale):
    return [(max(16, round(h / scale**k)), max(16, round(w / scale**k))) for k in reversed(range(octaves))]


def total_variation(x, beta):
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx**2 + dy**2 + (1e-8 if beta < 2 else 0)).pow(beta / 2).sum()


def feature_loss(phi, phi0):
    num = (phi - phi0).pow(2).flatten(1).sum(1)
    return (num / phi0.pow(2).flatten(1).sum(1)).sum()


def alpha_norm(x, alpha):
    return x.abs().pow(alpha).sum()


def gram(features):
    f = features.flatten(2)
    return f @ f.transpose(1, 2)


def gram_loss(features, target):
    n, m = features.shape[1], features.shape[2] * features.shape[3]
    return ((gram(features) - target).pow(2).sum((1, 2)) / (4 * n**2 * m**2)).sum()


def content_loss(features, target):
    return 0.5 * (features - target).pow(2).sum()


def fgsm_step(p, grad, eps):
    return (p + eps * grad.sign()).clamp(0, 1)


def project_linf(p, p0, eps):
    return torch.min(torch.max(p, p0 - eps), p0 + eps).clamp(0, 1)


def fooling_step(p, grad, lr):
    return (p + lr * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)


def cross_entropy(logits, y):
    log_p = logits - logits.logsumexp(1, keepdim=True)
    return -log_p[torch.arange(len(y)), y].mean()


def class_mean_probe(train_f, train_y, test_f, classes):
    means = torch.stack([train_f[train_y == k].mean(0) for k in range(classes)])
    return ((test_f[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)


def accuracy(logits, y):
    return (logits.argmax(1) == y).double().mean()


def ordinal_rank(logits, target):
    own = logits[torch.arange(len(target)), target]
    return 1 + (logits > own[:, None]).sum(1)


def top_k_accuracy(logits, target, k):
    return (ordinal_rank(logits, target) <= k).double().mean()


def auroc(y, scores):
    ranks = scores.argsort().argsort().double() + 1
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def msp_score(logits):
    return 1 - logits.softmax(1).amax(1)


def standardize(train, test):
    return (test - train.mean(0)) / train.std(0, unbiased=False)


def window_masks(h, w, k):
    masks = []
    for top in range(0, h - k + 1, k):
        for left in range(0, w - k + 1, k):
            m = torch.zeros(1, h, w)
            m[0, top : top + k, left : left + k] = 1
            masks.append(m)
    return torch.stack(masks)


def relu_code(act):
    return (act > 0).float()


def mean_cosine(desc):
    f = torch.nn.functional.normalize(desc.flatten(1), dim=1)
    sim = f @ f.T
    n = len(f)
    return (sim.sum() - sim.trace()) / (n * (n - 1))


def instance_norm(x):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (x - mean) / (var + 1e-5).sqrt()


def conditional_instance_norm(x, gammas, betas, weights):
    gamma, beta = weights @ gammas, weights @ betas
    return gamma[:, :, None, None] * instance_norm(x) + beta[:, :, None, None]


CORRECT = {name: getattr(sys.modules[__name__], name) for name in TASKS}

# --- a typical mistake for each ----------------------------------------------------------------
WRONG = {
    "normalize": lambda img01: img01 - 0.45,
    "filter_tiles": lambda w: (w - w.min()) / (w.max() - w.min()),  # one scale for all filters
    "activation": lambda model, x, layer: model(x),  # the logits, not the layer
    "nearest": lambda f, q, k: (
        (f.flatten(1) - f[q].flatten()).norm(dim=1).argsort()[:k]
    ),  # q is its own neighbour
    "pca": lambda f, n: (
        f.flatten(1) @ torch.linalg.svd(f.flatten(1), full_matrices=False)[2][:n].T
    ),  # not centred
    "top_images": lambda acts, c, k: (
        acts[:, c].flatten(1).mean(1).argsort(descending=True)[:k]
    ),  # mean, not max
    "saliency": lambda model, x, c: saliency(model, x, c) ** 0.5,
    "cam": lambda f, w, c: (w[c].view(1, -1, 1, 1) * f).mean(1),  # mean instead of sum
    "grad_cam": lambda a, g: (g.mean((2, 3), keepdim=True) * a).sum(1),  # no ReLU
    "guided_relu": lambda z, go: go * (z > 0),  # that is the plain gradient
    "deconv_relu": lambda z, go: go.clamp(min=0) * (z > 0),  # that is guided backprop
    "spearman": lambda a, b: torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1],  # Pearson
    "class_objective": lambda logits, image, c, lam: logits.softmax(1)[:, c].sum() - lam * image.pow(2).sum(),
    "ascent_step": lambda image, grad, lr: image + lr * grad / grad.norm(),  # whole-batch norm
    "channel_objective": lambda act, k: act[:, k].sum(),
    "dream_objective": lambda act: act.abs().sum(),
    "dream_step": lambda image, grad, lr: image + lr * grad / grad.norm(),
    "octave_sizes": lambda h, w, n, s: [
        (round(h / s**k), round(w / s**k)) for k in range(n)
    ],  # largest first
    "total_variation": lambda x, beta: (
        (x[..., :, 1:] - x[..., :, :-1]).abs().pow(beta)
    ).sum(),  # one direction
    "feature_loss": lambda phi, phi0: (phi - phi0).pow(2).sum(),  # not normalised
    "alpha_norm": lambda x, alpha: x.pow(alpha).sum(),  # no absolute value
    "gram": lambda f: f.flatten(2).transpose(1, 2) @ f.flatten(2),  # positions × positions
    "gram_loss": lambda f, t: (gram(f) - t).pow(2).sum() / (4 * f.shape[1] ** 2),  # M missing
    "content_loss": lambda f, p: (f - p).pow(2).sum(),  # ½ missing
    "fgsm_step": lambda p, g, eps: (p + eps * g).clamp(0, 1),  # the gradient, not its sign
    "project_linf": lambda p, p0, eps: p.clamp(0, 1),  # no ε-ball
    "fooling_step": lambda p, g, lr: (p + lr * g / g.norm()).clamp(0, 1),  # whole-batch norm
    "cross_entropy": lambda s, y: -s.softmax(1)[torch.arange(len(y)), y].log().sum(),  # sum, not mean
    "class_mean_probe": lambda f, y, q, c: torch.cdist(q, f).argmin(1) % c,  # nearest item's index, not class
    "accuracy": lambda s, y: (s.argmax(1) == y).sum(),  # a count
    "ordinal_rank": lambda s, t: (s > s[torch.arange(len(t)), t][:, None]).sum(1),  # 0-based
    "top_k_accuracy": lambda s, t, k: (s.topk(k, 1).indices[:, 0] == t).double().mean(),  # top-1 always
    "auroc": lambda y, sc: ((sc > 0) == (y == 1)).double().mean(),  # accuracy at 0
    "msp_score": lambda s: s.softmax(1).amax(1),  # confidence, not novelty
    "standardize": lambda train, test: (test - test.mean(0)) / test.std(0),  # test statistics
    "window_masks": lambda h, w, k: torch.ones(1, 1, h, w),
    "relu_code": lambda a: torch.relu(a),  # the activations, not the code
    "mean_cosine": lambda d: (d.flatten(1) @ d.flatten(1).T).mean(),  # not normalised, diagonal in
    "instance_norm": lambda x: (
        (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    ),  # batch norm
    "conditional_instance_norm": lambda x, g, b, w: (
        g[0][:, None, None] * instance_norm(x) + b[0][:, None, None]
    ),
}


def test_every_task_has_a_correct_and_a_wrong_answer_here():
    assert set(CORRECT) == set(TASKS) == set(WRONG)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_correct_answer_passes_every_case(name, capsys):
    assert check(name, CORRECT[name], more=True)
    out = capsys.readouterr().out
    assert out.startswith(f"✓ {name}: relative error") and "fresh inputs" in out


@pytest.mark.parametrize("name", sorted(TASKS))
def test_wrong_answer_fails_with_its_error_size(name, capsys):
    assert not check(name, WRONG[name], more=True)
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {name}:"), out
    assert "relative error" in out or "Shapes differ" in out or "NaN" in out, out
    if "Shapes differ" not in out:
        assert TASKS[name].hint in out
        assert "must be below 1e-03" in out or "NaN" in out


@pytest.mark.parametrize("name", sorted(TASKS))
def test_blank_answer_raises_not_implemented(name):
    def blank(*args):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check(name, blank)


BORROWED = {
    "normalize": lambda img01: __import__("introspect_lab").normalize(img01),
    "saliency": lambda model, x, c: attribution.saliency(model, x, c),
    "activation": lambda model, x, layer: _capture_activation(model, x, layer),
    "grad_cam": lambda a, g: attribution.grad_cam(None, a, layer="features"),
    "gram": lambda f: objectives.gram(f),
    "spearman": lambda a, b: torch.tensor(attribution.spearman(a, b)),
    "total_variation": lambda x, beta: priors.total_variation(x, beta),
}


def _capture_activation(model, x, layer):
    with capture(model, layer) as cap:  # the name imported into this module's globals
        cap.run(x)
    return cap.activations[layer]


@pytest.mark.parametrize("name", sorted(BORROWED))
def test_calling_the_library_instead_does_not_pass(name, capsys):
    assert not check(name, BORROWED[name])
    out = capsys.readouterr().out
    assert "switched off while `check` runs" in out, out


def test_library_functions_are_restored_after_a_check():
    before = objectives.gram
    with disabled(["introspect_lab.synthesis.objectives.gram"]):
        with pytest.raises(Exception, match="switched off"):
            objectives.gram(torch.zeros(1, 1, 1, 1))
    assert objectives.gram is before
    check("gram", WRONG["gram"])
    assert objectives.gram is before and capture.__module__ == "introspect_lab.hooks"


def test_a_hook_left_behind_fails():
    def leaky(model, x, layer):
        stored = {}
        model.get_submodule(layer).register_forward_hook(lambda m, i, o: stored.update(out=o))
        model(x)
        return stored["out"]

    assert not check("activation", leaky)


def test_gradients_left_in_the_model_fail(capsys):
    def with_backward(model, x, c):
        x = x.detach().clone().requires_grad_(True)
        model(x)[:, c].sum().backward()
        return x.grad.abs().amax(1)

    assert not check("saliency", with_backward)
    assert ".grad" in capsys.readouterr().out


def test_inputs_are_fresh_on_every_call():
    seen = []
    check("gram", lambda f: seen.append(f.clone()) or gram(f), verbose=False)
    check("gram", lambda f: seen.append(f.clone()) or gram(f), verbose=False)
    assert not torch.equal(seen[0], seen[2])


def test_check_wants_the_function_not_its_result():
    with pytest.raises(TypeError, match="your function itself"):
        check("gram", torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="Unknown exercise"):
        check("grams", gram)


def test_none_and_shape_messages(capsys):
    assert not check("gram", lambda f: None)
    assert not check("gram", lambda f: gram(f)[:, :1])
    out = capsys.readouterr().out
    assert "forget `return`" in out and "Shapes differ" in out


def test_rel_error():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert rel_error(x, x) == 0
    assert rel_error(torch.tensor([1.0]), torch.tensor([3.0])) == 0.5
