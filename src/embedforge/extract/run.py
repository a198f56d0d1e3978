"""Strategy names -> functions, and the driver that runs the requested ones and writes the outputs."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedforge.core.encoder import POOLINGS, Encoder, layer_groups, model_depth
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import write_json
from embedforge.core.params import ExtractParams
from embedforge.core.prepared import PreparedData
from embedforge.extract.aggregate import aggregate
from embedforge.extract.decontext import cls, decontext
from embedforge.extract.job import Job, Matrix
from embedforge.extract.postprocess import describe, postprocess
from embedforge.extract.tables import input_table, vectors_file, vectors_name
from embedforge.extract.words import Vocabulary, build_vocabulary

LAYER_CONVENTION = "hidden_states index: 0 = embedding output, num_hidden_layers = last layer"


@dataclass(frozen=True)
class Strategy:
    """A strategy function and whether it runs once per model source (else once per vector file)."""

    fn: Callable[[Job], list[Matrix]]
    per_source: bool = True


STRATEGIES: dict[str, Strategy] = {
    "cls": Strategy(cls),
    "input": Strategy(input_table),
    "decontext": Strategy(decontext),
    "aggregate": Strategy(aggregate),
    "vectors": Strategy(vectors_file, per_source=False),
}


def check_strategies(names: list[str]) -> list[str]:
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


def validate(params: ExtractParams, model_dirs: Mapping[str, Path]) -> None:
    """Every check that can fail fast, before any model runs."""
    strategies = check_strategies(params.strategies)
    if params.pooling not in POOLINGS:
        raise EmbedforgeError(f"extract.pooling = {params.pooling!r}; expected one of {', '.join(POOLINGS)}")
    if any(STRATEGIES[s].per_source for s in strategies) or params.unknown == "subword":
        if not params.sources:
            raise EmbedforgeError("extract.sources is empty; expected base and/or finetuned")
        for source in params.sources:
            if source not in model_dirs:
                raise EmbedforgeError(
                    f"extract.sources: unknown source {source!r}; expected one of {list(model_dirs)}"
                )
            layer_groups(params.layers, model_depth(model_dirs[source]), str(model_dirs[source]))
    if "vectors" in strategies:
        if not params.vector_files:
            raise EmbedforgeError("extract.strategies has 'vectors' but extract.vector_files is empty")
        names = [vectors_name(f) for f in params.vector_files]
        for f, name in zip(params.vector_files, names, strict=True):
            if not Path(f).is_file():
                raise EmbedforgeError(f"{f}: word-vector file not found (extract.vector_files)")
            if names.count(name) > 1:
                raise EmbedforgeError(f"extract.vector_files: two files would both be written as {name}")


def entry(matrix: Matrix, params: ExtractParams) -> dict[str, Any]:
    """The index.json record of a matrix."""
    return {
        "name": matrix.name,
        "strategy": matrix.strategy,
        "source": matrix.source,
        "layer": matrix.layer,
        "pooling": params.pooling if matrix.strategy in ("input", "decontext", "aggregate") else None,
        "postprocess": describe(params.center, params.remove_top_pcs, params.normalize),
        "words": len(matrix.wv),
        "dim": matrix.wv.dim,
    }


def write_matrix(matrix: Matrix, params: ExtractParams, out_dir: Path) -> dict[str, Any]:
    """Post-process, save and export one matrix; return its index record."""
    wv = matrix.wv
    wv.weight = postprocess(wv.weight, params.center, params.remove_top_pcs, params.normalize)
    wv.save(out_dir / matrix.name)
    if any(fnmatch.fnmatchcase(matrix.name, p) for p in params.export_word2vec):
        wv.save_word2vec(out_dir / f"{matrix.name}.w2v.txt")
    if any(fnmatch.fnmatchcase(matrix.name, p) for p in params.export_projector):
        wv.save_projector(out_dir / matrix.name)
    return entry(matrix, params)


def jobs(
    params: ExtractParams,
    vocab: Vocabulary,
    model_dirs: Mapping[str, Path],
    corpus: PreparedData,
    progress: bool,
) -> Iterator[tuple[str, Job]]:
    """(strategy, Job) in run order: each source's strategies (one encoder loaded at a time), then files."""
    strategies = check_strategies(params.strategies)
    per_source = [s for s in strategies if STRATEGIES[s].per_source]
    for source in params.sources if per_source else []:
        encoder = Encoder(model_dirs[source])
        cache: dict[Any, Any] = {}  # shared by this source's strategies
        for name in per_source:
            yield name, Job(vocab, params, source, encoder, corpus, progress=progress, cache=cache)
        del encoder, cache  # free this model before the next one loads
    if "vectors" in strategies:
        # the subword policy composes from the first source's input table
        composer_model = Encoder(model_dirs[params.sources[0]]) if params.unknown == "subword" else None
        for f in params.vector_files:
            yield "vectors", Job(vocab, params, None, composer_model, vector_file=Path(f), progress=progress)


def run_extract(
    params: ExtractParams,
    *,
    prepared: PreparedData,
    model_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Extract every requested matrix into `out_dir` (+ index.json); return the index records."""
    dirs = {k: Path(v) for k, v in model_dirs.items()}
    validate(params, dirs)
    vocab = build_vocabulary(prepared, params.extra_words)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name, job in jobs(params, vocab, dirs, prepared, progress):
        start = time.perf_counter()
        for matrix in STRATEGIES[name].fn(job):
            records.append(write_matrix(matrix, params, out))
        if progress:
            print(f"extract: {name} {job.source or job.vector_file}: {time.perf_counter() - start:.1f} s")
        del job  # so the generator can free the model of a finished source
    write_json(
        out / "index.json",
        {"matrices": records, "layer_convention": LAYER_CONVENTION, "vocab_size": len(vocab)},
    )
    return records
