"""Every registry model is first-class: every public entry point runs on each one.

Each model is built at random weights (``load_model(name, pretrained=False)``:
offline, no download) and driven at 64 px with a few steps, using that
model's registry settings (``models.settings``) for every layer name. Results
must be finite and correctly shaped, and the model must be left exactly as it
was. The trained-weights behaviour is tested elsewhere, on the bundled model;
here the point is that no architecture breaks a method.

One test class per model, so that ``--dist loadscope`` spreads the models over
the workers and each model is built once.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from introspect_lab import attribution as A
from introspect_lab import features as F
from introspect_lab import load_image, models, sample_image
from introspect_lab.datasets import ImagePool
from introspect_lab.settings import layer_fields
from introspect_lab.synthesis import deepdream, invert, visualize_channel, visualize_class
from introspect_lab.texture.gatys import style_transfer, texture_synthesis

SIZE = 64
STEPS = 2
# Global average pooling then one linear (or conv) classifier, the structure CAM needs (Zhou et al. 2016).
CAM_MODELS = {"efficientnet_lite0", "squeezenet1_1", "resnet18"}


def _finite(t: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(t.shape) == shape, f"shape {tuple(t.shape)}, expected {shape}"
    assert torch.isfinite(t).all(), "non-finite values"


@pytest.fixture(scope="class")
def model(request):
    torch.manual_seed(0)
    return models.load_model(request.cls.name, pretrained=False, verbose=False)


@pytest.fixture(scope="class")
def x(model):
    return torch.cat([load_image(sample_image(p), model, size=SIZE) for p in ("chelsea", "coffee")])


@pytest.fixture(scope="class")
def s(model):
    return models.model_settings(model)


class _EveryEntryPoint:
    name: str

    # --- models -----------------------------------------------------------------------------------

    def test_registry_layers_exist(self, model, s):
        names = set(models.layer_names(model))
        for field, layers in layer_fields(s).items():
            missing = [layer for layer in layers if layer not in names]
            assert not missing, f"{self.name}: settings.{field} names unknown layers {missing}"
        assert A.cam_layer(model) == s.cam_layer

    def test_predict_and_layer_table(self, model, x, unchanged):
        check = unchanged(model)
        preds = models.predict(model, x, k=3)
        assert len(preds) == 2 and all(len(p) == 3 for p in preds)
        for p in preds:
            assert all(np.isfinite(q.prob) and 0 <= q.prob <= 1 for q in p)
            assert p[0].prob >= p[1].prob >= p[2].prob
        table = models.list_layers(model, input_size=SIZE, depth=1)
        assert table.names() and all(r.params >= 0 for r in table)
        check()

    # --- attribution ------------------------------------------------------------------------------

    def test_gradient_methods(self, model, x, s, unchanged):
        check = unchanged(model)
        px, maps = (2, 3, SIZE, SIZE), (2, SIZE, SIZE)
        _finite(A.gradient(model, x, None), px)
        _finite(A.saliency(model, x, "tabby"), maps)
        _finite(A.smoothgrad(model, x, None, n_samples=2), maps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", A.IntegratedGradientsWarning)  # 4 steps do not converge
            ig, delta = A.integrated_gradients(model, x, None, n_steps=4, return_delta=True)
        _finite(ig, px)
        assert delta.shape == (2,) and torch.isfinite(delta).all()
        _finite(A.guided_backprop(model, x, None), px)
        _finite(A.deconvnet(model, x, None), px)
        for layer in s.neuron_layers:
            _finite(A.guided_backprop(model, x, layer=layer, neuron=0), px)
            _finite(A.saliency(model, x, layer=layer, neuron=0), maps)
        check()

    def test_cam_methods(self, model, x, s, unchanged):
        check = unchanged(model)
        maps = (2, SIZE, SIZE)
        if self.name in CAM_MODELS:
            _finite(A.cam(model, x, None), maps)
        else:  # fully connected classifier: CAM does not apply, and the error says what does
            with pytest.raises(ValueError, match="global average pooling.*grad_cam"):
                A.cam(model, x, None)
        for layer in dict.fromkeys((s.cam_layer, *s.grad_cam_layers)):
            _finite(A.grad_cam(model, x, None, layer=layer), maps)
        _finite(A.guided_grad_cam(model, x, None), (2, 3, SIZE, SIZE))
        _finite(A.occlusion(model, x, None, window=32, stride=32), maps)
        check()

    @pytest.mark.parametrize(("window", "stride"), [(24, 20), (11, 9)])  # neither divides 64
    def test_incremental_occlusion_is_the_plain_map(self, model, x, unchanged, window, stride):
        """Krypton's incremental inference (Nakandala et al. 2019) recomputes only the cone: same map."""
        check = unchanged(model)
        plain = A.occlusion(model, x[:1], 3, window=window, stride=stride, method="plain", raw=True)
        ours = A.occlusion(model, x[:1], 3, window=window, stride=stride, method="incremental", raw=True)
        check()
        assert float((ours - plain).abs().max()) <= 3e-4 * float(plain.abs().max())

    def test_evaluation(self, model, x, unchanged):
        check = unchanged(model)
        sal = A.saliency(model, x, None)
        curve = A.deletion_curve(model, x, None, sal, n_steps=3)
        assert np.isfinite(np.asarray(curve.auc)).all()
        sanity = A.sanity_check(model, x[:1], None, layers=A.cascade_layers(model)[:2])
        assert sanity.steps[0] == "trained" and len(sanity.steps) == 3
        for rho in sanity.correlation.values():
            assert rho.shape == (3, 1) and np.isfinite(rho).all()
        mask = A.saliency_to_mask(sal)
        assert mask.shape == sal.shape
        check()

    # --- features ---------------------------------------------------------------------------------

    def test_features(self, model, x, s, unchanged):
        check = unchanged(model)
        maps = F.activation_maps(model, x[:1], s.activation_layer)
        assert maps.dim() == 3 and torch.isfinite(maps).all()
        feats = F.extract_features(model, x, F.penultimate_layer(model), reduce="mean", progress=False)
        assert feats.shape[0] == 2 and feats.dim() == 2 and torch.isfinite(feats).all()
        for layer in s.feature_layers:
            rf = F.receptive_field(model, layer, SIZE)
            assert rf.size[0] >= 1 and rf.jump[0] >= 1
        name, conv = F.first_conv(model)
        assert conv.in_channels == 3 and F.conv_weights(model, name).shape == conv.weight.shape
        check()

    def test_patches(self, model, x, s, unchanged):
        check = unchanged(model)
        img = (x * 0.25 + 0.5).clamp(0, 1)
        uint8 = (torch.cat([img, img.flip(-1)]) * 255).round().to(torch.uint8)
        pool = ImagePool("tiny", uint8, np.array([0, 1, 0, 1]), ["cat", "coffee"], ["a", "b", "c", "d"])
        patches = F.top_patches(model, pool, s.patch_layer, [0, 1], k=2, progress=False)
        assert set(patches) == {0, 1}
        for plist in patches.values():
            assert len(plist) == 2 and all(np.isfinite(p.value) for p in plist)
        check()

    # --- synthesis and style ----------------------------------------------------------------------

    def test_synthesis(self, model, x, s, unchanged):
        check = unchanged(model)
        one = (1, 3, SIZE, SIZE)
        _finite(visualize_class(model, "tabby", size=SIZE, steps=STEPS, seed=0).image, one)
        res = visualize_channel(model, s.channel_layers[-1], [0, 1], size=SIZE, steps=STEPS, seed=0)
        _finite(res.image, (2, 3, SIZE, SIZE))
        _finite(deepdream(model, x[:1], octaves=1, steps=STEPS, seed=0).image, one)
        for layer in (s.inversion_layers[0], s.deep_layer):
            inv = invert(model, x[:1], layer, size=SIZE, steps=STEPS, seed=0)
            _finite(inv.image, one)
            assert np.isfinite(inv.extra["feature_error"])
        check()

    def test_style(self, model, x, s, unchanged):
        check = unchanged(model)
        one = (1, 3, SIZE, SIZE)
        tex = texture_synthesis(model, x[1:], size=SIZE, steps=STEPS, seed=0)
        _finite(tex.image, one)
        styled = style_transfer(model, x[:1], x[1:], size=SIZE, steps=STEPS, seed=0)
        _finite(styled.image, one)
        check()


for _name in models.MODELS:
    _cls = f"TestModel_{_name}"
    globals()[_cls] = type(
        _cls, (_EveryEntryPoint,), {"name": _name, "__doc__": f"Every entry point on {_name}."}
    )


def test_every_registry_model_is_covered():
    assert {f"TestModel_{n}" for n in models.MODELS} <= set(globals())
