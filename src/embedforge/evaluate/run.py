"""The `evaluate` computation: every matrix in the catalog and the fine-tuned classifier, scored."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from embedforge.core.benchmarks import Analogy, Pair, benchmark_name, read_analogies, read_pairs
from embedforge.core.catalog import Catalog, random_name
from embedforge.core.device import resolve_device
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import CurvesParams, EvaluateParams, check_selection
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.caps import RowCaps
from embedforge.evaluate.classification import score_classifier
from embedforge.evaluate.curves import CurveRunner
from embedforge.evaluate.files import SPLITS, MetricsDoc
from embedforge.evaluate.probe import ProbeConfig, ProbeScores, random_matrix, run_probe
from embedforge.evaluate.results import MatrixScores, Results
from embedforge.evaluate.selection import recommend
from embedforge.evaluate.similarity import (
    analogy_accuracy,
    nearest_neighbours,
    row_counts,
    unit_rows,
    word_similarity,
)
from embedforge.nets.data import ProbeData, to_probe_data

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmarks:
    """The parsed benchmark files, keyed by metric name (file stem)."""

    similarity: dict[str, list[Pair]]
    analogy: dict[str, list[Analogy]]


def load_benchmarks(p: EvaluateParams) -> Benchmarks:
    """Parse every benchmark file named in the params; names (file stems) must be distinct."""
    check_selection(p)
    names = [benchmark_name(f) for f in [*p.similarity_files, *p.analogy_files]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EmbedforgeError(
            f"params.yaml: evaluate has two benchmark files named {dupes[0]!r}; expected distinct file names"
        )
    return Benchmarks(
        similarity={benchmark_name(f): read_pairs(f, p.lowercase) for f in p.similarity_files},
        analogy={benchmark_name(f): read_analogies(f, p.lowercase) for f in p.analogy_files},
    )


def score_matrix(wv: WordVectors, bench: Benchmarks, probe_words: list[str], k: int) -> MatrixScores:
    """Similarity, analogy and nearest neighbours of one matrix."""
    unit = unit_rows(wv)
    return MatrixScores(
        similarity={name: word_similarity(wv, pairs, unit) for name, pairs in bench.similarity.items()},
        analogy={name: analogy_accuracy(wv, qs, unit) for name, qs in bench.analogy.items()},
        neighbours=nearest_neighbours(wv, probe_words, k, unit),
        rows=row_counts(wv),
    )


def row_caps(p: EvaluateParams, prepared: PreparedData) -> RowCaps:
    """The rows of each split the probes and curves use (evaluate.max_train_rows / max_test_rows)."""
    return RowCaps.of(p, {s: prepared.split(s, columns=["label"])["label"].to_numpy() for s in SPLITS})


def probe_splits(
    prepared: PreparedData, index: dict[str, int], caps: RowCaps | None = None
) -> tuple[ProbeData, ProbeData]:
    """The train and test splits (their capped samples) as padded row ids of one vocabulary."""
    frames = []
    for s in SPLITS:
        frame = prepared.split(s, columns=["words", "label"])
        rows = caps.rows[s] if caps else None
        frames.append(frame if rows is None else frame.iloc[rows])
    train, test = (to_probe_data(f["words"].tolist(), f["label"].tolist(), index) for f in frames)
    return train, test


def evaluate_all(
    p: EvaluateParams,
    catalog: Catalog,
    model_dir: str | Path,
    prepared: PreparedData,
    ceiling: MetricsDoc | None = None,
    curves: CurvesParams | None = None,
) -> Results:
    """Score every matrix (intrinsic + probe), a random matrix per vocabulary/shape, and the classifier.

    `ceiling` (metrics/ceiling.json of the `ceiling` stage) fills the curves' transformer ceiling; `curves`
    (default: the defaults of the `curves` params) says which training subsets the curves draw."""
    bench = load_benchmarks(p)
    device = resolve_device(p.device, "evaluate.device")
    logger.info("probe, curves and classifier on %s", device)
    records = catalog.records()
    classifier = score_classifier(model_dir, prepared, device)  # first: a bad model folder fails fast
    names = classifier.labels
    cfg = ProbeConfig(
        epochs=p.probe_epochs, batch_size=p.probe_batch_size, lr=p.probe_lr, seed=p.seed, device=device
    )
    words = [w.lower() for w in p.probe_words] if p.lowercase else list(p.probe_words)
    scores: dict[str, MatrixScores] = {}
    probe: dict[str, ProbeScores] = {}
    splits: dict[tuple[str, ...], tuple[ProbeData, ProbeData]] = {}
    baselines: dict[tuple, tuple[str, ProbeScores]] = {}  # (vocabulary, dim) -> (first matrix, scores)
    noises: dict[tuple, torch.Tensor] = {}  # (vocabulary, dim) -> the random matrix, for its curve
    runner = CurveRunner(p, names, device, curves)
    caps = row_caps(p, prepared)
    if caps.applied():
        logger.info("probes and curves on a sample: %s", caps.metrics())
    for record in tqdm(records, desc="evaluate", unit="matrix", leave=False):
        wv = catalog.load(record.name)
        scores[record.name] = score_matrix(wv, bench, words, p.neighbours)
        vocabulary = tuple(wv.words)
        if vocabulary not in splits:  # matrices of one extract run share a vocabulary
            splits[vocabulary] = probe_splits(prepared, wv.index, caps)
        train, test = splits[vocabulary]
        probe[record.name] = run_probe(wv.weight, train, test, names, cfg)
        runner.add(record.name, wv.weight, train, test)
        key = (vocabulary, wv.dim)
        if key not in baselines:  # the baseline depends only on the vocabulary and the shape
            noises[key] = random_matrix(wv.weight, p.seed)
            baselines[key] = (record.name, run_probe(noises[key], train, test, names, cfg))
        logger.info("evaluated %s", record.name)
    for key, (first, baseline) in baselines.items():
        probe[random_name(first, len(baselines))] = baseline
        if runner.wants(random_name(first, len(baselines))):
            train, test = splits[key[0]]
            runner.add(random_name(first, len(baselines)), noises[key], train, test)
    selection = recommend(p, bench.similarity, scores, records, list(bench.analogy))
    return Results(
        records=records,
        scores=scores,
        classifier=classifier,
        probe=probe,
        curves=runner.results(ceiling, classifier.metrics()),
        selection=selection,
        caps=caps.metrics(),
    )
