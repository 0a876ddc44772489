"""Story of notebook 06: DeepDream amplifies the activations of the chosen layer."""

from introspect_lab import load_image, sample_image
from introspect_lab.synthesis import deepdream, layer_features


def test_deepdream_amplifies_the_chosen_layer(lite0):
    photo = load_image(sample_image("china"), lite0, 96)
    dream = deepdream(lite0, photo, "blocks.8", octaves=2, steps=10, seed=0, progress=False)

    def energy(x, layer):
        return layer_features(lite0, x, layer)[layer].pow(2).mean().item()

    # measured: mean f² at blocks.8 57.7 → 76.7 (×1.33); at blocks.2 only ×1.03
    gain = energy(dream.image, "blocks.8") / energy(photo, "blocks.8")
    other = energy(dream.image, "blocks.2") / energy(photo, "blocks.2")
    assert gain > 1.15
    assert gain > other
