"""Copies of chosen matrices in the formats other tools load (the `export` stage: embeddings/ -> exports/).

word2vec text and binary (gensim, word2vec.c), a model2vec static model folder (a fast sentence encoder,
also for sentence-transformers) and the TensorBoard projector; `export` params choose matrices by name glob.
"""

from embedforge.export.model2vec import write_model2vec
from embedforge.export.projector import write_projector
from embedforge.export.run import FORMATS, run_export, select

__all__ = ["FORMATS", "run_export", "select", "write_model2vec", "write_projector"]
