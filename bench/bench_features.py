"""Benchmark for notebooks 01–02: feature-extraction throughput, and the notebooks' wall time and peak RSS.

    python bench/bench_features.py               # throughput only
    python bench/bench_features.py --notebooks   # also run notebooks 01 and 02 at default settings

Throughput is images per second of :func:`introspect_lab.features.extract_features` on the
bundled EfficientNet-Lite0 (penultimate layer, and a middle layer where the forward pass
stops early), for a few batch sizes and input sizes. The notebook numbers come from
``bench/notebooks.py`` (a fresh kernel each, not fast mode). Results are printed and
written to ``bench/results/features.json``.
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
RESULTS = HERE / "results" / "features.json"
NOTEBOOKS = ["notebooks/01_filters_and_activations.ipynb", "notebooks/02_feature_space.ipynb"]


def throughput(model, layer: str, size: int, batch_size: int, n: int = 64, repeats: int = 2) -> float:
    from introspect_lab.features import extract_features

    x = torch.randn(n, 3, size, size)
    extract_features(model, x[:batch_size], layer, batch_size=batch_size, progress=False)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        extract_features(model, x, layer, batch_size=batch_size, progress=False)
        best = min(best, time.perf_counter() - start)
    return n / best


def main(argv: list[str]) -> int:
    os.environ.setdefault("INTROSPECT_LAB_PROGRESS", "0")
    from introspect_lab import load_model

    torch.manual_seed(0)
    model = load_model(verbose=False)
    rows = []
    for layer, size, batch in [
        ("flatten", 224, 1),
        ("flatten", 224, 16),
        ("flatten", 224, 32),
        ("flatten", 128, 16),
        ("blocks.4", 128, 16),
    ]:
        ips = throughput(model, layer, size, batch, n=32 if size == 224 else 64)
        rows.append({"layer": layer, "size": size, "batch_size": batch, "images_per_s": round(ips, 1)})
        print(f"extract_features {layer:<9} {size} px  batch {batch:>2}: {ips:7.1f} images/s")
    result = {
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "throughput": rows,
    }
    if "--notebooks" in argv:
        subprocess.run([sys.executable, str(HERE / "notebooks.py"), *NOTEBOOKS], check=False)
    nb_file = HERE / "results" / "notebooks.json"
    if nb_file.exists():
        runs = json.loads(nb_file.read_text())
        result["notebooks"] = {Path(p).name: runs.get(Path(p).name) for p in NOTEBOOKS}
        for name, r in result["notebooks"].items():
            if r:
                print(f"{name:<40} {r['wall_s']:>7.1f} s  {r['peak_rss_mb']:>6} MB peak RSS  ok={r['ok']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
