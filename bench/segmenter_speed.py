"""Word segmentation: the `tokenizers` segmenter (core/segmenter.py) against jieba (core/text.segment_text).

Measures, on the test split's texts and in batches of `--batch` (as a classifier reads raw text):
  - texts/s of jieba (one process; two processes through a multiprocessing pool: jieba is pure Python, a
    second thread would not run in parallel) and of `WordSegmenter.segment` on 1 and 2 Rust threads
    (RAYON_NUM_THREADS, each in its own process), and of `encode_batch` alone (the Rust part);
  - agreement with jieba: the fraction of jieba's tokens the segmenter reproduces (same characters at the
    same place), over all tokens and over word tokens only (punctuation left out);
for the prepared vocabulary and for it plus the words of jieba's own dict.txt.
Writes bench/results/segmenter_speed.{md,json}.

The texts and vocabulary are data/prepared's when it exists; otherwise they are recomputed from
params.yaml's `prepare` section with prepare's own functions (read, clean, sample, split, segment the
training split, count), which gives the same test split and vocabulary without the tokenizer step.

    python bench/segmenter_speed.py                          # the default data
    python bench/segmenter_speed.py --texts 100 --seconds 0.1 --jieba-dict ''   # smoke test
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jieba
import tokenizers

from embedforge.core.params import PrepareParams, load_params
from embedforge.core.prepared import PreparedData
from embedforge.core.segmenter import WordSegmenter
from embedforge.core.text import build_vocab, is_word, segment, segment_text
from embedforge.prepare.clean import CleanReport, clean, read_table, sample_rows, stratified_split

ROOT = Path(__file__).resolve().parents[1]
JIEBA_DICT = Path(jieba.__file__).parent / "dict.txt"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def recomputed_split(p: PrepareParams) -> tuple[list[str], list[str]]:
    """prepare's test texts and vocabulary words, from the raw table (a random split only)."""
    if p.input is None:
        raise SystemExit(
            "segmenter_speed: no data/prepared and prepare.input is null; run `dvc repro prepare`"
        )
    df = sample_rows(
        clean(read_table(p.input, p.text_column, p.label_column, p.format), CleanReport()),
        p.sample_rows,
        p.seed,
    )
    ratios = {"train": p.train_ratio, "validation": p.validation_ratio, "test": p.test_ratio}
    splits = stratified_split(df, ratios, p.seed)
    vocab = build_vocab(segment(splits["train"]["text"].tolist(), p.language), p.min_count, p.max_vocab_size)
    return splits["test"]["text"].tolist(), vocab["word"].tolist()


def load_data(prepared: Path, params: Path) -> tuple[list[str], list[str], str]:
    """Test texts, vocabulary words, and where they came from."""
    data = PreparedData(prepared)
    if data.split_path("test").is_file() and data.vocab_path.is_file():
        return data.split("test", ["text"])["text"].tolist(), data.vocab()["word"].tolist(), str(prepared)
    texts, words = recomputed_split(load_params(params).prepare)
    return texts, words, "recomputed from params.yaml's prepare section (no data/prepared)"


def jieba_words(path: Path) -> list[str]:
    """The words of a jieba dictionary file (`word freq [tag]` lines), lower-cased."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(line.split(" ", 1)[0].lower() for line in lines if line.strip()))


def spans(tokens: Sequence[str]) -> set[tuple[int, int]]:
    """Each token's (start, end) in the concatenation of the tokens (whitespace is in neither)."""
    out, start = set(), 0
    for t in tokens:
        out.add((start, start + len(t)))
        start += len(t)
    return out


def agreement(reference: list[list[str]], ours: list[list[str]]) -> dict[str, float]:
    """Fraction of the reference's tokens (all, and words only) that `ours` has at the same place."""
    hit = total = word_hit = word_total = 0
    for ref, got in zip(reference, ours, strict=True):
        mine = spans(got)
        start = 0
        for t in ref:
            span = (start, start + len(t))
            start += len(t)
            found = span in mine and "".join(ref) == "".join(got)
            hit, total = hit + found, total + 1
            if is_word(t):
                word_hit, word_total = word_hit + found, word_total + 1
    return {"tokens": hit / total, "words": word_hit / word_total}


def batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def texts_per_s(run: Callable[[list[str]], object], texts: list[str], size: int, seconds: float) -> float:
    """Best of 3 rounds; a round repeats whole passes over the texts for at least `seconds`."""
    parts = batches(texts, size)
    for part in parts:  # warm-up: caches, dictionary loading
        run(part)
    best = 0.0
    for _ in range(3):
        passes, start = 0, time.perf_counter()
        while True:
            for part in parts:
                run(part)
            passes += 1
            if (elapsed := time.perf_counter() - start) >= seconds:
                break
        best = max(best, passes * len(texts) / elapsed)
    return best


def _jieba_batch(texts: list[str]) -> list[list[str]]:
    return [segment_text(t, "zh") for t in texts]


def worker(kind: str, threads: int, folder: Path, size: int, seconds: float) -> float:
    """One measurement, in this process (its thread settings are set before anything starts)."""
    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    if kind == "jieba":
        if threads == 1:
            return texts_per_s(_jieba_batch, texts, size, seconds)
        with multiprocessing.get_context("fork").Pool(threads) as pool:
            pool.map(_jieba_batch, [texts[:10]] * threads)  # each process loads the dictionary first
            return texts_per_s(
                lambda b: pool.map(_jieba_batch, batches(b, -(-len(b) // threads))), texts, size, seconds
            )
    seg = WordSegmenter.load(folder / f"{kind.split(':')[1]}.json")
    run = seg.segment if kind.startswith("segment") else seg.encode
    return texts_per_s(run, texts, size, seconds)


def measure(kind: str, threads: int, folder: Path, size: int, seconds: float) -> float:
    """`worker` in a fresh process with RAYON_NUM_THREADS set: the Rust thread pool reads it once."""
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"}
    args = [sys.executable, __file__, "--worker", kind, "--threads", str(threads), "--data", str(folder)]
    args += ["--batch", str(size), "--seconds", str(seconds)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def table(result: dict) -> str:
    """The markdown table of the results."""
    head = [
        f"Machine: {result['cpu']}, {result['cpus']} CPUs; tokenizers {result['tokenizers']}, "
        f"jieba {result['jieba']}; {result['texts']} texts ({result['source']}), "
        f"batches of {result['batch']}.",
        "",
        "| segmenter | vocabulary | texts/s, 1 thread | texts/s, 2 threads | vs jieba (2) | "
        "jieba tokens reproduced | jieba words reproduced |",
        "|---|---|---|---|---|---|---|",
    ]
    base = result["rows"][0]["texts_per_s"]["2"]
    rows = []
    for r in result["rows"]:
        rate = r["texts_per_s"]
        agree = r.get("agreement")
        cells = f"{agree['tokens']:.3f} | {agree['words']:.3f}" if agree else "— | —"
        rows.append(
            f"| {r['name']} | {r['vocabulary']} | {rate['1']:,.0f} | {rate['2']:,.0f} | "
            f"{rate['2'] / base:.1f}x | {cells} |"
        )
    return "\n".join(head + rows) + "\n"


def run(a: argparse.Namespace) -> dict:
    """Every measurement; returns the result document."""
    texts, words, source = load_data(a.prepared, a.params)
    texts = texts[: a.texts] if a.texts else texts
    vocabularies = {"prepared": (words, f"prepared, {len(words):,} words")}
    if a.jieba_dict:
        both = list(dict.fromkeys([*words, *jieba_words(Path(a.jieba_dict))]))
        vocabularies["jieba"] = (both, f"prepared + jieba dict.txt, {len(both):,} words")
    reference = [segment_text(t, "zh") for t in texts]
    result: dict = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "tokenizers": tokenizers.__version__,
        "jieba": jieba.__version__,
        "texts": len(texts),
        "source": source,
        "batch": a.batch,
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        jieba_rate = {str(n): measure("jieba", n, folder, a.batch, a.seconds) for n in (1, 2)}
        result["rows"].append(
            {
                "name": "jieba (`segment_text`, HMM); 2 = two processes",
                "vocabulary": "its dict.txt",
                "texts_per_s": jieba_rate,
            }
        )
        for key, (vocab, label) in vocabularies.items():
            seg = WordSegmenter.build(vocab, "zh")
            seg.save(folder / f"{key}.json")
            for kind, name in (("segment", "`WordSegmenter.segment`"), ("encode", "`encode_batch` only")):
                row = {
                    "name": name,
                    "vocabulary": label,
                    "texts_per_s": {
                        str(n): measure(f"{kind}:{key}", n, folder, a.batch, a.seconds) for n in (1, 2)
                    },
                }
                if kind == "segment":
                    row["agreement"] = agreement(reference, seg.segment(texts))
                result["rows"].append(row)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepared", type=Path, default=ROOT / "data/prepared")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--jieba-dict", default=str(JIEBA_DICT), help="'' leaves jieba's words out")
    parser.add_argument("--texts", type=int, default=0, help="the first N test texts (0 = all)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=2.0, help="least time a timed round runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/segmenter_speed")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.worker:
        print(worker(a.worker, a.threads, a.data, a.batch, a.seconds))
        return
    result = run(a)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    a.out.with_suffix(".md").write_text(table(result), encoding="utf-8")
    print(table(result))


if __name__ == "__main__":
    main()
