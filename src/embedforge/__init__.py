"""embedforge: turn a pretrained encoder into task-tuned static word-embedding matrices, and the small task
model they exist for.

Public API (imported lazily so `import embedforge` stays light):
  load_recommended(root=".") -> (torch.nn.Embedding, Vocab)  # the matrix the run at `root` recommends
  recommended_path(root=".") -> Path                         # its stem embeddings/<name>, for WordVectors
                                                             # (the same files: recommended/matrix.*)
  load_embedding(path) -> (torch.nn.Embedding, Vocab)        # vocab.lookup(words) -> row ids
  WordVectors                                                # a matrix + its words, save/load/export
  load_classifier(path) -> Classifier                        # models/student/: .predict(texts) on raw text
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "Classifier",
    "Vocab",
    "WordVectors",
    "load_classifier",
    "load_embedding",
    "load_recommended",
    "recommended_path",
]
_HOMES = {
    "Vocab": "embedforge.core.embedding",
    "WordVectors": "embedforge.core.embedding",
    "load_embedding": "embedforge.core.embedding",
    "load_recommended": "embedforge.core.recommended",
    "recommended_path": "embedforge.core.recommended",
    "Classifier": "embedforge.student.classifier",
    "load_classifier": "embedforge.student.classifier",
}

if TYPE_CHECKING:
    from embedforge.core.embedding import Vocab, WordVectors, load_embedding
    from embedforge.core.recommended import load_recommended, recommended_path
    from embedforge.student.classifier import Classifier, load_classifier


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'embedforge' has no attribute {name!r}")
