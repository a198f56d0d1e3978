"""Extraction throughput: the `aggregate` corpus pass, and batched word encoding vs. the tutorial's loop.

Measures, in one run on the default data and model:
  - aggregate: real tokens/s of the streaming corpus pass (tokenizing, selecting contexts, forward,
    pooling, index-add), and its model FLOP/s as a fraction of this machine's fp32 matmul peak;
  - words: the time to produce a matrix for the whole vocabulary with the stage's batched pass
    (cls + decontext at every layer, one forward) vs. the tutorial's way, one forward per word at
    batch 1 taking [CLS] (timed on a sample of words, extrapolated to the vocabulary);
  - peak RSS of the process.
Writes bench/results/extract_throughput.{md,json}.

    python bench/extract_throughput.py                                   # full default run
    python bench/extract_throughput.py --sentences 300 --tutorial-words 100 --words 500   # smoke test
    python bench/extract_throughput.py --device cuda                     # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from peak import matmul_peak  # bench/peak.py: bench/ is on sys.path when run as a script

from embedforge.core.encoder import Encoder
from embedforge.core.params import ExtractParams
from embedforge.core.prepared import PreparedData
from embedforge.extract import SourcePass, Vocabulary, build_vocabulary, extract_matrices
from embedforge.extract.aggregate import corpus_pass


class Counting(Encoder):
    """An Encoder that records real tokens and model FLOPs of every forward batch."""

    def reset(self) -> None:
        self.tokens, self.padded, self.flops = 0, 0, 0.0

    def hidden(self, ids):  # noqa: ANN001, ANN201
        linear = sum(m.weight.numel() for m in self.model.encoder.modules() if isinstance(m, torch.nn.Linear))
        self.tokens += sum(len(x) for x in ids)
        self.padded += len(ids) * max(len(x) for x in ids)
        # useful FLOPs only (padding is waste): linear layers 2 per weight per real token; attention
        # QK^T and AV, 2 x 2 x length^2 x d per layer
        lengths = [len(x) for x in ids]
        self.flops += 2 * linear * sum(lengths) + 4 * sum(n * n for n in lengths) * self.dim * self.depth
        return super().hidden(ids)


def tutorial_seconds_per_word(encoder: Encoder, words: list[str]) -> float:
    """The tutorial: for each word, tokenizer(word) -> model(batch of 1) -> last_hidden_state[0, 0]."""
    rows = []

    def forward(word: str) -> torch.Tensor:
        inputs = encoder.tokenizer(word, return_tensors="pt").to(encoder.device)
        return encoder.model(**inputs).last_hidden_state[0, 0].cpu()

    with torch.no_grad():
        forward(words[0])  # warm-up, as for the stage
        start = time.perf_counter()
        for word in words:
            rows.append(forward(word))
    return (time.perf_counter() - start) / len(words)


def corpus_slice(prepared: PreparedData, sentences: int) -> tuple[Iterator[list[list[str]]], int]:
    """The sentence windows of the first `sentences` training rows (all when 0), and their number."""
    rows = prepared.rows("train")
    total = min(sentences, rows) if sentences else rows

    def windows() -> Iterator[list[list[str]]]:
        left = total
        for window in prepared.sentences("train"):
            if left <= 0:
                return
            yield window[:left]
            left -= len(window)

    return windows(), total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--sentences", type=int, default=0, help="corpus sentences for aggregate (0 = all)")
    ap.add_argument("--words", type=int, default=0, help="vocabulary words for the word pass (0 = all)")
    ap.add_argument("--tutorial-words", type=int, default=500, help="words timed for the tutorial loop")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:<index> or auto")
    ap.add_argument("--peak-size", type=int, default=2048, help="matrix size of the matmul-peak probe")
    ap.add_argument("--out", default="bench/results/extract_throughput")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    # the layer study's settings (every layer, the bare word: params/study.yaml), as measured so far
    params = ExtractParams(layers="all", template=None, extra_templates=[], positions="word", center=False)
    prepared = PreparedData(Path(args.prepared))
    vocab = build_vocabulary(prepared, params.extra_words)
    if args.words:
        vocab = Vocabulary(vocab.words[: args.words], vocab.counts[: args.words])
    encoder = Counting(args.model, args.device)
    peak = matmul_peak(args.peak_size)
    corpus, sentences = corpus_slice(prepared, args.sentences)
    src = SourcePass(
        encoder,
        vocab.words,
        params,
        counts=vocab.counts,
        corpus=corpus,
        corpus_rows=sentences,
        progress=False,
    )
    encoder.reset()
    start = time.perf_counter()
    corpus_pass(src)  # the aggregate strategy's corpus pass alone (no fallback words)
    agg_s = time.perf_counter() - start
    agg = {"tokens": encoder.tokens, "padded": encoder.padded, "flops": encoder.flops, "sentences": sentences}

    encoder.reset()
    start = time.perf_counter()
    extract_matrices(encoder, vocab.words, ["cls", "decontext"], params, progress=False)  # one forward
    words_s = time.perf_counter() - start
    sample = vocab.words[:: max(1, len(vocab) // args.tutorial_words)][: args.tutorial_words]
    tutorial_s = tutorial_seconds_per_word(encoder, sample) * len(vocab)

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": str(encoder.device),
        "model": args.model,
        "matmul_peak_gflops": round(peak, 1),
        "aggregate": {
            "sentences": agg["sentences"],
            "seconds": round(agg_s, 2),
            "tokens": agg["tokens"],
            "padding_fraction": round(1 - agg["tokens"] / max(agg["padded"], 1), 4),
            "tokens_per_s": round(agg["tokens"] / agg_s, 1),
            "gflops": round(agg["flops"] / agg_s / 1e9, 1),
            "fraction_of_peak": round(agg["flops"] / agg_s / 1e9 / peak, 3),
        },
        "words": {
            "vocabulary": len(vocab),
            "stage_seconds": round(words_s, 4),
            "tutorial_seconds": round(tutorial_s, 2),
            "tutorial_timed_words": len(sample),
            "speedup": round(tutorial_s / words_s, 1),
            "fraction_of_peak": round(encoder.flops / words_s / 1e9 / peak, 3),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    a, w = result["aggregate"], result["words"]
    table = "\n".join(
        [
            f"Machine: {result['machine']}, device {result['device']}; fp32 matmul peak {peak:.0f} GFLOP/s "
            f"(CPU); model {args.model}.",
            "",
            f"Vocabulary: {w['vocabulary']} words (prepared vocabulary + default extra words).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| aggregate corpus pass | {a['sentences']} sentences, {a['tokens']} tokens, {a['seconds']} s |",
            f"| aggregate throughput | {a['tokens_per_s']:.0f} tokens/s |",
            f"| aggregate model FLOP/s | {a['gflops']} GFLOP/s = {a['fraction_of_peak']:.0%} of peak |",
            f"| aggregate padding | {a['padding_fraction']:.1%} of batch positions |",
            f"| word matrix, stage (cls + decontext, all layers) | {w['stage_seconds']} s |",
            f"| word matrix, tutorial loop (batch 1, [CLS]) | {w['tutorial_seconds']} s "
            f"(timed on {w['tutorial_timed_words']} words) |",
            f"| speed-up over the tutorial | {w['speedup']}x |",
            f"| peak RSS | {result['peak_rss_mb']} MB |",
        ]
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
