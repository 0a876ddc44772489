"""Reproductions of the experiments of the source papers, one module per experiment.

Each module runs offline on an honest stand-in when the paper's data or weights are not
cached, says so, and writes its long-run results with the command that made them to
``data/results/``.
"""
