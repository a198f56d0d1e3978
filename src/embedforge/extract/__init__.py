"""Static word-embedding matrices from an encoder's parameters (the `extract` stage).

Strategy families: `isolated` (cls, decontext), `corpus` (aggregate), `static` (input, vectors);
`STRATEGIES` lists their names. `extract_matrices` computes matrices in memory (objects in, matrices
out); `run_extract` drives a whole stage run and writes `embeddings/`.
"""

from embedforge.core.encoder import SubwordComposer
from embedforge.extract.run import extract_matrices, run_extract
from embedforge.extract.source import DecontextRows, Matrix, SourcePass
from embedforge.extract.strategy import STRATEGIES
from embedforge.extract.words import Vocabulary, build_vocabulary

__all__ = [
    "STRATEGIES",
    "DecontextRows",
    "Matrix",
    "SourcePass",
    "SubwordComposer",
    "Vocabulary",
    "build_vocabulary",
    "extract_matrices",
    "run_extract",
]
