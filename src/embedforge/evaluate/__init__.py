"""Evaluation of word-embedding matrices and of the fine-tuned classifier (the `evaluate` stage).

compute (`evaluate_all` -> `Results`) -> data files (`write_results`: metrics JSON, plot tables)
-> renderers that read only those files (`render`: report.md, neighbours.md, plot tables and PNGs).

`files` owns every file name and key of metrics/ and plots/; the compute modules (`similarity`,
`selection`, `probe`, `consumers`, `curves`, `caps`, `classification`) never import `outputs` or
`render/`, and `render/` imports only `files`, `core` and itself.
"""

from embedforge.evaluate.outputs import render, write_results
from embedforge.evaluate.results import MatrixScores, Results, to_metrics
from embedforge.evaluate.run import evaluate_all

__all__ = ["MatrixScores", "Results", "evaluate_all", "render", "to_metrics", "write_results"]
