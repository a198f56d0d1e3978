"""The `evaluate` step: every matrix in embeddings/index.json and the fine-tuned classifier, judged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from embedforge.core.benchmarks import Analogy, Pair, benchmark_name, read_analogies, read_pairs
from embedforge.core.embedding import WordVectors
from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import atomic_path, read_json, write_json, write_text
from embedforge.core.metrics import classification_metrics
from embedforge.core.params import EvaluateParams
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.classification import confusion_matrix, predict_labels
from embedforge.evaluate.plots import confusion_png, layers_png, probe_png, scatter_png, training_png
from embedforge.evaluate.probe import ProbeConfig, ProbeData, random_matrix, run_probe, to_probe_data
from embedforge.evaluate.report import build_report
from embedforge.evaluate.similarity import analogy_accuracy, nearest_neighbours, unit_rows, word_similarity

INDEX_KEYS = ("name", "strategy", "source", "layer", "pooling", "postprocess")


@dataclass
class Benchmarks:
    """The parsed benchmark files, keyed by metric name (file stem)."""

    similarity: dict[str, list[Pair]]
    analogy: dict[str, list[Analogy]]


@dataclass
class Results:
    """Everything the stage writes, computed before anything is written."""

    entries: list[dict]
    sims: list[str] = field(default_factory=list)  # similarity benchmark names, in params order
    analogies: list[str] = field(default_factory=list)
    similarity: dict = field(default_factory=dict)  # metrics/similarity.json
    classification: dict = field(default_factory=dict)  # metrics/classification.json
    oov: dict = field(default_factory=dict)  # matrix -> benchmark -> out-of-vocabulary words
    neighbours: dict = field(default_factory=dict)  # matrix -> probe word -> [(word, cosine)] or None
    scatter: dict[str, list[pd.DataFrame]] = field(default_factory=dict)  # benchmark -> per-matrix frames
    confusion: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    predictions: pd.DataFrame | None = None  # actual, predicted (names) per test text


def load_benchmarks(p: EvaluateParams) -> Benchmarks:
    """Parse every benchmark file named in the params; names (file stems) must be distinct."""
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


def read_index(embeddings_dir: str | Path) -> list[dict]:
    """The matrices listed in `<embeddings_dir>/index.json`, each with all INDEX_KEYS (absent -> None)."""
    path = Path(embeddings_dir) / "index.json"
    data = read_json(path)
    matrices = data.get("matrices") if isinstance(data, dict) else None
    if not isinstance(matrices, list) or not matrices:
        raise EmbedforgeError(
            f'{path}: expected {{"matrices": [{{"name": ...}}, ...]}} with at least one matrix'
        )
    entries = []
    for i, entry in enumerate(matrices):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise EmbedforgeError(f"{path}: matrices[{i}] has no 'name'; expected a matrix name string")
        entries.append({key: entry.get(key) for key in INDEX_KEYS})
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise EmbedforgeError(f"{path}: matrix names repeat; expected distinct names")
    return entries


def _intrinsic(wv: WordVectors, name: str, bench: Benchmarks, p: EvaluateParams, out: Results) -> None:
    """Similarity, analogy and neighbours of one matrix, added to `out`."""
    unit = unit_rows(wv)
    metrics, oov = {}, {}
    for key, pairs in bench.similarity.items():
        result = word_similarity(wv, pairs, unit)
        metrics[key], oov[key] = result.metrics(), result.oov
        out.scatter.setdefault(key, []).append(result.scores.assign(matrix=name))
    for key, questions in bench.analogy.items():
        analogy = analogy_accuracy(wv, questions, unit)
        metrics[key], oov[key] = analogy.metrics(), analogy.oov
    out.similarity[name], out.oov[name] = metrics, oov
    words = [w.lower() for w in p.probe_words] if p.lowercase else list(p.probe_words)
    out.neighbours[name] = nearest_neighbours(wv, words, p.neighbours, unit)


def _probe_data(prepared_dir: str | Path, split: str, index: dict[str, int]) -> ProbeData:
    """One prepared split as padded row ids of the given vocabulary."""
    frame = PreparedData(Path(prepared_dir)).split(split, columns=["words", "label"])
    return to_probe_data(frame["words"].tolist(), frame["label"].tolist(), index)


def _finetuned(model_dir: str | Path, prepared_dir: str | Path, names: list[str], out: Results) -> None:
    """The fine-tuned classifier on the test split."""
    test = PreparedData(Path(prepared_dir)).split("test", columns=["input_ids", "label"])
    y_true = test["label"].to_numpy()
    y_pred = predict_labels(model_dir, test["input_ids"].tolist(), len(names))
    out.classification["finetuned"] = classification_metrics(y_true, y_pred, names)
    out.confusion = confusion_matrix(y_true, y_pred, len(names))
    out.predictions = pd.DataFrame(
        {"actual": [names[i] for i in y_true], "predicted": [names[i] for i in y_pred]}
    )


def evaluate_all(
    p: EvaluateParams, embeddings_dir: str | Path, model_dir: str | Path, prepared_dir: str | Path
) -> Results:
    """Score every matrix (intrinsic + probe), a random matrix per vocabulary/shape, and the classifier."""
    bench = load_benchmarks(p)
    out = Results(
        entries=read_index(embeddings_dir),
        label_names=PreparedData(Path(prepared_dir)).label_names(),
        sims=list(bench.similarity),
        analogies=list(bench.analogy),
    )
    _finetuned(model_dir, prepared_dir, out.label_names, out)  # first: a bad model folder fails fast
    cfg = ProbeConfig(epochs=p.probe_epochs, batch_size=p.probe_batch_size, lr=p.probe_lr, seed=p.seed)
    probes: dict[str, dict] = {}
    probe_data: dict[tuple[str, ...], tuple[ProbeData, ProbeData]] = {}
    randoms: dict[tuple, tuple[str, dict]] = {}  # (vocabulary, dim) -> (first matrix, random-probe scores)
    for entry in tqdm(out.entries, desc="evaluate", unit="matrix", leave=False):
        wv = WordVectors.load(Path(embeddings_dir) / entry["name"])
        _intrinsic(wv, entry["name"], bench, p, out)
        words = tuple(wv.words)
        if words not in probe_data:  # matrices of one extract run share a vocabulary
            probe_data[words] = tuple(_probe_data(prepared_dir, s, wv.index) for s in ("train", "test"))
        train, test = probe_data[words]
        probes[entry["name"]] = run_probe(wv.weight, train, test, out.label_names, cfg)
        key = (words, wv.dim)
        if key not in randoms:  # the baseline depends only on the vocabulary and the shape
            noise = random_matrix(wv.weight, p.seed)
            randoms[key] = (entry["name"], run_probe(noise, train, test, out.label_names, cfg))
    for first, scores in randoms.values():
        probes["random" if len(randoms) == 1 else f"random_{first}"] = scores
    out.classification["probe"] = probes
    return out


def layer_table(entries: list[dict], similarity: dict) -> pd.DataFrame:
    """Spearman per (strategy, source, integer layer, benchmark), for the by-layer plot."""
    rows = []
    for e in entries:
        layer = e["layer"]
        if isinstance(layer, bool) or not isinstance(layer, int):
            continue
        for bench, values in similarity.get(e["name"], {}).items():
            rho = values.get("spearman")
            if rho is not None and not math.isnan(rho):
                rows.append(
                    {
                        "strategy": e["strategy"],
                        "source": e["source"],
                        "layer": layer,
                        "benchmark": bench,
                        "spearman": rho,
                        "series": f"{e['strategy']} / {e['source']}",
                    }
                )
    columns = ["strategy", "source", "layer", "benchmark", "spearman", "series"]
    return pd.DataFrame(rows, columns=columns).sort_values(["series", "benchmark", "layer"], kind="stable")


def neighbours_markdown(neighbours: dict) -> str:
    """Nearest neighbours as Markdown: one section per probe word, one row per matrix."""
    words = list(dict.fromkeys(w for per_matrix in neighbours.values() for w in per_matrix))
    lines = ["# Nearest neighbours (cosine)", ""]
    for word in words:
        lines += [f"## {word}", "", "| matrix | neighbours |", "|---|---|"]
        for matrix, per_matrix in neighbours.items():
            found = per_matrix.get(word)
            text = "(not in the vocabulary)" if found is None else ", ".join(f"{w} {s:.2f}" for w, s in found)
            lines.append(f"| {matrix} | {text} |")
        lines.append("")
    return "\n".join(lines)


def write_results(
    out: Results,
    metrics_dir: str | Path = "metrics",
    plots_dir: str | Path = "plots",
    dvclive_dir: str | Path | None = None,
) -> None:
    """Write plot data, PNGs, the readable files and, last, the metrics (each file atomically)."""
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    layers = layer_table(out.entries, out.similarity)
    with atomic_path(plots_dir / "scatter", is_dir=True) as tmp:
        for bench, frames in out.scatter.items():
            pd.concat(frames)[["matrix", "word1", "word2", "human", "cosine"]].to_csv(
                tmp / f"{bench}.csv", index=False
            )
    with atomic_path(plots_dir / "spearman_by_layer.csv") as tmp:
        layers.to_csv(tmp, index=False)
    with atomic_path(plots_dir / "confusion.csv") as tmp:
        out.predictions.to_csv(tmp, index=False)
    with atomic_path(plots_dir / "png", is_dir=True) as tmp:
        for bench, frames in out.scatter.items():
            rho = {m: v[bench]["spearman"] for m, v in out.similarity.items()}
            scatter_png(pd.concat(frames), bench, rho, tmp / f"scatter_{bench}.png")
        layers_png(layers, tmp / "spearman_by_layer.png")
        confusion_png(out.confusion, out.label_names, tmp / "confusion.png")
        probe_png(out.classification["probe"], tmp / "probe.png")
        if dvclive_dir is not None:
            training_png(Path(dvclive_dir), tmp / "training.png")
    report = build_report(
        out.similarity,
        out.classification,
        out.entries,
        out.sims,
        out.analogies,
        out.confusion,
        out.label_names,
    )
    write_text(metrics_dir / "report.md", report)
    write_text(metrics_dir / "neighbours.md", neighbours_markdown(out.neighbours))
    write_json(metrics_dir / "oov.json", out.oov)
    write_json(metrics_dir / "similarity.json", out.similarity)
    write_json(metrics_dir / "classification.json", out.classification)
