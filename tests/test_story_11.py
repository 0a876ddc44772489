"""Story of notebook 11: Table 1 with intervals, and sentences that name a winner only when the interval
allows.

The committed results (data/results/style_shift.json) store every pair's ranks and source photo.
Here the table's means, intervals and the notebook's sentences are recomputed from those ranks
(the bootstrap is seeded, so exactly); a claim that the file makes must follow from its intervals.
The live recomputation of a slice with today's code is in tests/test_results_files.py.
"""

from introspect_lab.experiments import style_shift_run as R


def test_table1_and_claims_follow_from_the_stored_ranks():
    res = R.load_results()
    cfg = res["config"]
    for key in R.PAPER_TABLE1:
        again = R._summarise([f["rows"][key] for f in res["folds"]], cfg)
        stored = res["table1"][key]
        assert again["mean"] == stored["mean"] and again["diff"] == stored["diff"], key
        # the unit of resampling is the source photo, and there are fewer photos than pairs or as many
        assert stored["n_source_photos"] <= stored["n_pairs"]
    assert sorted(R.claims(res)) == sorted(res["claims"])  # the file's keys are stored sorted
    for line in res["claims"]:  # a winner only when the interval excludes zero
        assert ("beats" in line) == ("interval excludes 0" in line)
