"""GPU check: extract and evaluate on CUDA against the CPU, and bf16 autocast against fp32 (a few minutes).

1. fp32: cls, decontext (default template, every layer) and aggregate on the bundled m3e-small, on
   --words vocabulary words of --sentences waimai reviews plus the zh similarity benchmarks' words, on
   the device and on the CPU: the matrices must agree to float tolerance (kernel summation order only).
2. bf16 (`extract.precision: bf16`, fp16 on a GPU without bf16): the same matrices on the device; the
   Spearman of each on wordsim240, wordsim297 and multisimlex_zh must stay within MAX_SPEARMAN_DIFF of fp32.
3. evaluate (`evaluate.device`): the mean probe, the CNN and the BiLSTM, frozen and trainable, trained on
   the reviews with the fp32 decontext matrix, on the device and on the CPU: every run must finish, and the
   test accuracies must agree within MAX_ACCURACY_DIFF (GPU kernels are not bit-identical).
Where no CUDA device exists it prints why and exits 0. `--device cpu` runs the steps against the CPU
itself (a dry run of the plumbing; step 2 is skipped: the CPU never autocasts).

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

from embedforge.core.benchmarks import benchmark_name, read_pairs
from embedforge.core.device import bf16_supported, resolve_device
from embedforge.core.embedding import WordVectors
from embedforge.core.encoder import Encoder
from embedforge.core.models import resolve_source
from embedforge.core.params import ExtractParams
from embedforge.core.text import build_vocab, normalize_text, segment_text
from embedforge.evaluate.consumers import consumer_scores
from embedforge.evaluate.probe import ProbeConfig
from embedforge.evaluate.similarity import word_similarity
from embedforge.extract import extract_matrices
from embedforge.nets.data import to_probe_data
from embedforge.nets.models import NetConfig

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "data/benchmarks/wordsim/zh").glob("*.tsv"))
# fp32 on both devices: differences come from kernel summation order only
RTOL, ATOL, MIN_COSINE = 1e-3, 1e-4, 0.9999
MAX_SPEARMAN_DIFF = 0.01  # bf16 vs fp32, per matrix and benchmark: "safe for the numbers"
MAX_ACCURACY_DIFF = 0.05  # evaluate on the device vs the CPU, per consumer and variant
CFG = ExtractParams(
    strategies=["cls", "decontext", "aggregate"], layers="all", extra_words=[], corpus_window=1024
)
Matrices = dict[str, torch.Tensor]


def reviews(path: Path, n: int) -> tuple[list[list[str]], list[int]]:
    """`n` reviews drawn with a fixed seed (both labels), normalised and segmented as `prepare` does."""
    df = pd.read_csv(path)
    df = df.sample(min(n, len(df)), random_state=0)
    return [segment_text(normalize_text(t), "zh") for t in df["review"].astype(str)], df["label"].tolist()


def extract(encoder: Encoder, words: list[str], sentences: list[list[str]]) -> tuple[Matrices, float]:
    """Every matrix of the check on the encoder's device and precision, and the seconds it took."""
    windows = [sentences[i : i + CFG.corpus_window] for i in range(0, len(sentences), CFG.corpus_window)]
    sync(encoder.device)
    start = time.perf_counter()
    out = extract_matrices(encoder, words, CFG.strategies, CFG, corpus=windows, progress=False)
    sync(encoder.device)
    return {m.name: m.wv.weight for m in out}, time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare_fp32(got: Matrices, ref: Matrices, label: str) -> list[str]:
    """Step 1: the matrices that differ beyond tolerance (allclose, or else every row's cosine)."""
    worst_diff, worst_cos, failed = 0.0, 1.0, []
    for name, want in ref.items():
        worst_diff = max(worst_diff, float((got[name] - want).abs().max()))
        nonzero = want.norm(dim=1) > 0
        cos = float(torch.nn.functional.cosine_similarity(got[name], want, dim=1)[nonzero].min())
        worst_cos = min(worst_cos, cos)
        if not torch.allclose(got[name], want, rtol=RTOL, atol=ATOL) and cos < MIN_COSINE:
            failed.append(name)
    print(
        f"gpu_check: fp32 {label} vs cpu, {len(ref)} matrices: max |diff| {worst_diff:.2e}, "
        f"min row cosine {worst_cos:.6f}"
    )
    return failed


def spearmans(matrices: Matrices, words: list[str]) -> dict[tuple[str, str], float]:
    """(matrix, benchmark) -> Spearman of the matrix on the benchmark's pairs it covers."""
    pairs = {benchmark_name(f): read_pairs(f, lowercase=True) for f in BENCHMARKS}
    out = {}
    for name, weight in matrices.items():
        wv = WordVectors(words, weight.cpu())
        for bench, ps in pairs.items():
            out[name, bench] = word_similarity(wv, ps).spearman or 0.0
    return out


def compare_precision(half: Matrices, fp32: Matrices, words: list[str], precision: str) -> list[str]:
    """Step 2: the (matrix, benchmark) pairs whose Spearman moved more than MAX_SPEARMAN_DIFF."""
    a, b = spearmans(half, words), spearmans(fp32, words)
    diffs = {key: abs(a[key] - b[key]) for key in b}
    worst = max(diffs, key=lambda k: diffs[k])
    print(
        f"gpu_check: {precision} vs fp32 Spearman on {len(BENCHMARKS)} benchmarks x {len(fp32)} matrices: "
        f"max |diff| {diffs[worst]:.4f} ({worst[0]} on {worst[1]}: {a[worst]:.4f} vs {b[worst]:.4f})"
    )
    return [f"{m} on {s}" for (m, s), d in diffs.items() if d > MAX_SPEARMAN_DIFF]


def evaluate(
    device: torch.device, weight: torch.Tensor, texts: list[list[str]], labels: list[int], words: list[str]
) -> dict[str, float]:
    """Step 3: test accuracy of each consumer x variant trained on `device` (80/20 split of the reviews)."""
    data = to_probe_data(texts, labels, {w: i for i, w in enumerate(words)})
    cut = len(labels) * 4 // 5
    train, test = data.subset(torch.arange(cut)), data.subset(torch.arange(cut, len(labels)))
    cfg = ProbeConfig(epochs=2, batch_size=32, lr=1e-3, seed=0, device=device)
    out = {}
    for kind in ("mean", "cnn", "bilstm"):
        for trainable in (False, True):
            start = time.perf_counter()
            scores = consumer_scores(kind, weight, train, test, ["0", "1"], trainable, cfg, NetConfig())
            sync(device)
            key = f"{kind} {'trainable' if trainable else 'frozen'}"
            out[key] = scores["accuracy"]
            seconds = time.perf_counter() - start
            print(f"gpu_check: evaluate {device} {key}: accuracy {out[key]:.4f} ({seconds:.1f} s)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pkg:embedding/m3e-small")
    ap.add_argument("--data", default=str(ROOT / "data/raw/waimai_10k.csv"))
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--device", default="cuda", help="the device checked against cpu (cpu: a dry run)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: skipped: no CUDA device on this machine (torch.cuda.is_available() is False)")
        return 0
    device = resolve_device(args.device)
    texts, labels = reviews(Path(args.data), args.sentences)
    words = build_vocab(texts, min_count=1, max_size=args.words)["word"].tolist()
    words += sorted(
        {w for f in BENCHMARKS for p in read_pairs(f, True) for w in (p.word1, p.word2)} - set(words)
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_check: {name}; {len(words)} words, {len(texts)} sentences")
    model = resolve_source(args.model)
    cpu, cpu_s = extract(Encoder(model, "cpu", "fp32"), words, texts)
    fp32, fp32_s = (
        (cpu, cpu_s) if device.type == "cpu" else extract(Encoder(model, args.device, "fp32"), words, texts)
    )
    print(f"gpu_check: extract fp32: cpu {cpu_s:.1f} s, {device} {fp32_s:.1f} s ({cpu_s / fp32_s:.1f}x)")
    failed = compare_fp32(fp32, cpu, str(device))
    if device.type == "cuda":
        half_name = "bf16" if bf16_supported(device) else "fp16"
        half, half_s = extract(Encoder(model, args.device, half_name), words, texts)
        print(f"gpu_check: extract {half_name}: {half_s:.1f} s ({fp32_s / half_s:.1f}x fp32 on {device})")
        failed += compare_precision(half, fp32, words, half_name)
    else:
        print("gpu_check: half precision skipped: the CPU never autocasts")
    weight = cpu[[n for n in cpu if n.startswith("decontext")][-1]]  # the last layer's
    on_cpu = evaluate(torch.device("cpu"), weight, texts, labels, words)
    on_device = evaluate(device, weight, texts, labels, words) if device.type == "cuda" else on_cpu
    failed += [f"evaluate {k}" for k, v in on_cpu.items() if abs(v - on_device[k]) > MAX_ACCURACY_DIFF]
    if failed:
        print(f"gpu_check: FAILED: {', '.join(failed)}")
        return 1
    print("gpu_check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
