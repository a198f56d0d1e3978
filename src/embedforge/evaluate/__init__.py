"""Evaluation of word-embedding matrices and of the fine-tuned classifier (the `evaluate` stage)."""

from embedforge.evaluate.run import Results, evaluate_all, write_results

__all__ = ["Results", "evaluate_all", "write_results"]
