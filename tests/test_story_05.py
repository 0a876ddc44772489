"""Story of notebook 05: priors turn noisy class visualisations into smooth ones the model still recognises."""

from introspect_lab import regularizers as R
from introspect_lab.models import predict
from introspect_lab.synthesis import visualize_class


def test_regularised_class_visualisation_is_smoother_and_still_the_class(lite0):
    # measured (96 px, 100 steps, seed 0): TV 142 669 without priors, 10 682 with them (13×); both top-1 tabby
    plain = visualize_class(
        lite0, "tabby", size=96, steps=100, l2_weight=0, blur_every=0, jitter=0, seed=0, progress=False
    )
    reg = visualize_class(lite0, "tabby", size=96, steps=100, seed=0, progress=False)
    assert R.total_variation(reg.image) * 4 < R.total_variation(plain.image)
    assert predict(lite0, plain.image, 1)[0][0].index == 281
    assert predict(lite0, reg.image, 1)[0][0].index == 281
