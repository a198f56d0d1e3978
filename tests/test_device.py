"""Device and precision (`core.device`): one resolution helper, no autocast on the CPU, fp32 sums.

No GPU here: CUDA is simulated where only the resolution logic is under test; the GPU runs themselves
are bench/gpu_check.py's job.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from embedforge.core.device import CPU, autocast, resolve_device, resolve_precision
from embedforge.core.encoder import Encoder
from embedforge.core.errors import EmbedforgeError
from embedforge.core.params import ExtractParams, parse_params
from embedforge.core.prepared import PreparedData
from embedforge.extract import extract_matrices

ROOT = Path(__file__).resolve().parents[1]
GPU = torch.device("cuda", 0)  # a device object needs no GPU; nothing runs on it here
CFG = ExtractParams(
    strategies=["cls", "decontext", "aggregate"], layers="all", extra_words=[], max_contexts=3
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_precision_defaults_to_auto_fp32_on_the_cpu_bf16_on_a_gpu_that_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse_params({}).extract.precision == "auto"
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert (resolve_precision("auto", GPU), resolve_precision("fp16", GPU)) == ("bf16", "fp16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", GPU) == "fp32"  # fp16 is never chosen for you
    with pytest.raises(EmbedforgeError, match="'bf16', but cuda:0 has no bf16 support"):
        resolve_precision("bf16", GPU)


@pytest.mark.parametrize("spec", ["bf16", "fp16"])
def test_half_precision_on_the_cpu_is_a_one_line_error(spec: str, tiny_model_dir: Path) -> None:
    message = f"extract.precision = '{spec}' needs a CUDA device"
    with pytest.raises(EmbedforgeError, match=message):
        resolve_precision(spec, CPU)
    with pytest.raises(EmbedforgeError, match=message):
        Encoder(tiny_model_dir, "cpu", spec)
    with pytest.raises(EmbedforgeError, match="autocast runs on CUDA only"):
        autocast(CPU, spec)  # a direct caller that skipped resolve_precision
    with pytest.raises(EmbedforgeError, match="precision"):
        parse_params({"extract": {"precision": "tf32"}})


def test_the_cpu_never_autocasts_and_auto_gives_the_fp32_bytes(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, prepared_dir: Path
) -> None:
    assert isinstance(autocast(CPU, "fp32"), nullcontext)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"torch.autocast{args} called on a CPU run")

    monkeypatch.setattr(torch, "autocast", refuse)
    data = PreparedData(prepared_dir)
    words = data.vocab()["word"].tolist()[:40]
    runs = {}
    for precision in ("auto", "fp32"):
        encoder = Encoder(tiny_model_dir, "cpu", precision)
        dtypes: list[torch.dtype] = []
        encoder.model.register_forward_hook(
            lambda m, i, out, seen=dtypes: seen.append(out.last_hidden_state.dtype)
        )
        runs[precision] = extract_matrices(
            encoder, words, CFG.strategies, replace(CFG, precision=precision), corpus=data.sentences("train")
        )
        assert encoder.precision == "fp32" and set(dtypes) == {torch.float32}
    for auto, fp32 in zip(runs["auto"], runs["fp32"], strict=True):
        assert auto.name == fp32.name
        assert auto.wv.weight.numpy().tobytes() == fp32.wv.weight.numpy().tobytes()


def test_half_precision_states_are_pooled_and_summed_in_fp32(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    """What CUDA autocast hands back (bf16 states) is cast up before any average or sum."""
    encoder = Encoder(tiny_model_dir)
    ids = [encoder.tokenizer("好吃的米饭")["input_ids"]] * 2
    spans, groups = [(0, 1, 3), (1, 0, 5)], [(1, 2), (2,)]
    exact = encoder.pool_batch(ids, spans, groups, "mean")
    real = Encoder.hidden
    monkeypatch.setattr(Encoder, "hidden", lambda self, x: tuple(h.bfloat16() for h in real(self, x)))
    half = encoder.pool_batch(ids, spans, groups, "mean")
    assert half.dtype == torch.float32
    monkeypatch.setattr(Encoder, "hidden", lambda self, x: tuple(h.bfloat16().float() for h in real(self, x)))
    assert torch.equal(half, encoder.pool_batch(ids, spans, groups, "mean"))  # fp32 math on bf16 values
    assert torch.allclose(half, exact, rtol=2e-2, atol=2e-2) and not torch.equal(half, exact)


def test_one_device_helper_for_extract_and_evaluate() -> None:
    assert parse_params({}).evaluate.device == "auto"
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else CPU)
    for key in ("extract.device", "evaluate.device"):
        with pytest.raises(EmbedforgeError, match=f"{key} = 'tpu'; expected 'cpu', 'cuda'"):
            resolve_device("tpu", key)


def test_gpu_check_exits_0_with_a_message_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: bench/gpu_check.py runs for real there")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "gpu_check: skipped: no CUDA device" in done.stdout


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu_runs_every_step(tiny_model_dir: Path, reviews_csv: Path) -> None:
    """`--device cpu`: extraction, the precision step's skip line and evaluate, on the tiny model."""
    args = ["--device", "cpu", "--model", str(tiny_model_dir), "--data", str(reviews_csv), "--words", "30"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), *args, "--sentences", "80"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "max |diff| 0.00e+00" in out and "the CPU never autocasts" in out, out
    assert out.count("gpu_check: evaluate cpu") == 6 and out.rstrip().endswith("gpu_check: OK"), out
