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
from embedforge.core.encoder import pad_batch
from embedforge.core.errors import EmbedforgeError
from embedforge.core.metrics import classification_metrics
from embedforge.core.models import check_model_dir, load_classifier
from embedforge.core.prepared import PreparedData
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
    folder = check_model_dir(model_dir)
    model = load_classifier(folder)
    model.to(device)
    if model.config.num_labels != num_labels:
        raise EmbedforgeError(
            f"{folder}/config.json: the model has {model.config.num_labels} labels; "
            f"the prepared data has {num_labels}"
        )
    pad_id = model.config.pad_token_id or 0
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")  # similar lengths pad less
    predictions = np.zeros(len(input_ids), dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad_batch([list(input_ids[i]) for i in rows], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            predictions[rows] = logits.argmax(-1).cpu().numpy()
    return predictions


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
