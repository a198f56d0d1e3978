"""The fine-tuned sequence classifier scored on the test split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn import metrics

from embedforge.core.device import CPU
from embedforge.core.metrics import classification_metrics
from embedforge.core.prepared import PreparedData
from embedforge.core.transformer import classifier_logits, load_classifier_model
from embedforge.evaluate.files import CONFUSION, LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """counts[i, j] = how many texts of true class i were predicted as class j."""
    return metrics.confusion_matrix(y_true, y_pred, labels=np.arange(num_labels))


@dataclass(frozen=True)
class ClassifierScores:
    """The classifier's test predictions and what follows from them."""

    labels: list[str]  # names[i] is the label of id i
    actual: np.ndarray  # label ids per test text
    predicted: np.ndarray

    def metrics(self) -> dict[str, Any]:
        """Accuracy, macro-F1 and per-class scores (see core.metrics)."""
        return classification_metrics(self.actual, self.predicted, self.labels)

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.actual, self.predicted, len(self.labels))

    def to_dict(self) -> dict[str, Any]:
        """`finetuned` in metrics/classification.json: the metrics, label names and confusion counts."""
        return {**self.metrics(), LABELS: list(self.labels), CONFUSION: self.confusion().tolist()}

    def predictions(self) -> pd.DataFrame:
        """`actual`, `predicted` label names per test text (the DVC confusion plot's data)."""
        return pd.DataFrame(
            {
                "actual": [self.labels[i] for i in self.actual],
                "predicted": [self.labels[i] for i in self.predicted],
            }
        )


def predict_labels(
    model_dir: str | Path,
    input_ids: list[list[int]],
    num_labels: int,
    batch_size: int = 64,
    device: torch.device = CPU,
) -> np.ndarray:
    """Predicted class ids of a sequence classifier for already-tokenized texts (batched by length)."""
    model = load_classifier_model(model_dir, num_labels)
    return classifier_logits(model, input_ids, batch_size, device).argmax(-1)


def score_classifier(
    model_dir: str | Path, prepared: PreparedData, device: torch.device = CPU
) -> ClassifierScores:
    """The fine-tuned classifier's predictions on the prepared test split (on `device`)."""
    labels = prepared.label_names()
    test = prepared.split("test", columns=["input_ids", "label"])
    actual = test["label"].to_numpy()
    return ClassifierScores(
        labels, actual, predict_labels(model_dir, test["input_ids"].tolist(), len(labels), device=device)
    )
