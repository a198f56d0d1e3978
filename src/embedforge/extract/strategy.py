"""Strategy names -> functions. Model strategies read one `SourcePass`; `vectors` reads a word2vec file;
`word2vec` trains one on the training corpus."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from embedforge.core.errors import EmbedforgeError
from embedforge.extract.aggregate import aggregate
from embedforge.extract.decontext import cls, decontext
from embedforge.extract.source import Matrix, SourcePass
from embedforge.extract.tables import input_table

ModelStrategy = Callable[[SourcePass], list[Matrix]]

# run once per model source, in the order the run asks for them
MODEL_STRATEGIES: dict[str, ModelStrategy] = {
    "cls": cls,
    "input": input_table,
    "decontext": decontext,
    "aggregate": aggregate,
}
VECTORS = "vectors"  # one matrix per word2vec file (`tables.vectors_file`), no model source
# one matrix trained with gensim on the training corpus (`word2vec.word2vec_matrix`), no model source
WORD2VEC = "word2vec"
STRATEGIES: tuple[str, ...] = (*MODEL_STRATEGIES, VECTORS, WORD2VEC)
SHARES_DECONTEXT = frozenset({"cls", "decontext"})  # strategies that run the whole decontext pass
FORWARD_STRATEGIES = frozenset({"cls", "decontext", "aggregate"})  # run the model, pooling at `layers`


def check_strategies(names: Sequence[str]) -> list[str]:
    """Raise on an unknown or missing strategy name; return the names without duplicates."""
    for i, name in enumerate(names):
        if name not in STRATEGIES:
            raise EmbedforgeError(
                f"extract.strategies[{i}] = {name!r} is not a known strategy; "
                f"expected one of: {', '.join(STRATEGIES)}"
            )
    if not names:
        raise EmbedforgeError("extract.strategies is empty; expected at least one strategy")
    return list(dict.fromkeys(names))
