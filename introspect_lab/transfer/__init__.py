"""Transfer learning: feature extraction, fine-tuning, per-layer linear probes, offline tasks.

Seed 001 (HKUST, "Transfer Learning: Feature Extraction and Fine Tuning") and
seed 003 (Landwehr, "Existing model as feature extractor", "Fine tuning
pre-trained model", "Pretraining on artificial data"):

* **feature extraction** freezes the pretrained network and trains only a new
  linear head on its features (:func:`feature_extraction`). The frozen part
  runs in eval mode, so BatchNorm uses its stored ImageNet statistics;
* **fine-tuning** starts from that head and also retrains the last block(s) or
  everything (:func:`fine_tune`). By default (``bn="frozen"``) BatchNorm keeps
  its stored ImageNet statistics in the retrained blocks too (only its scale
  and shift learn): with a few dozen labelled images, statistics re-estimated
  from mini-batches are noisy. ``bn="train"`` re-estimates them on the new
  data; the frozen blocks always keep theirs;
* **linear probes** on each stage (:func:`layer_probes`) show which depth
  transfers best, the "linear classifier from different stages" of the 2×2
  table in seed 001.

Offline tasks that ship: scikit-learn's digits upsampled (:func:`digits`, far
from ImageNet), scikit-image's ``lfw_subset`` faces vs non-faces (:func:`faces`),
tiles of the bundled photos (:func:`photo_tiles`, close to ImageNet), and
rendered shapes (:func:`synthetic_shapes`) for pretraining on artificial data.
The pretrained model passed in is never changed: training happens on a copy.
"""

from __future__ import annotations

from .finetune import (
    Probes,
    TransferModel,
    examples_per_class,
    feature_extraction,
    fine_tune,
    layer_probes,
    linear_probe,
    pretrained_vs_scratch,
    stage_layers,
)
from .plots import plot_layer_probes, plot_learning_curves
from .tasks import SHAPES, Task, digits, faces, per_class_split, photo_tiles, synthetic_shapes, val_test_split
from .training import History, accuracy, correct, small_cnn, train

__all__ = [
    "Task",
    "digits",
    "faces",
    "photo_tiles",
    "synthetic_shapes",
    "SHAPES",
    "per_class_split",
    "val_test_split",
    "small_cnn",
    "History",
    "train",
    "correct",
    "accuracy",
    "Probes",
    "TransferModel",
    "feature_extraction",
    "fine_tune",
    "stage_layers",
    "layer_probes",
    "linear_probe",
    "examples_per_class",
    "pretrained_vs_scratch",
    "plot_learning_curves",
    "plot_layer_probes",
]
