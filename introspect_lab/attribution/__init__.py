"""Which pixels matter? Attribution maps with one call shape: ``method(model, x, target, **options)``.

* ``x`` is a normalised batch ``[B, 3, H, W]`` (as :func:`~introspect_lab.load_image`
  gives), checked by :func:`introspect_lab.images.check_batch` (NaN/inf are rejected);
* ``target`` is a class index, a class name (``"tabby"``), a per-image list of
  either, or ``None`` for each image's top-1 class (resolved by
  :func:`introspect_lab.models.class_indices`).

**The output-shape rule.** A method returns the shape of what it scores:

* ``[B, 3, H, W]`` when it scores each *input value* (a colour channel of a
  pixel): :func:`gradient`, :func:`integrated_gradients`,
  :func:`guided_backprop`, :func:`deconvnet`, :func:`guided_grad_cam`;
* ``[B, H, W]`` when it scores each *pixel*: :func:`saliency`,
  :func:`occlusion`, :func:`cam`, :func:`grad_cam` (upsampled to the input
  size; ``raw=True`` gives the map at its own resolution).

Every gradient method takes ``reduce=``: ``"none"`` keeps ``[B,3,H,W]``,
``"max"`` (``max_c |a_c|``, lecture 003) or ``"mean"`` give ``[B,H,W]``;
each method's default follows the rule above (saliency is defined with
``"max"``). :func:`to_map` applies ``"max"`` to any result. :func:`smoothgrad`
wraps any method and returns that method's shape.

**Options that mean the same everywhere.** ``layer=`` names the layer whose
output the method reads (Grad-CAM's feature map; with ``neuron=``, the
layer of the neuron explained instead of a class score). ``relu=True`` is the
default of both :func:`cam` and :func:`grad_cam`. ``seed=None`` means fresh
randomness; an int repeats a result (:func:`smoothgrad` defaults to ``seed=0``).
:func:`integrated_gradients` returns a pair ``(attributions, δ)`` only with
``return_delta=True``.

Every method leaves the model exactly as it found it (parameters,
``requires_grad``, train/eval, in-place flags, hooks), also when it raises.

Modules: :mod:`.gradients` (saliency, gradient, SmoothGrad, integrated
gradients, guided backprop, deconvnet; the modified-ReLU machinery in
:mod:`.backprop`), :mod:`.perturbation` (occlusion; its incremental inference in
:mod:`.incremental`, the receptive-field cone in :mod:`.cone`), :mod:`.cam` (CAM,
Grad-CAM, guided Grad-CAM), :mod:`.evaluation` (sanity check, deletion
curve), :mod:`.base` (targets, upsampling, channel reduction, masks).

Sources (``/work/shared/seeds``): lecture 004 (CSE 891, "Interpretability")
for occlusion, saliency, segmentation from saliency, guided backprop, CAM and
Grad-CAM; lecture 003 (Landwehr) for saliency as the max over channels of
``|∂h/∂x|`` and the sheep/goat story; paper 002 (Wei et al.) for thresholding
plus hole filling of a saliency map. Beyond the seeds: SmoothGrad (Smilkov et
al. 2017), Integrated Gradients (Sundararajan et al. 2017), the sanity checks
of Adebayo et al. (2018) and the deletion metric of Petsiuk et al. (2018).
"""

from .base import Target, reduce_channels, saliency_to_mask, to_map
from .cam import cam, cam_layer, grad_cam, guided_grad_cam, last_conv_layer
from .evaluation import (
    DeletionResult,
    SanityResult,
    cascade_layers,
    deletion_curve,
    randomize_layers,
    sanity_check,
    spearman,
)
from .gradients import (
    IntegratedGradientsWarning,
    deconvnet,
    gradient,
    guided_backprop,
    integrated_gradients,
    saliency,
    smoothgrad,
)
from .incremental import IncrementalForward, IncrementalWarning, LayerCost
from .perturbation import occlusion

__all__ = [
    "Target",
    "gradient",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "IncrementalForward",
    "IncrementalWarning",
    "LayerCost",
    "cam",
    "grad_cam",
    "guided_backprop",
    "deconvnet",
    "guided_grad_cam",
    "saliency_to_mask",
    "last_conv_layer",
    "cam_layer",
    "cascade_layers",
    "randomize_layers",
    "spearman",
    "sanity_check",
    "SanityResult",
    "deletion_curve",
    "DeletionResult",
    "to_map",
    "reduce_channels",
    "IntegratedGradientsWarning",
]
