"""Story of notebook 12: a fine-tuned network's last layers tell seen classes from unseen ones.

The paper's protocol (seed 000, §3.2) on the offline stand-in, small: fine-tune the bundled
model on three digit classes (S1), train the FC detector on S1 vs three other digits (S2), and
test it on S1 vs the remaining three (S3), whose images it has never seen. Measured on this
set-up (three partitions, 48 px, 30 images per class): test AUROC of layers 6–9 per partition
≈ [0.98 0.94 0.87 0.85], [0.74 0.81 0.78 0.86], [0.95 0.93 0.75 0.66]; averaged over the
partitions ≈ 0.89, 0.89, 0.80, 0.79. Chance is 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from introspect_lab.experiments import novelty as nv


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROSPECT_LAB_DATA", str(tmp_path))


def test_last_layers_detect_unseen_classes_well_above_chance(lite0, unchanged):
    check = unchanged(lite0)
    data = nv.digits_data(48, per_class=30)
    names = nv.stages(lite0)[6:]
    aurocs = []
    for seed in range(3):
        p = nv.partition(data.labels, data.split, seed)
        net = nv.fine_tune(lite0, data, p.finetune, head_epochs=3, full_epochs=1, seed=seed)
        tr = nv.layer_embeddings(net.backbone, data.batch(lite0, p.train), names)
        te = nv.layer_embeddings(net.backbone, data.batch(lite0, p.test), names)
        row = []
        for n in names:
            det = nv.train_detector("fc", tr[n], p.train_unseen, epochs=8, batch_size=32, seed=seed)
            row.append(nv.auroc(p.test_unseen, nv.detector_scores(det, te[n])))
        aurocs.append(row)
    per_layer = np.mean(aurocs, axis=0)
    assert (per_layer > 0.65).all(), per_layer
    assert per_layer.mean() > 0.75, per_layer
    check()
