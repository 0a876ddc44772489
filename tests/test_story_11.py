"""Story of notebook 11: tuned style transfer shifts images towards the style image's class on held-out classes.

The committed results (data/results/style_shift.json) are recomputed here for a few of
their held-out inter-class pairs, live, with the tuned θ they record: the ranks must
reproduce, and the style class must rank higher after the tuned transfer than before.
"""

import numpy as np

from introspect_lab.experiments import style_shift as S

N_PAIRS = 5


def test_tuned_inter_class_transfer_raises_the_style_class_on_held_out_classes(lite0):
    res = S.load_results(S.RESULTS_FILE)
    assert res["model"] == "efficientnet_lite0" and res["data"]["name"] == "stand-in"
    cfg = res["config"]
    data = S.stand_in_images(lite0, per_class=cfg["per_class"], size=cfg["size"])
    assert sorted(int(c) for c in res["classes"]["names"]) == data.classes
    row = res["table1"]["inter/test"]
    pairs = [S.Pair(**p) for p in row["pairs"]][:N_PAIRS]
    assert all(p.target in res["classes"]["test"] for p in pairs)
    tuned = S.Theta.from_dict(res["theta"]["inter"])
    ranks = S.transfer_ranks(lite0, data, pairs, [None, tuned])
    # the file is reproducible: no-transfer ranks exactly; transferred ranks within 20 % (+5 places),
    # because the batch a sample shares changes float sums by ~1e-6, and 18 Adam steps carry that into
    # the dense middle of a 1000-class ranking (measured: up to 30 places at rank ~240)
    assert ranks[0].tolist() == row["no_transfer"]["ranks"][:N_PAIRS]
    committed = np.array(row["tuned"]["ranks"][:N_PAIRS])
    assert (np.abs(ranks[1] - committed) <= 5 + 0.2 * committed).all(), (ranks[1], committed)
    # the claim: the style image's class moves up
    assert np.median(ranks[1]) < np.median(ranks[0])
    assert row["tuned"]["mean"] < row["no_transfer"]["mean"]
