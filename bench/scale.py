"""Scale: `aggregate` over 10k / 100k (/ 1M) corpus sentences, `decontext` on 10k / 100k words, 1 vs 2 ranks.

Corpus rule: every text of ../shared/data/classification/zh/*.csv (column text_a, review, sentence or text;
files in name order) and data/raw/waimai_10k.csv, split after 。！？!? and at line breaks, pieces of at least
2 characters kept in order; that list (about 152k sentences) is repeated from its start until N sentences.
Written as one plain-text file, read through `extract.corpus` (normalising, segmenting with jieba, windows).
Vocabulary of the aggregate runs: counted in the corpus (min_count 2, at most --vocab words), as
`extract.vocab_from: corpus` does. Word list of the decontext runs: jieba's own dict.txt in frequency order,
the top --words (10k and 100k), encoded with the default template alone at layers 2-4 (`SCALE`: the
default until the 5-template ensemble, whose decontext is 5 such passes; the rows stay comparable).
Each measurement runs in its own process (peak RSS is per process) on the bundled m3e-small, fp32 CPU, and
measures the fp32 matmul peak in that process. Writes bench/results/scale.{md,json}.

    python bench/scale.py                                  # 10k and 100k sentences, 10k/100k words, 1 vs 2
    python bench/scale.py --sizes 1000000                  # the 1M-sentence pass (hours on 2 cores)
    python bench/scale.py --sizes '' --update              # decontext only; keep the other rows of scale.json
    python bench/scale.py --sizes '' --words 100000 --update   # one decontext row; the 10k row is kept
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent.parent / "shared" / "data" / "classification" / "zh"
SPLIT = re.compile(r"(?<=[。！？!?])|\n")
TEXT_COLUMNS = ("text_a", "review", "sentence", "text")
SCALE = {"layers": [2, 3, 4], "extra_templates": []}  # the ExtractParams every row was measured with
BUDGET = 8192  # ExtractParams().token_budget: every row before --token-budget was measured at it


def source_sentences(shared: Path) -> list[str]:
    """The corpus rule of the module docstring, before repetition."""
    files = [*sorted(shared.glob("*.csv")), ROOT / "data/raw/waimai_10k.csv"]
    out = []
    for path in files:
        df = pd.read_csv(path)
        column = next(c for c in TEXT_COLUMNS if c in df.columns)
        for text in df[column].dropna().astype(str):
            out += [s.strip() for s in SPLIT.split(text) if len(s.strip()) >= 2]
    return out


def write_corpus(path: Path, sentences: list[str], n: int) -> Path:
    """`n` sentences, the source list repeated from its start."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(sentences[i % len(sentences)].replace("\n", " ") + "\n")
    return path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_aggregate(corpus: Path, vocab: int, out: Path, token_budget: int) -> dict:
    """One process (or one torchrun rank): count the vocabulary, then the aggregate corpus pass."""
    from extract_throughput import Counting
    from peak import matmul_peak
    from safetensors.torch import save_file

    from embedforge.core.models import resolve_source
    from embedforge.core.params import ExtractParams
    from embedforge.extract.aggregate import corpus_pass
    from embedforge.extract.corpus import CorpusFiles
    from embedforge.extract.shard import current_shard
    from embedforge.extract.source import SourcePass
    from embedforge.extract.words import corpus_vocabulary

    shard = current_shard()
    peak = matmul_peak()
    # 10 windows in 10k: 5 per rank of 2
    params = ExtractParams(**SCALE, corpus=str(corpus), corpus_window=1024, token_budget=token_budget)
    stream = CorpusFiles(str(corpus), window=params.corpus_window)
    start = time.perf_counter()
    words = corpus_vocabulary((list(s) for w in shard.mine(stream) for s in w), 2, vocab, shard=shard).words
    vocab_s = time.perf_counter() - start
    rows = stream.rows()
    encoder = Counting(resolve_source("pkg:embedding/m3e-small"))
    encoder.reset()
    src = SourcePass(
        encoder, words, params, corpus=stream, corpus_rows=rows, shard=shard, progress=shard.main
    )
    start = time.perf_counter()
    acc = corpus_pass(src)
    seconds = time.perf_counter() - start
    if shard.main:
        save_file({"means": acc.means().contiguous()}, str(out))
    return {
        "rank": shard.rank,
        "world": shard.world,
        "threads": torch.get_num_threads(),
        "sentences": rows,
        "words": len(words),
        "vocab_count_s": round(vocab_s, 1),
        "seconds": round(seconds, 1),
        "sentences_per_s": round(rows / seconds, 1),
        "tokens": encoder.tokens,
        "gflops": round(encoder.flops / seconds / 1e9, 1),
        "peak_gflops": round(peak, 1),
        "token_budget": token_budget,
        "accumulator_mb": round(acc.sums.numel() * 4 / 2**20, 1),
        "rss_mb": round(rss_mb(), 1),
    }


def one_decontext(words_n: int) -> dict:
    """`decontext` (one template, layers 2-4: `SCALE`) on the first `words_n` words of jieba's dict.txt by
    frequency; RSS before the pass (model loaded) and the peak, to show the pass holds one batch of
    activations plus its [groups, V, d] result."""
    import jieba
    from extract_throughput import Counting
    from peak import matmul_peak

    from embedforge.core.models import resolve_source
    from embedforge.core.params import ExtractParams
    from embedforge.extract import extract_matrices

    table = pd.read_csv(
        Path(jieba.__file__).parent / "dict.txt", sep=" ", header=None, names=["word", "freq", "tag"]
    )
    words = table.sort_values("freq", ascending=False, kind="stable")["word"].astype(str).str.lower()
    words = list(dict.fromkeys(words))[:words_n]
    peak = matmul_peak()
    encoder = Counting(resolve_source("pkg:embedding/m3e-small"))
    encoder.reset()
    rss_before = rss_mb()
    start = time.perf_counter()
    out = extract_matrices(encoder, words, ["decontext"], ExtractParams(**SCALE), progress=False)
    seconds = time.perf_counter() - start
    return {
        "words": len(words),
        "matrices": len(out),
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "words_per_s": round(len(words) / seconds, 1),
        "tokens": encoder.tokens,
        "gflops": round(encoder.flops / seconds / 1e9, 1),
        "peak_gflops": round(peak, 1),
        "result_mb": round(sum(m.wv.weight.numel() for m in out) * 4 / 2**20, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_mb": round(rss_mb(), 1),
    }


def child(args: list[str], nproc: int = 1, threads: int = 0) -> list[dict]:
    """Run this script in one process (or `nproc` torchrun ranks); every rank's JSON result."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{BENCH}", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(Path(__file__))]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        cmd.append(str(Path(__file__)))
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return [
        json.loads(line[len("RESULT ") :]) for line in done.stdout.splitlines() if line.startswith("RESULT ")
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="corpus sizes in sentences")
    ap.add_argument("--vocab", type=int, default=100000, help="most words counted in the corpus")
    ap.add_argument(
        "--token-budget",
        type=int,
        default=BUDGET,
        help="aggregate: extract.token_budget (padded tokens a batch)",
    )
    ap.add_argument("--words", default="10000,100000", help="decontext: top words of jieba's dict.txt")
    ap.add_argument("--update", action="store_true", help="keep the rows of the existing results JSON")
    ap.add_argument(
        "--torchrun-size", type=int, default=10000, help="1 vs 2 processes on this corpus (0: skip)"
    )
    ap.add_argument("--work", default="/tmp/embedforge-scale")
    ap.add_argument("--out", default=str(BENCH / "results" / "scale"))
    ap.add_argument("--one", choices=["aggregate", "decontext"], help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one == "aggregate":
        print(
            "RESULT "
            + json.dumps(one_aggregate(Path(args.corpus), args.vocab, Path(args.result), args.token_budget))
        )
        return
    if args.one == "decontext":
        print("RESULT " + json.dumps(one_decontext(int(args.words))))
        return

    work = Path(args.work)
    source = source_sentences(SHARED)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load_average_at_start": os.getloadavg(),
        "source_sentences": len(source),
        "aggregate": [],
    }
    if args.update:  # the kept rows keep the machine and load lines of their run
        results = json.loads(Path(args.out + ".json").read_text(encoding="utf-8"))

    def save() -> None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        Path(args.out + ".md").write_text(report(results), encoding="utf-8")

    sizes = [int(s) for s in args.sizes.split(",") if s]
    for n in sizes:
        corpus = write_corpus(work / f"corpus-{n}.txt", source, n)
        agg = ["--one", "aggregate", "--corpus", str(corpus), "--vocab", str(args.vocab)]
        agg += ["--token-budget", str(args.token_budget)]
        (res,) = child([*agg, "--result", str(work / f"one-{n}.safetensors")])
        results["aggregate"].append(res)
        save()
        if n == args.torchrun_size:
            ranks = child([*agg, "--result", str(work / f"two-{n}.safetensors")], nproc=2, threads=1)
            from safetensors.torch import load_file

            one = load_file(work / f"one-{n}.safetensors")["means"]
            two = load_file(work / f"two-{n}.safetensors")["means"]
            results["torchrun"] = {
                "one_process": res,
                "ranks": ranks,
                "max_abs_diff": float((one - two).abs().max()),
                "equal_to_1e-5": bool(torch.allclose(one, two, rtol=1e-5, atol=1e-5)),
            }
            save()
    if word_counts := [int(w) for w in args.words.split(",") if w]:
        # --update replaces the rows of the word counts run now and keeps the others
        results["decontext"] = [r for r in results.get("decontext", []) if r["words"] not in word_counts]
        for n in word_counts:
            load = os.getloadavg()[0]
            (res,) = child(["--one", "decontext", "--words", str(n)])
            results["decontext"].append(res | {"load_average": [load, os.getloadavg()[0]]})
            results["decontext"].sort(key=lambda r: r["words"])
            save()
    if sizes:
        results["load_average_at_end"] = os.getloadavg()
    save()
    print(report(results))


def report(r: dict) -> str:
    """The markdown tables of bench/results/scale.md."""
    lines = [
        "# Scale (bench/scale.py)",
        "",
        f"Machine: {r['machine']}; load average at start {r['load_average_at_start'][0]:.1f}"
        + (f", at end {r['load_average_at_end'][0]:.1f}" if "load_average_at_end" in r else "")
        + " (the 2 cores are shared with other jobs: the absolute times are pessimistic).",
        f"Corpus: {r['source_sentences']} source sentences, repeated to size; model m3e-small, fp32, CPU.",
        "",
        "## aggregate",
        "",
        "| sentences | words | vocab count s | pass s | sentences/s | tokens | GFLOP/s | peak GFLOP/s "
        "| % of peak | token budget | accumulators MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r["aggregate"]:
        share = f"{100 * a['gflops'] / a['peak_gflops']:.0f}%"
        lines.append(
            f"| {a['sentences']} | {a['words']} | {a['vocab_count_s']} | {a['seconds']} "
            f"| {a['sentences_per_s']} | {a['tokens']} | {a['gflops']} | {a['peak_gflops']} | {share} "
            f"| {a.get('token_budget', BUDGET)} | {a['accumulator_mb']} | {a['rss_mb']} |"
        )
    if d := r.get("decontext"):
        lines += [
            "",
            "## decontext (one template 这个词是“{w}”。 and layers [2, 3, 4], one matrix)",
            "",
            "Top words of jieba's dict.txt by frequency; one process, "
            f"{d[0]['threads']} threads; load average before/after each run in the last column.",
            "",
            "| words | s | words/s | tokens | GFLOP/s | peak GFLOP/s | % of peak | result MB "
            "| RSS before MB | peak RSS MB | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in d:
            load = "/".join(f"{v:.1f}" for v in x["load_average"])
            lines.append(
                f"| {x['words']} | {x['seconds']} | {x['words_per_s']} | {x['tokens']} | {x['gflops']} "
                f"| {x['peak_gflops']} | {100 * x['gflops'] / x['peak_gflops']:.0f}% | {x['result_mb']} "
                f"| {x['rss_before_mb']} | {x['rss_mb']} | {load} |"
            )
    if t := r.get("torchrun"):
        one = t["one_process"]
        lines += [
            "",
            "## 1 vs 2 torchrun processes, same total threads (aggregate pass)",
            "",
            "| processes | threads each | pass s (rank 0) | peak RSS MB per process |",
            "|---|---|---|---|",
            f"| 1 | {one['threads']} | {one['seconds']} | {one['rss_mb']} |",
            f"| 2 | {t['ranks'][0]['threads']} | {max(x['seconds'] for x in t['ranks'])} "
            f"| {', '.join(str(x['rss_mb']) for x in t['ranks'])} |",
            "",
            f"Same matrix: max |1 - 2 processes| = {t['max_abs_diff']:.2e} "
            f"(allclose 1e-5: {t['equal_to_1e-5']}).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
