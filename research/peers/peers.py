"""The peer row of issue 10: model2vec's `distill` of the same encoder, scored by the project's evaluator.

model2vec 0.10 (`pip install -e .[peers]`; its `distill` also needs the `model2vec[distill]` extra,
`skeletoken`) distils the encoder with its defaults (PCA to 256 dimensions, SIF weighting, float16),
offline from a local folder. Its `StaticModel` then encodes the same vocabulary as the default run
(the prepared corpus words + `extract.extra_words`; only the benchmark words without
`--prepared`), and `embedforge.evaluate.similarity` scores the vectors exactly as the `evaluate` stage
scores a matrix: Spearman per similarity set (+ multisimlex_zh's dev/held halves, the selection rule's
split), 3CosAdd accuracy per analogy set. Writes bench/results/peers.{md,json}; `--word2vec FILE` also
writes the vectors as word2vec text, which `extract.vector_files` turns into a `vectors_*` matrix that
the evaluate report then shows beside the recommended matrix.

    python bench/peers.py                                  # models/base, data/prepared
    python bench/peers.py --model pkg:embedding/m3e-small --prepared none
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from embedforge.core.benchmarks import benchmark_name, read_analogies, read_pairs
from embedforge.core.embedding import WordVectors
from embedforge.core.models import resolve_source
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.selection import dev_half, held_half
from embedforge.evaluate.similarity import analogy_accuracy, word_similarity
from embedforge.extract.words import build_vocabulary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL2VEC = "0.10.0"  # the pinned peer version (pyproject extra `peers`)


def vocabulary(prepared: str) -> tuple[list[str], str]:
    """The default run's vocabulary (prepared words + extra_words); without prepared data, the extra words."""
    extra = [ROOT / f for f in load_params(ROOT / "params.yaml").extract.extra_words]
    if prepared != "none" and (ROOT / prepared / "vocab.parquet").is_file():
        vocab = build_vocabulary(PreparedData(ROOT / prepared), extra)
        return vocab.words, f"{prepared} vocabulary + extract.extra_words"
    from embedforge.core.benchmarks import benchmark_words

    words = list(dict.fromkeys(w for f in extra for w in benchmark_words(f, lowercase=True)))
    return words, "extract.extra_words (the benchmark words)"


def distil(model_dir: Path, words: list[str]) -> tuple[WordVectors, float]:
    """model2vec `distill` with its defaults, then its StaticModel's vectors for `words`."""
    import model2vec
    from model2vec.distill import distill

    if model2vec.__version__ != MODEL2VEC:
        raise SystemExit(f"model2vec {model2vec.__version__} installed; the peer is pinned to {MODEL2VEC}")
    start = time.perf_counter()
    static = distill(model_name=str(model_dir))
    seconds = time.perf_counter() - start
    vectors = torch.as_tensor(static.encode(words), dtype=torch.float32)
    return WordVectors(words, vectors), seconds


def score(wv: WordVectors) -> dict[str, dict[str, float | None]]:
    """The evaluate stage's numbers for the default params' benchmark files."""
    p = load_params(ROOT / "params.yaml").evaluate
    out: dict[str, dict[str, float | None]] = {}
    for f in p.similarity_files:
        pairs = read_pairs(ROOT / f, p.lowercase)
        out[benchmark_name(f)] = word_similarity(wv, pairs).metrics()
        if p.selection_set == f:
            for half, picked in (("dev", dev_half(pairs)), ("held", held_half(pairs))):
                out[f"{benchmark_name(f)}:{half}"] = word_similarity(wv, picked).metrics()
    for f in p.analogy_files:
        out[benchmark_name(f)] = analogy_accuracy(wv, read_analogies(ROOT / f, p.lowercase)).metrics()
    return out


def report(result: dict) -> str:
    """bench/results/peers.md."""
    lines = [
        "# Peer: model2vec `distill` of the same encoder (issue 10)",
        "",
        f"Written by `bench/peers.py`. model2vec {result['model2vec']} `distill` with its defaults "
        f"(PCA {result['dim']} dimensions, SIF weighting, float16) of `{result['model']}`, offline; words "
        f"encoded by its `StaticModel` ({result['words']} words: {result['vocabulary']}); scored by "
        "`embedforge.evaluate.similarity`, as the evaluate stage scores a matrix (Spearman ρ; analogy: "
        "3CosAdd accuracy over this vocabulary).",
        "",
        "| set | ρ / acc | coverage |",
        "|---|---|---|",
    ]
    for name, m in result["scores"].items():
        value = m.get("spearman", m.get("accuracy"))
        lines.append(f"| {name} | {'–' if value is None else f'{value:.3f}'} | {m['coverage']:.0%} |")
    lines += [
        "",
        f"Distillation took {result['distill_seconds']:.1f} s on {result['machine']}.",
    ]
    return "\n".join(lines) + "\n"


def model_source(spec: str, model_dir: Path) -> str:
    """The model source the peer was computed from: a `pkg:` spec itself, else what the model stage
    recorded in the folder (embedforge_source.json), else the folder."""
    recorded = model_dir / "embedforge_source.json"
    if spec.startswith("pkg:") or not recorded.is_file():
        return spec
    return str(json.loads(recorded.read_text(encoding="utf-8"))["source"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/base", help="a model folder or pkg:<package>/<folder>")
    ap.add_argument("--prepared", default="data/prepared", help="prepared data folder, or 'none'")
    ap.add_argument("--word2vec", help="also write the peer's vectors as word2vec text here")
    ap.add_argument("--out", default=str(RESULTS / "peers"), help="output stem (.md, .json)")
    args = ap.parse_args()
    spec = args.model if args.model.startswith("pkg:") else str(ROOT / args.model)
    model_dir = resolve_source(spec)
    words, where = vocabulary(args.prepared)
    wv, seconds = distil(model_dir, words)
    result = {
        "model2vec": MODEL2VEC,
        "method": f"model2vec {MODEL2VEC} distill",
        "model": args.model,
        "source": model_source(spec, model_dir),  # what evaluate.peer_file compares with model.source
        "words": len(words),
        "vocabulary": where,
        "dim": wv.dim,
        "distill_seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        "scores": score(wv),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    out.with_suffix(".md").write_text(report(result), encoding="utf-8")
    if args.word2vec:
        wv.save_word2vec(args.word2vec)
    print(f"peers: {', '.join(f'{k} {v}' for k, v in result['scores'].items())} -> {out}.md")


if __name__ == "__main__":
    main()
