"""Classification scores, and the fine-tuned sequence classifier scored on the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn import metrics
from transformers import AutoModelForSequenceClassification

from embedforge.core.encoder import pad_batch
from embedforge.core.errors import EmbedforgeError
from embedforge.core.models import check_model_dir


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """counts[i, j] = how many texts of true class i were predicted as class j."""
    return metrics.confusion_matrix(y_true, y_pred, labels=np.arange(num_labels))


def predict_labels(
    model_dir: str | Path, input_ids: list[list[int]], num_labels: int, batch_size: int = 64
) -> np.ndarray:
    """Predicted class ids of a sequence classifier for already-tokenized texts (batched by length)."""
    folder = check_model_dir(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=False).eval()
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
            predictions[rows] = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).numpy()
    return predictions
