"""Bad input gets a clear error that names the fix, and leaves nothing half-done behind."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from introspect_lab import datasets, models
from introspect_lab.cli import main
from introspect_lab.images import load_image
from introspect_lab.models import UnknownNameError, class_index, imagenet_categories

# --- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_truncated_image_names_the_file_and_the_fix(tmp_path, fmt):
    rng = np.random.default_rng(0)
    whole = tmp_path / f"whole.{fmt}"
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(whole)
    cut = tmp_path / f"cut.{fmt}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert load_image(whole, size=32).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="truncated or damaged") as err:
        load_image(cut, size=32)
    assert str(cut) in str(err.value) and "again" in str(err.value)


_PEAK = textwrap.dedent(
    """
    import resource, sys
    from introspect_lab.images import load_image
    load_image(sys.argv[2], size=224)  # imports and first-call costs
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = load_image(sys.argv[1], size=224)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert tuple(x.shape) == (1, 3, 224, 224)
    print((after - before) / 1024)
    """
)


def test_huge_jpeg_is_decoded_small(tmp_path):
    """An 8000×8000 JPEG decodes in draft mode (at 1/8 scale): ~0.5 GB less peak memory."""
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    make = (
        "import sys; from PIL import Image; g = Image.linear_gradient('L').resize((8000, 8000)); "
        "Image.merge('RGB', (g, g.transpose(Image.Transpose.ROTATE_90), g)).save(sys.argv[1]); "
        "Image.linear_gradient('L').convert('RGB').save(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", make, str(big), str(small)], check=True, timeout=120)
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(big), str(small)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    extra_mb = float(proc.stdout.split()[-1])
    assert extra_mb < 64, f"loading the 8000×8000 JPEG raised the peak RSS by {extra_mb:.0f} MB"


def test_draft_mode_matches_a_full_decode(tmp_path):
    """Draft decoding gives the same picture as a full decode, to within JPEG noise."""
    y, x = np.mgrid[0:1600, 0:2400]
    arr = np.stack([x % 256, y % 256, (x // 8 + y // 8) % 256], -1).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=95)
    drafted = load_image(path, size=96)
    full = load_image(Image.open(path), size=96)  # a PIL image is used as given: no draft
    assert (drafted - full).abs().mean() < 0.1


# --- class names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("tabyy cat", "tabby"),
        ("tabbby", "tabby"),
        ("tigr cat", "tiger cat"),
        ("egyptain cat", "Egyptian cat"),
        ("golden retreiver", "golden retriever"),
        ("persian", "Persian cat"),
    ],
)
def test_class_typo_suggests_the_class_first(typo, meant):
    with pytest.raises(UnknownNameError) as err:
        class_index(imagenet_categories(), typo)
    message = str(err.value)
    first = message.split("Did you mean ", 1)[1].split(" (")[0]
    assert first == repr(meant), message
    if typo == "tabyy cat":
        assert "lab coat" not in message


# --- cached weights -------------------------------------------------------------------------------


@pytest.fixture
def corrupt_squeezenet(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INTROSPECT_LAB_OFFLINE", "1")
    path = models.weights_path("squeezenet1_1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")
    assert (
        not hashlib.sha256(path.read_bytes())
        .hexdigest()
        .startswith(models.MODELS["squeezenet1_1"].sha256_prefix)
    )
    return path


def test_corrupt_weights_are_not_cached(corrupt_squeezenet):
    assert models.cache_status("squeezenet1_1") == "corrupt"
    assert not models.is_cached("squeezenet1_1")
    assert models.is_cached("squeezenet1_1", verify=False)  # the file is there
    assert models.cache_status("resnet18") == "missing"
    assert models.cache_status("efficientnet_lite0") == "bundled"


def test_info_reports_corrupt_weights(corrupt_squeezenet, capsys):
    assert main(["info"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "squeezenet1_1" in x)
    assert "CORRUPT" in line and str(corrupt_squeezenet) in line
    assert "introspect-lab fetch --models squeezenet1_1" in line


def test_fallback_says_corrupt_and_how_to_repair(corrupt_squeezenet, capsys):
    model = models.load_model("squeezenet1_1", fallback="efficientnet_lite0", verbose=False)
    out = capsys.readouterr().out
    assert models.model_info(model).name == "efficientnet_lite0"
    assert "corrupt" in out and "not cached" not in out
    assert str(corrupt_squeezenet) in out and "introspect-lab fetch --models squeezenet1_1" in out
    with pytest.raises(models.WeightsUnavailableError, match="corrupt"):
        models.load_model("squeezenet1_1")


# --- an unreachable mirror --------------------------------------------------------------------------


@pytest.fixture
def dead_mirror(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.delenv("INTROSPECT_LAB_OFFLINE", raising=False)
    monkeypatch.setenv("INTROSPECT_LAB_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path / "data"))
    return tmp_path


def test_unreachable_mirror_leaves_no_empty_folders(dead_mirror):
    with pytest.raises(models.WeightsUnavailableError, match="offline"):
        models.load_model("squeezenet1_1")
    assert not (dead_mirror / "torch").exists()
    # Datasets go through the same mirror.
    with pytest.raises(datasets.DownloadError, match="introspect-lab fetch --datasets imagenette"):
        datasets.fetch_dataset("imagenette")
    assert not (dead_mirror / "data").exists()
    assert not list(dead_mirror.rglob("*"))


def test_random_weights_model_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = models.load_model("squeezenet1_1", pretrained=False, verbose=False)
    assert torch.isfinite(model(torch.zeros(1, 3, 64, 64))).all()
    assert not list(tmp_path.rglob("*"))


# --- the refactored library: bad input and misuse ---------------------------------------------------


def test_predict_rejects_nan_input(lite0, chelsea):
    x = chelsea.clone()
    x[0, 1, 5, 7] = float("nan")
    with pytest.raises(ValueError, match=r"\bx\b.*(NaN|finite)") as err:
        models.predict(lite0, x)
    print(err.value)


def test_diverging_optimisation_warns(lite0):
    from introspect_lab.synthesis import DivergenceWarning, visualize_class

    with pytest.warns(DivergenceWarning, match="lr=10000.*10× smaller"):
        visualize_class(lite0, "tabby", size=64, steps=6, lr=1e4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        visualize_class(lite0, "tabby", size=64, steps=6, seed=0)  # the registry's lr: no warning


def test_stopped_capture_explains_itself_and_leaves_the_model_working(lite0, chelsea, unchanged):
    from introspect_lab.hooks import StopForward, capture

    check = unchanged(lite0)
    with capture(lite0, "blocks.2", stop=True) as cap:
        assert cap.run(chelsea) is None and "blocks.2" in cap.activations
        with pytest.raises(StopForward, match=r"cap\.run\(x\)"):
            lite0(chelsea)
    assert lite0(chelsea).shape == (1, 1000)  # after the block the model runs to the end
    check()


def test_lock_table_forgets_models():
    import gc

    from introspect_lab.synthesis import engine

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3))
    engine.model_lock(model)
    assert model in engine._LOCKS
    n = len(engine._LOCKS)
    del model
    gc.collect()
    assert len(engine._LOCKS) == n - 1
