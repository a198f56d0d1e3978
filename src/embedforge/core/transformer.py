"""The fine-tuned sequence classifier (models/finetuned): its logits on token ids, and on raw text.

`evaluate` scores it on the test split, the `teacher` stage caches its logits on the transfer set, and the
`student` stage times it beside the student with the same raw-text interface (`TransformerClassifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from embedforge.core.device import CPU
from embedforge.core.encoder import pad_batch
from embedforge.core.errors import EmbedforgeError
from embedforge.core.models import check_model_dir, load_sequence_classifier, load_tokenizer
from embedforge.core.text import normalize_text


def load_classifier_model(model_dir: str | Path, num_labels: int | None = None) -> PreTrainedModel:
    """A saved sequence classifier in eval mode; with `num_labels`, an error unless it has that many."""
    folder = check_model_dir(model_dir)
    model = load_sequence_classifier(folder)  # weights checked against config.json, one-line errors
    if num_labels is not None and model.config.num_labels != num_labels:
        raise EmbedforgeError(
            f"{folder}/config.json: the model has {model.config.num_labels} labels; "
            f"the prepared data has {num_labels}"
        )
    return model


def classifier_logits(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    batch_size: int = 64,
    device: torch.device = CPU,
) -> np.ndarray:
    """float32 logits [texts, labels] for already-tokenized texts, batched by length (less padding)."""
    model.to(device)  # type: ignore[arg-type]
    pad_id = model.config.pad_token_id or 0
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")
    out = np.zeros((len(input_ids), model.config.num_labels), dtype=np.float32)  # type: ignore[type-var]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad_batch([list(input_ids[i]) for i in rows], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out[rows] = logits.float().cpu().numpy()
    return out


class TransformerClassifier:
    """Raw text in, class probabilities out: tokenizer and fine-tuned model, as a user would run them."""

    def __init__(self, model_dir: str | Path, max_length: int, device: torch.device = CPU) -> None:
        self.model = load_classifier_model(model_dir).to(device)  # type: ignore[arg-type]
        self.tokenizer = load_tokenizer(model_dir)
        self.max_length = max_length
        self.device = device
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Probabilities [texts, labels]; texts are normalised as `prepare` normalises them."""
        clean = [normalize_text(t) for t in texts]
        ids = self.tokenizer(clean, truncation=True, max_length=self.max_length)["input_ids"]
        logits = torch.as_tensor(classifier_logits(self.model, ids, batch_size, self.device))
        return torch.softmax(logits, -1).numpy()
