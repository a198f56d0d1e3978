"""Static word-embedding matrices from an encoder's parameters (the `extract` stage).

Strategy families: `isolated` (cls, decontext), `corpus` (aggregate), `static` (input, vectors);
`registry.STRATEGIES` maps names to functions and `run_extract` drives a whole stage run.
"""

from embedforge.core.encoder import SubwordComposer
from embedforge.extract.run import STRATEGIES, run_extract
from embedforge.extract.words import Vocabulary, build_vocabulary, read_word_list

__all__ = ["STRATEGIES", "SubwordComposer", "Vocabulary", "build_vocabulary", "read_word_list", "run_extract"]
