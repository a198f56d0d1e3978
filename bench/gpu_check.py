"""GPU check: extract on the bundled model on `cuda` and on `cpu`; the matrices must agree to float tolerance.

Runs cls, decontext (every layer) and aggregate on --words vocabulary words and --sentences waimai reviews,
once per device, and prints the timings and the largest difference. Takes a few minutes on a GPU box
(most of it the CPU run); where no CUDA device exists it prints why and exits 0.

    python bench/gpu_check.py                        # defaults: 2000 words, 2000 sentences
    python bench/gpu_check.py --words 500 --sentences 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from embedforge.core.encoder import Encoder
from embedforge.core.models import resolve_source
from embedforge.core.params import ExtractParams
from embedforge.extract import extract_matrices
from embedforge.prepare.clean import normalize_text
from embedforge.prepare.segment import build_vocab, segment_text

# fp32 on both devices (no autocast): differences come from kernel summation order only
RTOL, ATOL, MIN_COSINE = 1e-3, 1e-4, 0.9999


def corpus(path: Path, sentences: int) -> list[list[str]]:
    """The first `sentences` reviews, normalised and segmented as `prepare` does."""
    texts = pd.read_csv(path)["review"].astype(str).head(sentences)
    return [segment_text(normalize_text(t), "zh") for t in texts]


def run(model: Path, device: str, words: list[str], sentences: list[list[str]]) -> tuple[dict, float]:
    """Every matrix of the check on one device, and the seconds it took (model load excluded)."""
    encoder = Encoder(model, device)
    cfg = ExtractParams(strategies=["cls", "decontext", "aggregate"], extra_words=[], corpus_window=1024)
    windows = [sentences[i : i + cfg.corpus_window] for i in range(0, len(sentences), cfg.corpus_window)]
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = extract_matrices(encoder, words, cfg.strategies, cfg, corpus=windows, progress=False)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return {m.name: m.wv.weight for m in out}, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pkg:embedding/m3e-small")
    ap.add_argument("--data", default="data/raw/waimai_10k.csv")
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--device", default="cuda", help="the device checked against cpu (cpu: a dry run)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: skipped: no CUDA device on this machine (torch.cuda.is_available() is False)")
        return 0
    model = resolve_source(args.model)
    sentences = corpus(Path(args.data), args.sentences)
    words = build_vocab(sentences, min_count=1, max_size=args.words)["word"].tolist()
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
    print(f"gpu_check: {name}; {len(words)} words, {len(sentences)} sentences")
    gpu, gpu_s = run(model, args.device, words, sentences)
    cpu, cpu_s = run(model, "cpu", words, sentences)
    worst_diff, worst_cos, failed = 0.0, 1.0, []
    for name, ref in cpu.items():
        got = gpu[name]
        worst_diff = max(worst_diff, float((got - ref).abs().max()))
        cos = torch.nn.functional.cosine_similarity(got, ref, dim=1)
        nonzero = ref.norm(dim=1) > 0
        worst_cos = min(worst_cos, float(cos[nonzero].min()))
        if not torch.allclose(got, ref, rtol=RTOL, atol=ATOL) and float(cos[nonzero].min()) < MIN_COSINE:
            failed.append(name)
    print(f"gpu_check: cpu {cpu_s:.1f} s, {args.device} {gpu_s:.1f} s ({cpu_s / gpu_s:.1f}x)")
    diff = f"max |{args.device} - cpu| = {worst_diff:.2e}; min row cosine {worst_cos:.6f}"
    print(f"gpu_check: {len(cpu)} matrices; {diff}")
    if failed:
        print(f"gpu_check: FAILED: {', '.join(failed)} differ beyond rtol={RTOL}, atol={ATOL}")
        return 1
    print("gpu_check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
