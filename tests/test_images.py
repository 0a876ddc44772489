"""load_image handles every common file format and refuses what it cannot read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from introspect_lab import images
from introspect_lab.images import denormalize, load_image, sample_image, sample_names, to_display, to_rgb
from introspect_lab.models import UnknownNameError


def _gradient(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(
        np.uint8
    )


def _check(x, size=32):
    assert x.shape == (1, 3, size, size)
    assert x.dtype == torch.float32
    img = denormalize(x)
    assert img.min() >= -1e-5 and img.max() <= 1 + 1e-5


def test_rgb_png(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(_gradient()).save(path)
    x = load_image(path, size=32)
    _check(x)
    back = to_display(x)
    ref = np.asarray(Image.fromarray(_gradient()).resize((43, 32), Image.BICUBIC))[:, 5:37] / 255
    assert np.abs(back - ref).mean() < 0.02


def test_grayscale(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(_gradient()[..., 0]).convert("L").save(path)
    x = load_image(str(path), size=32)
    _check(x)
    img = denormalize(x)[0]
    torch.testing.assert_close(img[0], img[1], atol=1e-5, rtol=0)


def test_rgba_composited_on_white(tmp_path):
    arr = np.zeros((40, 40, 4), np.uint8)
    arr[..., 0] = 255
    arr[:, :20, 3] = 255  # left half opaque red, right half transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    rgb = np.asarray(to_rgb(Image.open(path)))
    assert tuple(rgb[5, 5]) == (255, 0, 0)
    assert tuple(rgb[5, 35]) == (255, 255, 255)
    _check(load_image(path, size=32))


def test_palette(tmp_path):
    path = tmp_path / "pal.gif"
    Image.fromarray(_gradient()).convert("P").save(path)
    assert Image.open(path).mode == "P"
    _check(load_image(path, size=32))


def test_16bit_is_rescaled_not_saturated(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(to_rgb(Image.open(path)))
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert 100 < rgb[0, 32, 0] < 160  # mid-grey, not clipped to white
    _check(load_image(path, size=32))
    # the same from a numpy array
    _check(load_image(ramp, size=32))


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    x = load_image(path, size=32)
    _check(x)


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # white band on the left of a landscape image
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    shown = np.asarray(to_rgb(Image.open(path)))
    assert shown.shape[:2] == (40, 20)  # portrait after rotation
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # band now on top
    x = load_image(path, size=(40, 20), crop=False)
    assert x.shape == (1, 3, 40, 20)


def test_numpy_inputs():
    _check(load_image(_gradient(), size=32))
    _check(load_image(_gradient() / 255.0, size=32))
    _check(load_image(_gradient()[..., 0], size=32))
    _check(load_image(np.moveaxis(_gradient(), -1, 0), size=32))  # CHW
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(_gradient() * 1.0, size=32)
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((8, 8, 7)), size=32)


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="sample_image"):
        load_image("chelsea")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not an image file"):
        load_image(path)
    with pytest.raises(IsADirectoryError):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="already a model input"):
        load_image(torch.zeros(1, 3, 8, 8))


def test_samples_all_load():
    for name in sample_names():
        img = sample_image(name)
        assert img.mode == "RGB" and min(img.size) >= 256, name
        assert img.info["source"]
    with pytest.raises(UnknownNameError, match="chelsea"):
        sample_image("chelsae")


def test_model_statistics_are_used(lite0):
    x = load_image(sample_image("coffee"), lite0, size=64)
    assert x.shape == (1, 3, 64, 64)
    assert -2.2 < float(x.min()) and float(x.max()) < 2.7


def test_show_returns_figure(chelsea):
    import matplotlib

    matplotlib.use("Agg")
    fig = images.show([chelsea[0], sample_image("coffee")], titles=["cat", "coffee"])
    assert len(fig.axes) == 2
