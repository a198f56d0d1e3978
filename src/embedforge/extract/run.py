"""The extract drivers: `extract_matrices` (objects in, matrices out) and `run_extract` (writes files)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from embedforge.core.catalog import Catalog, MatrixRecord, vectors_name
from embedforge.core.device import resolve_device, resolve_precision
from embedforge.core.encoder import Encoder, layer_groups, model_depth
from embedforge.core.errors import EmbedforgeError
from embedforge.core.lexicon import Constraints, build_constraints
from embedforge.core.params import POOLINGS, ExtractParams, check_templates
from embedforge.core.prepared import PreparedData
from embedforge.extract.corpus import CorpusFiles, PreparedSentences
from embedforge.extract.postprocess import describe, postprocess
from embedforge.extract.resume import AggregateSettings, finish_pass, pass_key, start_pass
from embedforge.extract.retrofit import lexicon_step
from embedforge.extract.shard import ONE_PROCESS, Shard, current_shard, rank_device
from embedforge.extract.source import Corpus, Matrix, SourcePass
from embedforge.extract.strategy import (
    FORWARD_STRATEGIES,
    MODEL_STRATEGIES,
    SHARES_DECONTEXT,
    VECTORS,
    WORD2VEC,
    check_strategies,
)
from embedforge.extract.tables import vectors_file
from embedforge.extract.word2vec import word2vec_matrix
from embedforge.extract.words import Vocabulary, build_vocabulary, corpus_vocabulary

log = logging.getLogger(__name__)
CORPUS_SPLIT = "train"  # aggregate's corpus: the labelled training split
# never post-processed: `cls` is the tutorial baseline, kept as the tutorial computes it
RAW_STRATEGIES = frozenset({"cls"})


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise EmbedforgeError(f"extract.pooling = {pooling!r}; expected one of {', '.join(POOLINGS)}")


def extract_matrices(
    encoder: Encoder | str | Path | None,
    words: Sequence[str],
    strategies: Sequence[str],
    cfg: ExtractParams,
    *,
    counts: Sequence[int] = (),
    corpus: Corpus | None = None,
    corpus_rows: int | None = None,
    source: str = "model",
    device: str = "cpu",
    progress: bool = True,
    checkpoint: Path | None = None,
    constraints: Constraints | None = None,
) -> list[Matrix]:
    """The matrices of `strategies` for `words`, post-processed as `cfg` says, in strategy order.

    `encoder` is a loaded `Encoder` or a model folder (loaded on `device`, forward passes in
    `cfg.precision`); None suits `vectors` alone.
    `corpus` (windows of segmented sentences, e.g. `PreparedData(...).sentences("train")`) feeds
    `aggregate` and is read once. `counts` (corpus counts per word, default 0) go to the vocab info;
    `source` names the matrices (`decontext_<source>_L4`). `cfg.strategies` and `cfg.sources` are not read.
    `checkpoint`: a folder where `aggregate` checkpoints its corpus pass (`extract.resume`). Under torchrun
    the model strategies share the work across ranks (`extract.shard`); every rank returns the matrices.
    With `cfg.lexicon` set, `constraints` (`core.lexicon.build_constraints` for these `words`) are applied
    after centering; None builds them here, leaving out the pairs of `cfg.extra_words`' benchmark files.
    """
    names = check_strategies(strategies)  # cheap: the stage driver's `validate` ran them before any work
    check_pooling(cfg.pooling)
    if cfg.lexicon and constraints is None:
        constraints = build_constraints(cfg.lexicon, words, cfg.extra_words, cfg.lexicon_related)
    if isinstance(encoder, (str, Path)):
        encoder = Encoder(encoder, device, cfg.precision)
    words, counts = list(words), list(counts) or [0] * len(words)
    src = None
    if model_names := [n for n in names if n in MODEL_STRATEGIES]:
        if encoder is None:
            raise EmbedforgeError(f"strategy {model_names[0]!r} needs an encoder (a model); got none")
        src = SourcePass(
            encoder,
            words,
            cfg,
            counts=counts,
            source=source,
            corpus=corpus,
            corpus_rows=corpus_rows,
            progress=progress,
            reuse_decontext=shares_decontext(model_names, cfg),
            shard=current_shard(),
            checkpoint=checkpoint,
        )
    out: list[Matrix] = []
    for name in names:
        if name == VECTORS:
            for path in cfg.vector_files:
                with _timed(f"vectors {path}"):
                    out.append(vectors_file(path, words, counts, cfg, encoder))
        elif name == WORD2VEC:
            with _timed("word2vec"):
                out.append(_word2vec(encoder, words, counts, cfg, corpus))
        else:
            assert src is not None  # built above for every model strategy
            with _timed(f"{name} {source}"):
                out += MODEL_STRATEGIES[name](src)
    constrain = lexicon_step(cfg, constraints) if cfg.lexicon and constraints is not None else None
    steps = describe(cfg.center, cfg.remove_top_pcs, cfg.normalize, cfg.lexicon_method if constrain else None)
    for matrix in out:
        if matrix.strategy in RAW_STRATEGIES:
            continue
        with _timed(f"post-process {matrix.name}"):
            matrix.wv.weight = postprocess(
                matrix.wv.weight, cfg.center, cfg.remove_top_pcs, cfg.normalize, constrain
            )
        matrix.postprocess = steps
    return out


def _word2vec(
    encoder: Encoder | None, words: list[str], counts: list[int], cfg: ExtractParams, corpus: Corpus | None
) -> Matrix:
    """The word2vec baseline: trained on `corpus`, as wide as the encoder unless `w2v_vector_size` says."""
    if corpus is None:
        raise EmbedforgeError("strategy 'word2vec' needs a corpus (the train split's sentences); got none")
    if not cfg.w2v_vector_size and encoder is None:
        raise EmbedforgeError(
            "strategy 'word2vec' with extract.w2v_vector_size = 0 takes the encoder's hidden size; "
            "got no encoder"
        )
    dim = cfg.w2v_vector_size or (encoder.dim if encoder is not None else 0)
    return word2vec_matrix(corpus, words, counts, dim, cfg, encoder)


def shares_decontext(strategies: Sequence[str], cfg: ExtractParams) -> bool:
    """Whether the whole decontext pass of the run's settings is computed anyway (so `aggregate`'s
    fallback rows can be sliced from it): by `decontext`, or by `cls` when no template is set."""
    alone = cfg.template is None and not cfg.extra_templates  # decontext is then the bare pass
    readers = SHARES_DECONTEXT if alone else SHARES_DECONTEXT - {"cls"}
    return bool(readers & set(strategies))


@contextmanager
def _timed(label: str) -> Iterator[None]:
    """Log how long the block took."""
    start = time.perf_counter()
    yield
    log.info("%s: %.1f s", label, time.perf_counter() - start)


def validate(params: ExtractParams, model_dirs: Mapping[str, Path]) -> list[str]:
    """Every check of a stage run that can fail fast, before any model runs; the strategies to run."""
    strategies = check_strategies(params.strategies)
    check_pooling(params.pooling)
    takes_width = WORD2VEC in strategies and not params.w2v_vector_size  # from the first source
    check_templates(params)
    if any(s in MODEL_STRATEGIES for s in strategies) or params.unknown == "subword" or takes_width:
        layered = any(s in FORWARD_STRATEGIES for s in strategies)
        if not params.sources:
            raise EmbedforgeError("extract.sources is empty; expected base and/or finetuned")
        for source in params.sources:
            if source not in model_dirs:
                raise EmbedforgeError(
                    f"extract.sources: unknown source {source!r}; expected one of {list(model_dirs)}"
                )
            if layered:  # input and vectors read no layer
                layer_groups(params.layers, model_depth(model_dirs[source]), str(model_dirs[source]))
    if VECTORS in strategies:
        if not params.vector_files:
            raise EmbedforgeError("extract.strategies has 'vectors' but extract.vector_files is empty")
        names = [vectors_name(f) for f in params.vector_files]
        for f, name in zip(params.vector_files, names, strict=True):
            if not Path(f).is_file():
                raise EmbedforgeError(f"{f}: word-vector file not found (extract.vector_files)")
            if names.count(name) > 1:
                raise EmbedforgeError(f"extract.vector_files: two files would both be written as {name}")
    return strategies


def extraction_corpus(params: ExtractParams, prepared: PreparedData, language: str) -> Corpus:
    """The corpus of `aggregate` and `word2vec`: `extract.corpus`, or the prepared train split."""
    if params.corpus:
        corpus = CorpusFiles(params.corpus, params.corpus_field, language, params.corpus_window)
        corpus.files  # noqa: B018 - a missing corpus fails before any model loads
        return corpus
    return PreparedSentences(prepared, CORPUS_SPLIT, params.corpus_window)


def corpus_rows(corpus: Corpus, prepared: PreparedData) -> int:
    """Sentences in the corpus, for the progress bar (a reading pass over `extract.corpus`)."""
    return corpus.rows() if isinstance(corpus, CorpusFiles) else prepared.rows(CORPUS_SPLIT)


def extraction_vocabulary(
    params: ExtractParams,
    prepared: PreparedData,
    corpus: Corpus,
    shard: Shard = ONE_PROCESS,
    rows: int | None = None,
) -> Vocabulary:
    """The words to extract: from `data/prepared/` or counted in `extract.corpus`, plus the extra words.
    Under torchrun each rank counts the corpus windows it will aggregate (window i: rank i % world).
    `rows` (sentences in the corpus) turns on the counting pass's progress bar (sentences/s, ETA)."""
    if params.vocab_from == "prepared":
        return build_vocabulary(prepared, params.extra_words)
    if not params.corpus:
        raise EmbedforgeError(
            "params.yaml: extract.vocab_from = 'corpus' but extract.corpus is null; "
            "expected a corpus file, folder or glob (or vocab_from: prepared)"
        )
    sentences: Iterable[list[str]] = (list(s) for window in shard.mine(corpus) for s in window)
    if rows is not None:
        total = shard.share_rows(rows, params.corpus_window)  # rank 0's bar: its own windows
        sentences = tqdm(sentences, total=total, unit="sent", desc="count words", disable=not shard.main)
    return corpus_vocabulary(sentences, params.min_count, params.max_vocab_size, params.extra_words, shard)


def save(matrix: Matrix, catalog: Catalog) -> MatrixRecord:
    """Write one matrix (exports are the `export` stage's job); return its index record."""
    matrix.wv.save(catalog.path(matrix.name))
    return matrix.record()


def run_extract(
    params: ExtractParams,
    *,
    prepared: PreparedData,
    model_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
    progress: bool = True,
    device: str = "cpu",
    language: str = "zh",
    checkpoint_root: str | Path | None = None,
    benchmarks: Sequence[str | Path] = (),
) -> list[MatrixRecord]:
    """Extract every requested matrix into `out_dir` (+ index.json, written last); return the records.

    Each source's model is loaded once, on `device`, and freed before the next; `vectors` and `word2vec`
    run last. `language` segments `extract.corpus` (prepare.language); `checkpoint_root` holds the
    checkpoints of `aggregate` corpus passes when `extract.checkpoint_windows` asks for them. Under
    torchrun every rank computes its share and rank 0 writes (and runs `vectors` and `word2vec` alone).
    With `extract.lexicon` set, no pair of `benchmarks` or of `extract.extra_words` is ever a constraint;
    index.json reports the lexicon's counts (the pairs removed for this among them).
    """
    device = rank_device(device)
    # an unknown device, or bf16/fp16 on the CPU, fails before any model loads
    where = resolve_device(device, "extract.device")
    log.info("forward passes on %s in %s", where, resolve_precision(params.precision, where))
    shard = current_shard()
    dirs = {k: Path(v) for k, v in model_dirs.items()}
    strategies = validate(params, dirs)  # the only checks of a stage run
    corpus = extraction_corpus(params, prepared, language)
    per_source = [s for s in strategies if s in MODEL_STRATEGIES]
    aggregating = "aggregate" in per_source
    counting = params.vocab_from == "corpus"
    rows = corpus_rows(corpus, prepared) if (aggregating or counting) and progress and shard.main else None
    vocab = extraction_vocabulary(params, prepared, corpus, shard, rows if counting else None)
    constraints = None
    if params.lexicon:  # a bad lexicon fails before any model loads
        exclude = [*params.extra_words, *benchmarks]
        constraints = build_constraints(params.lexicon, vocab.words, exclude, params.lexicon_related)
        log.info("lexicon: %s", constraints.summary)
    catalog = Catalog(Path(out_dir))
    if shard.main:  # under torchrun, rank 0 alone writes
        catalog.root.mkdir(parents=True, exist_ok=True)
    records = []
    for source in params.sources if per_source else []:
        model = Encoder(dirs[source], device, params.precision)
        resume_dir = None
        if aggregating and checkpoint_root is not None and params.checkpoint_windows:
            inputs = corpus.files if isinstance(corpus, CorpusFiles) else [prepared.split_path(CORPUS_SPLIT)]
            settings = AggregateSettings.of(params, model, language)
            key = pass_key(settings, source, dirs[source], inputs, vocab.words)
            resume_dir = start_pass(Path(checkpoint_root), key, shard)
        matrices = extract_matrices(
            model,
            vocab.words,
            per_source,
            params,
            counts=vocab.counts,
            corpus=corpus if aggregating else None,
            corpus_rows=rows,
            source=source,
            progress=progress,
            checkpoint=resume_dir,
            constraints=constraints,
        )
        records += [save(m, catalog) for m in matrices if shard.main]
        del matrices, model  # free this source's model and matrices before the next model loads
        if resume_dir is not None:
            finish_pass(resume_dir, shard)
    if not shard.main:
        return records  # vectors and word2vec are single-process work: rank 0's
    if VECTORS in strategies:
        # the subword policy composes from the first source's input table
        composer = Encoder(dirs[params.sources[0]], device) if params.unknown == "subword" else None
        matrices = extract_matrices(
            composer,
            vocab.words,
            [VECTORS],
            params,
            counts=vocab.counts,
            progress=progress,
            constraints=constraints,
        )
        records += [save(m, catalog) for m in matrices]
    if WORD2VEC in strategies:
        needs_model = not params.w2v_vector_size or params.unknown == "subword"
        encoder = Encoder(dirs[params.sources[0]], device) if needs_model else None
        matrices = extract_matrices(
            encoder,
            vocab.words,
            [WORD2VEC],
            params,
            counts=vocab.counts,
            corpus=corpus,
            progress=progress,
            constraints=constraints,
        )
        records += [save(m, catalog) for m in matrices]
    catalog.write_index(records, len(vocab), lexicon=constraints.summary if constraints else None)
    return records
