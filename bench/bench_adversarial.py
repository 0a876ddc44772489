"""Benchmark for notebooks 09–10: attack and training speed, and the notebooks' wall time and peak RSS.

    python bench/bench_adversarial.py               # speed only
    python bench/bench_adversarial.py --notebooks   # also run notebooks 09 and 10 at default settings

Times one FGSM step, a 10-step PGD attack and a 100-step fooling budget on the bundled
EfficientNet-Lite0 (one 224 px photo), and one epoch of standard and of adversarial
training of the small digits network (16 px). The notebook numbers come from
``bench/notebooks.py``. Results are printed and written to ``bench/results/adversarial.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "adversarial.json"
NOTEBOOKS = ["notebooks/09_adversarial_examples.ipynb", "notebooks/10_transfer_learning.ipynb"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")
    from introspect_lab import adversarial as A
    from introspect_lab import load_image, load_model, sample_image
    from introspect_lab.transfer import digits, small_cnn

    torch.manual_seed(0)
    model = load_model(verbose=False)
    x = load_image(sample_image("chelsea"), model)
    task = digits(16)
    rows = {
        "fgsm_224px_s": timed(lambda: A.fgsm(model, x, None, eps=1 / 255)),
        "pgd10_224px_s": timed(lambda: A.pgd(model, x, None, eps=1 / 255, steps=10)),
        "fool_to_koala_224px_s": timed(lambda: A.fool(model, x, "koala", max_steps=100)),
    }
    for eps in (0.0, 0.1):
        net = small_cnn(task.classes, size=16)
        key = "adversarial" if eps else "standard"
        rows[f"{key}_training_epoch_digits16_s"] = timed(
            lambda net=net, eps=eps: A.adversarial_training(
                net, task.batch(net), task.labels, eps=eps, epochs=1
            )
        )
    for k, v in rows.items():
        print(f"{k:<40} {v:7.2f} s")
    result = {
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "seconds": {k: round(v, 3) for k, v in rows.items()},
    }
    if "--notebooks" in argv:
        subprocess.run([sys.executable, str(HERE / "notebooks.py"), *NOTEBOOKS], check=False)
    nb_file = HERE / "results" / "notebooks.json"
    if nb_file.exists():
        runs = json.loads(nb_file.read_text())
        result["notebooks"] = {Path(p).name: runs.get(Path(p).name) for p in NOTEBOOKS}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
