"""Story of notebook 12: novelty detection over several class partitions, with intervals.

The committed results (data/results/novelty.json) store every partition's numbers. Here the
intervals of Figures 4 and 5 and the verdict are recomputed from them: a sentence names a
winner only when the interval (over partitions, paired) excludes zero, layers are chosen on
held-out S2, and the stand-in says that it cannot show the layer trend.
"""

import json

from introspect_lab.experiments import novelty_run as NR


def test_intervals_and_verdict_follow_from_the_partitions():
    res = NR.load_results()
    f4 = res["figure4"]
    again = json.loads(json.dumps(NR.aggregate(f4["partitions"], ("fc", "conv"), f4["layers"])))  # as stored
    assert again["fc"]["test_auroc"] == f4["fc"]["test_auroc"] and again["diff"] == f4["diff"]
    assert NR.verdict(res) == res["verdict"]
    for line in res["verdict"]:
        assert ("beats" in line) == ("interval excludes 0" in line)
    # layers are chosen on the held-out selection set: the chosen layer has the best selection AUROC
    for p in f4["partitions"]:
        k = f4["layers"].index(p["fc"]["chosen_layer"])
        assert p["fc"]["select_auroc"][k] == max(p["fc"]["select_auroc"])
    assert len(res["partitions"]) >= 5
    if res["data"]["stand_in"]:
        assert "cannot show the paper's layer trend" in res["data"]["cannot_show"]
