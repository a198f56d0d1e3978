"""embedforge: turn a pretrained encoder into task-tuned static word-embedding matrices.

Public API (imported lazily so `import embedforge` stays light):
  load_embedding(path) -> (torch.nn.Embedding, Vocab)   # vocab.lookup(words) -> row ids
  WordVectors                                           # a matrix + its words, save/load/export
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Vocab", "WordVectors", "load_embedding"]

if TYPE_CHECKING:
    from embedforge.core.embedding import Vocab, WordVectors, load_embedding


def __getattr__(name: str) -> Any:
    if name in __all__:
        from embedforge.core import embedding

        return getattr(embedding, name)
    raise AttributeError(f"module 'embedforge' has no attribute {name!r}")
