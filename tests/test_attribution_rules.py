"""Hand-computed expected maps on tiny models: CAM, Grad-CAM, and the guided/deconvnet rules."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from introspect_lab import attribution as A
from introspect_lab.fastpath import ChannelsLast

# Hand-picked inputs are not normalised photos; the "not normalised" warning is tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:x holds")


def gap_model(relu_inplace: bool = False) -> nn.Sequential:
    """1×1 conv (f0 = R, f1 = G − B) → ReLU → global average pool → Linear with hand-set weights."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    fc = nn.Linear(2, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, -1.0]]).view(2, 3, 1, 1))
        fc.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0], [-1.0, 1.0]]))
        fc.bias.copy_(torch.tensor([0.5, 0.0, 0.0]))
    return nn.Sequential(
        OrderedDict(
            conv=conv,
            act=nn.ReLU(inplace=relu_inplace),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=fc,
        )
    ).eval()


# R, G, B planes of one 2×2 image
X = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]]).unsqueeze(0)
# f0 = R = [[1,2],[3,4]], f1 = ReLU(G − B) = [[0,1],[0,1]]
CAM = {
    0: torch.tensor([[1.0, 4.0], [3.0, 6.0]]),  # 1·f0 + 2·f1
    1: torch.tensor([[3.0, 5.0], [9.0, 11.0]]),  # 3·f0 − 1·f1
    2: torch.tensor([[-1.0, -1.0], [-3.0, -3.0]]),  # −1·f0 + 1·f1
}


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_cam_by_hand(cls, unchanged):
    model = gap_model()
    check = unchanged(model)
    got = A.cam(model, X, cls, raw=True, relu=False)  # the signed map (relu=True is the default)
    check()
    assert torch.allclose(got[0], CAM[cls])
    # CAM splits the class score over positions: mean(M_c) = S_c − b_c
    with torch.no_grad():
        score = model(X)[0, cls] - model.fc.bias[cls]
    assert torch.allclose(got[0].mean(), score)


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_grad_cam_by_hand(cls):
    model = gap_model()
    # α_k = w_{c,k} / (H·W) = w_{c,k} / 4, so Grad-CAM = ReLU(CAM / 4)
    got = A.grad_cam(model, X, cls, layer="act", raw=True)
    assert torch.allclose(got[0], (CAM[cls] / 4).clamp(min=0))
    signed = A.grad_cam(model, X, cls, layer="act", raw=True, relu=False)
    assert torch.allclose(signed[0], CAM[cls] / 4)


def test_cam_and_grad_cam_upsample_to_the_input():
    model = gap_model()
    x = torch.nn.functional.interpolate(X, size=(8, 8), mode="nearest")
    assert A.cam(model, x, 0).shape == (1, 8, 8)
    up = A.grad_cam(model, x, 0, layer="act", interpolate="nearest")
    # each input pixel became a 4×4 block; now H·W = 64, so α_k = w_{c,k} / 64
    assert torch.allclose(up[0, :4, :4], torch.full((4, 4), 1 / 64))
    assert torch.allclose(up[0, 4:, 4:], torch.full((4, 4), 6 / 64))


def mlp(act: nn.Module) -> nn.Sequential:
    """x [B,3,1,1] → identity Linear → act → Linear w2 = (2, −1, 3): S = Σ w2_j act(x_j)."""
    first, second = nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.eye(3))
        second.weight.copy_(torch.tensor([[2.0, -1.0, 3.0]]))
    return nn.Sequential(nn.Flatten(), first, act, second).eval()


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_rules_by_hand(inplace, unchanged):
    model = mlp(nn.ReLU(inplace=inplace))
    x = torch.tensor([-1.0, 2.0, 3.0]).view(1, 3, 1, 1)  # z = (−1, 2, 3)
    check = unchanged(model)
    grad = A.saliency(model, x, 0, reduce="none")  # |(0, −1, 3)|
    guided = A.guided_backprop(model, x, 0)
    deconv = A.deconvnet(model, x, 0)
    check()
    assert torch.equal(grad.flatten(), torch.tensor([0.0, 1.0, 3.0]))
    # guided: y' = w2, passed only where z > 0 and y' > 0
    assert torch.equal(guided.flatten(), torch.tensor([0.0, 0.0, 3.0]))
    # deconvnet: ReLU of y', whatever z
    assert torch.equal(deconv.flatten(), torch.tensor([2.0, 0.0, 3.0]))


def test_relu6_rules_by_hand():
    model = mlp(nn.ReLU6())
    x = torch.tensor([-1.0, 2.0, 7.0]).view(1, 3, 1, 1)  # z = (−1, 2, 7): the third unit is capped
    assert torch.equal(A.saliency(model, x, 0, reduce="none").flatten(), torch.tensor([0.0, 1.0, 0.0]))
    # guided ReLU6: y' passes where 0 < z < 6 and y' > 0
    assert torch.equal(A.guided_backprop(model, x, 0).flatten(), torch.tensor([0.0, 0.0, 0.0]))
    # deconvnet ReLU6: max(y', 0) where z < 6
    assert torch.equal(A.deconvnet(model, x, 0).flatten(), torch.tensor([2.0, 0.0, 0.0]))
    x = torch.tensor([1.0, 2.0, 5.0]).view(1, 3, 1, 1)
    assert torch.equal(A.guided_backprop(model, x, 0).flatten(), torch.tensor([2.0, 0.0, 3.0]))


def test_model_without_relu_modules_is_refused():
    model = mlp(nn.GELU())
    with pytest.raises(ValueError, match="nn.ReLU"):
        A.guided_backprop(model, torch.ones(1, 3, 1, 1), 0)


def test_occlusion_by_hand():
    """S = Σ_j w2_j ReLU(x_j) on a 1-pixel image: occluding the only window removes everything."""
    model = mlp(nn.ReLU())
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    got = A.occlusion(model, x, 0, window=1, stride=1, fuse=False)
    assert torch.allclose(got, torch.tensor([[[2.0 - 2.0 + 9.0]]]))  # S(x) − S(0)


def test_integrated_gradients_is_complete_on_a_linear_model():
    model = mlp(nn.Identity())
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    attr, delta = A.integrated_gradients(model, x, 0, n_steps=4, return_delta=True)
    assert torch.allclose(attr.flatten(), torch.tensor([2.0, -2.0, 9.0]))  # w ⊙ (x − 0)
    assert abs(float(delta)) < 1e-5


class TutorialNet(nn.Module):
    """A student's CNN in the style of PyTorch's tutorial: a ``view`` after the convolutions."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.features(x).view(len(x), -1))


def test_integrated_gradients_of_a_linear_cnn_with_batchnorm_and_view(unchanged):
    # IG runs its path through a copy with the BatchNorm folded, in channels-last batches; this
    # model cannot take those (its view raises), so IG must fall back to the ordinary layout.
    torch.manual_seed(0)
    model = TutorialNet()
    bn = model.features[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 2, 2)
    with pytest.raises(RuntimeError, match="view"):
        model(x.contiguous(memory_format=torch.channels_last))
    check = unchanged(model)
    attr, delta = A.integrated_gradients(model, x, 0, n_steps=4, return_delta=True)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg)[:, 0].sum(), xg)  # linear: one gradient along the whole path
    assert torch.allclose(attr, x * grad, atol=1e-6)  # IG of a linear model is x ⊙ ∇S (baseline 0)
    assert float(delta.abs().max()) < 1e-5
    check()


def test_channels_last_falls_back_to_the_ordinary_layout_and_raises_a_genuine_error():
    seen = []

    def broken(x):
        seen.append(x.is_contiguous())  # False for a channels-last batch of 3 channels
        raise RuntimeError("a genuine error")

    run = ChannelsLast(broken)
    with pytest.raises(RuntimeError, match="genuine"):
        run(torch.zeros(1, 3, 2, 2))
    assert seen == [False, True] and not run.enabled  # tried once in channels-last, then as it is
    assert ChannelsLast(lambda x: x.is_contiguous(memory_format=torch.channels_last))(torch.zeros(1, 3, 2, 2))
    assert not ChannelsLast(broken).takes(torch.zeros(1, 3, 2, 2, device="meta"))  # CPU batches only
    assert not ChannelsLast(broken).takes(torch.zeros(3, 2, 2))  # and batches [B, C, H, W] only


def test_spearman_by_hand():
    assert A.spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert A.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: ranks (1.5, 1.5, 3) vs (1, 2, 3) → ρ = √3/2
    assert A.spearman([0, 0, 1], [1, 2, 3]) == pytest.approx(3**0.5 / 2)
    assert A.spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_saliency_to_mask_fills_holes_and_keeps_the_largest_region():
    m = torch.zeros(1, 20, 20)
    m[0, 4:12, 4:12] = 1.0
    m[0, 7:9, 7:9] = 0.0  # a hole
    m[0, 16:18, 16:18] = 1.0  # a small second region
    mask = A.saliency_to_mask(m, threshold=0.5, sigma=0)
    expected = torch.zeros(1, 20, 20, dtype=torch.bool)
    expected[0, 4:12, 4:12] = True
    assert torch.equal(mask, expected)
    both = A.saliency_to_mask(m, threshold=0.5, sigma=0, largest=False, fill_holes=False)
    assert int(both.sum()) == 64 - 4 + 4
