"""Classification scores: one function and one spelling of each key for every stage and file."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

ACCURACY = "accuracy"
MACRO_F1 = "macro_f1"


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict:
    """Accuracy, macro-F1 over all classes, and per-class precision/recall/F1/support (0 where undefined)."""
    labels = np.arange(len(names))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(n),
        }
        for name, p, r, f, n in zip(names, precision, recall, f1, support, strict=True)
    }
    return {
        ACCURACY: round(float(metrics.accuracy_score(y_true, y_pred)), 4) if len(y_true) else 0.0,
        MACRO_F1: round(float(f1.mean()), 4),
        "per_class": per_class,
    }


def headline(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> dict[str, float]:
    """Unrounded accuracy and macro-F1 over every class of a head (for model selection while training)."""
    labels = np.arange(num_labels)
    return {
        ACCURACY: float(metrics.accuracy_score(y_true, y_pred)),
        MACRO_F1: float(metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
