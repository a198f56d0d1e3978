"""Typed, validated parameters: the one place that knows the schema of params.yaml.

Each stage section is a frozen dataclass. Ranges live in field metadata (`min`, `max`, `gt`) so
that validation, defaults and documentation come from one declaration.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from embedforge.core.errors import EmbedforgeError

T = TypeVar("T")
# numpy, torch and transformers.set_seed all accept exactly this range.
SEED_RANGE = {"min": 0, "max": 2**32 - 1}
# YAML 1.1 booleans that YAML 1.2 (DVC, and this reader) reads as text.
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
WORD_SLOT = "{w}"  # where extract.template puts the word
Positions = Literal["word", "all"]  # extract.positions


def _f(default: Any, **limits: Any) -> Any:
    """A dataclass field with a default and optional range limits (min, max, gt)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: typing.cast(Any, type(default))(default), metadata=limits)
    return field(default=default, metadata=limits)


def _seed(default: int) -> Any:
    """A random seed field: an integer in SEED_RANGE."""
    return _f(default, **SEED_RANGE)


_ZH_SIM = "data/benchmarks/wordsim/zh/"
_EN_SIM = "data/benchmarks/wordsim/en/"
# Language-dependent defaults: a key of these that params.yaml leaves out or sets to null takes the value
# of the `prepare.language` profile, so `prepare.language: en` alone switches the benchmarks, the
# benchmark words added to the vocabulary and the probe words; a value the user sets wins.
# SELECTION_SETS: the set whose dev half picks the recommended matrix, per language; it applies only when
# the resolved similarity_files contain it (else no matrix is recommended unless the user names one).
PROFILES: dict[str, dict[str, dict[str, list[str]]]] = {
    "zh": {
        "extract": {
            "extra_words": [
                f"{_ZH_SIM}wordsim240.tsv",
                f"{_ZH_SIM}wordsim297.tsv",
                f"{_ZH_SIM}multisimlex_zh.tsv",
                "data/benchmarks/analogy/zh/ca_translated.txt",
            ]
        },
        "evaluate": {
            "similarity_files": [
                f"{_ZH_SIM}wordsim240.tsv",
                f"{_ZH_SIM}wordsim297.tsv",
                f"{_ZH_SIM}multisimlex_zh.tsv",
            ],
            "analogy_files": ["data/benchmarks/analogy/zh/ca_translated.txt"],
            "probe_words": ["好吃", "难吃", "味道", "外卖", "送餐", "服务", "米饭", "便宜", "快", "中国"],
        },
    },
    "en": {
        "extract": {
            "extra_words": [f"{_EN_SIM}ws353_all.tsv", f"{_EN_SIM}simlex999.tsv", f"{_EN_SIM}men3000.tsv"]
        },
        "evaluate": {
            "similarity_files": [
                f"{_EN_SIM}ws353_all.tsv",
                f"{_EN_SIM}simlex999.tsv",
                f"{_EN_SIM}men3000.tsv",
            ],
            "analogy_files": [],  # no English analogy set is committed
            "probe_words": [
                "happy",
                "bad",
                "love",
                "movie",
                "story",
                "actor",
                "funny",
                "music",
                "money",
                "food",
            ],
        },
    },
}
DEFAULT_LANGUAGE = "zh"
# extract.template per language: the word inside a sentence of the model's language ("this word is
# '<w>'."); an English model reading the Chinese one pools Chinese characters into every vector.
# `auto` (or leaving the key out) means the language's; null keeps its meaning, the word by itself.
TEMPLATE_AUTO = "auto"
TEMPLATES = {"zh": "这个词是“{w}”。", "en": 'this word is "{w}".'}
# extract.extra_templates per language (`auto`): the prompt ensemble decontext averages with TEMPLATES'.
# zh: the 5-template mean on the fine-tuned encoder led on msl_dev and on every held-out set
# (bench/results/lexical_study_finetuned.md); en: none measured, the one template alone.
TEMPLATE_ENSEMBLES = {"zh": ["“{w}”的意思是", "“{w}”", "词语：{w}。", "“{w}”这个词的意思是"], "en": []}
SELECTION_SETS = {"zh": f"{_ZH_SIM}multisimlex_zh.tsv", "en": f"{_EN_SIM}simlex999.tsv"}


def _profile(section: str, key: str) -> Any:
    """A field whose dataclass default is the default language's profile value."""
    return _f(PROFILES[DEFAULT_LANGUAGE][section][key])


def _resolve_templates(extract: dict[str, Any], language: str) -> dict[str, Any]:
    """`auto` (or no key) for extract.template / extra_templates resolved to the language's.

    The ensemble follows the template: with a template of the user's own (or null), `auto` adds none.
    """
    template_auto = extract.get("template", TEMPLATE_AUTO) == TEMPLATE_AUTO
    out = {**extract, "template": TEMPLATES[language]} if template_auto else dict(extract)
    if extract.get("extra_templates", TEMPLATE_AUTO) == TEMPLATE_AUTO:
        out["extra_templates"] = list(TEMPLATE_ENSEMBLES[language]) if template_auto else []
    return out


def apply_profile(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every profile key it leaves out or sets to null filled from `prepare.language`'s profile.

    An unknown language or a section that is not a mapping is left for validation to report.
    """
    prepare = data.get("prepare")
    language = prepare.get("language", DEFAULT_LANGUAGE) if isinstance(prepare, dict) else DEFAULT_LANGUAGE
    profile = PROFILES.get(language) if isinstance(language, str) else None
    if profile is None:
        return data
    out = dict(data)
    for section, defaults in profile.items():
        given = out.get(section, {})
        if not isinstance(given, dict):
            continue
        filled = {k: list(v) for k, v in defaults.items() if given.get(k) is None}
        out[section] = {**given, **filled}
    extract = out.get("extract")
    if isinstance(extract, dict):
        out["extract"] = _resolve_templates(extract, language)
    evaluate = out.get("evaluate")
    if isinstance(evaluate, dict) and evaluate.get("selection_set") is None:
        chosen = SELECTION_SETS.get(language)
        if isinstance(evaluate.get("similarity_files"), list) and chosen in evaluate["similarity_files"]:
            out["evaluate"] = {**evaluate, "selection_set": chosen}
    return out


@dataclass(frozen=True)
class ModelParams:
    """Where the pretrained encoder comes from."""

    # A local folder, `pkg:<import-name>/<sub/folder>` inside an installed distribution, or a hub id.
    source: str = "pkg:embedding/m3e-small"


@dataclass(frozen=True)
class PrepareParams:
    """Raw labelled text -> cleaned, split, tokenized Parquet and the word vocabulary."""

    input: str | None = "data/raw/waimai_10k.csv"
    # A fixed split: set all three (and leave `input` null) to skip the random split.
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    text_column: str = "review"
    label_column: str = "label"
    train_ratio: float = _f(0.8, gt=0.0, max=1.0)
    validation_ratio: float = _f(0.1, min=0.0, max=1.0)
    test_ratio: float = _f(0.1, min=0.0, max=1.0)
    seed: int = _seed(42)
    max_length: int = _f(128, min=8, max=4096)
    # also picks the defaults of the PROFILES keys (benchmarks, extra words, probe words)
    language: Literal["zh", "en"] = "zh"
    min_count: int = _f(2, min=1)
    max_vocab_size: int = _f(0, min=0)  # 0 = no limit
    sample_rows: int = _f(0, min=0)  # a seeded sample of this many cleaned rows, before splitting; 0 = all

    @property
    def split_files(self) -> dict[str, str | None]:
        """The fixed-split files by split name (all None for a random split of `input`)."""
        return {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}


@dataclass(frozen=True)
class FinetuneParams:
    """Fine-tuning the encoder as a sequence classifier."""

    seed: int = _seed(42)
    lr: float = _f(1e-4, gt=0.0)
    weight_decay: float = _f(0.01, min=0.0)
    warmup_ratio: float = _f(0.06, min=0.0, max=1.0)
    max_grad_norm: float = _f(1.0, gt=0.0)
    batch_size: int = _f(32, min=1)
    grad_accum_steps: int = _f(1, min=1)
    epochs: float = _f(1.0, gt=0.0)
    max_steps: int = _f(0, min=0)  # 0 = run `epochs` (1 epoch = 300 steps of 32: ~3 min on 2 CPU cores)
    eval_steps: int = _f(100, min=0)  # 0 = evaluate (and checkpoint) once per epoch
    freeze_embeddings: bool = False
    freeze_layers: int = _f(0, min=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    distributed: Literal["auto", "off", "ddp"] = "auto"
    nproc_per_node: int = _f(0, min=0)  # processes for distributed=ddp; 0 = one per GPU (2 on CPU)
    # joint lexical loss (Mirror-BERT, finetune.lexical): loss = task + lexical_weight * InfoNCE between two
    # dropout views of dictionary words, pooled as extract pools decontext (LEXICAL_READS); 0 = off
    lexical_weight: float = _f(0.0, min=0.0)
    lexical_words: int = _f(10000, min=1)  # jieba dictionary words trained on (no benchmark word)
    lexical_batch: int = _f(64, min=2)  # words per step (per process): 1 positive, batch-1 negatives each
    lexical_temperature: float = _f(0.04, gt=0.0)  # InfoNCE temperature (Mirror-BERT's 0.04)


@dataclass(frozen=True)
class CeilingParams:
    """The transformer ceiling of the learning curves: `models/base` fine-tuned on the curves' subsets.

    The subsets are the curves' own draws (`evaluate.curve_sizes`, `curve_seeds`, `seed`); optimiser
    settings, freezing and the seed (run i: `finetune.seed + i`) come from `finetune`; set here: which
    sizes, and the schedule of a small training set.
    """

    max_size: int = _f(200, min=0)  # fine-tune at every curve size up to this many per class; 0 = off
    # a fixed schedule for a small training set (nothing is selected on validation or test)
    batch_size: int = _f(32, min=1)
    epochs: float = _f(3.0, gt=0.0)  # passes over the subset ...
    min_steps: int = _f(30, min=1)  # ... but at least this many optimizer steps (small subsets)


# The keys of other sections that the `ceiling` stage reads. DVC cannot track a key that params.yaml leaves
# to its default, so the `fingerprint` stage writes their resolved values to fingerprints/ceiling.json.
CEILING_READS = {
    "evaluate": ("curve_sizes", "curve_seeds", "seed"),  # the curves' draws
    "finetune": (
        "seed",
        "lr",
        "weight_decay",
        "warmup_ratio",
        "max_grad_norm",
        "freeze_embeddings",
        "freeze_layers",
        "precision",
    ),
}

# The keys of other sections that `finetune` reads when finetune.lexical_weight > 0: the lexical loss pools
# words as `extract` builds its decontext matrices, and leaves out every word of these benchmark files.
# The `fingerprint` stage writes their resolved values (and the files' hashes) to fingerprints/finetune.json.
LEXICAL_READS = {"prepare": ("language",), "extract": ("template", "positions", "layers", "pooling")}
LEXICAL_EXCLUDE = {"extract": ("extra_words",), "evaluate": ("similarity_files", "analogy_files")}


def lexical_exclude_files(params: Params) -> list[str]:
    """The files of LEXICAL_EXCLUDE, each once, in order."""
    files = [
        f
        for section, keys in LEXICAL_EXCLUDE.items()
        for key in keys
        for f in getattr(getattr(params, section), key)
    ]
    return list(dict.fromkeys(files))


@dataclass(frozen=True)
class ExtractParams:
    """Word-embedding matrices from the base and fine-tuned parameters."""

    # cls, input, decontext, aggregate, vectors, word2vec (see embedforge.extract.STRATEGIES)
    strategies: list[str] = _f(["cls", "input", "decontext", "word2vec"])
    sources: list[Literal["base", "finetuned"]] = _f(["base", "finetuned"])
    # for decontext/aggregate: a hidden_states index (0 = embedding output, num_hidden_layers = last),
    # a list of indices to average, "last", or "all" (one matrix per layer, for the layer study)
    layers: Any = _f([3, 4])
    pooling: Literal["mean", "max", "first", "last"] = "mean"  # over the pooled positions
    # decontext: the word is encoded inside this text, at its one `{w}` (null: the word by itself);
    # cls always encodes the word by itself (the tutorial baseline)
    # (`auto`: the language's TEMPLATES entry, resolved by apply_profile)
    template: str | None = TEMPLATES[DEFAULT_LANGUAGE]
    # decontext: more templates (each with one `{w}`); the pooled rows are averaged over `template` and
    # these (a prompt ensemble); [] = `template` alone; `auto`: the language's TEMPLATE_ENSEMBLES entry
    # when `template` is `auto` too, else []
    extra_templates: list[str] = _f(TEMPLATE_ENSEMBLES[DEFAULT_LANGUAGE])
    # decontext: pool the word's pieces (`word`) or every token of the sequence (`all`: [CLS], [SEP]
    # and the template's tokens included)
    positions: Positions = "all"
    max_contexts: int = _f(32, min=1)  # aggregate: corpus sentences per word, at most
    token_budget: int = _f(8192, min=64)  # padded tokens per forward batch
    center: bool = True  # (post-processing applies to every matrix but cls, the tutorial baseline)
    remove_top_pcs: int = _f(0, min=0)  # all-but-the-top; implies centering
    normalize: bool = False  # L2, after the other steps
    # benchmark files whose words join the vocabulary; null = the language profile's
    extra_words: list[str] = _profile("extract", "extra_words")
    vector_files: list[str] = _f([])  # word2vec text/binary files, one `vectors_<stem>` matrix each
    unknown: Literal["zeros", "mean", "random", "subword"] = "mean"  # vectors: words the file lacks
    seed: int = _seed(0)  # for unknown = random
    # strategy word2vec (gensim, on the train split; one worker, seeded with `seed`): the baseline
    w2v_vector_size: int = _f(0, min=0)  # 0 = the encoder's hidden size (the same shape as the others)
    w2v_window: int = _f(5, min=1)
    w2v_min_count: int = _f(2, min=1)
    w2v_sg: bool = True  # skip-gram (false: CBOW)
    w2v_negative: int = _f(5, min=1)
    w2v_epochs: int = _f(10, min=1)
    # scale (README "A real corpus"): an unlabeled corpus, a vocabulary from it, the device, checkpoints
    corpus: str | None = None  # .txt/.jsonl/.parquet (.gz) file, folder or glob; null = the train split
    corpus_field: str = "text"  # the text's key (JSON Lines) or column (Parquet)
    corpus_window: int = _f(16384, min=1)  # sentences streamed at a time: the unit of sharding/checkpoints
    vocab_from: Literal["prepared", "corpus"] = "prepared"  # corpus: count words in extract.corpus
    min_count: int = _f(2, min=1)  # vocab_from = corpus: words seen at least this often
    max_vocab_size: int = _f(0, min=0)  # vocab_from = corpus: the most frequent N (0 = all)
    device: str = "auto"  # cpu, cuda, cuda:<index>, auto (CUDA when available)
    # the forward pass: auto = bf16 autocast on a CUDA GPU with bf16, fp32 on the CPU (never autocast
    # there: 6-25x slower); bf16/fp16 on the CPU is an error. Pooling and sums stay fp32 (core.device)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_windows: int = _f(0, min=0)  # aggregate: checkpoint every N corpus windows (0 = never)


@dataclass(frozen=True)
class ExportParams:
    """Copies of chosen matrices in the formats other tools load (the `export` stage, exports/).

    Each key lists matrix names or glob patterns (`decontext_base_L4`, `aggregate_*_L4`); [] exports none.
    """

    word2vec: list[str] = _f([])  # word2vec text: exports/word2vec/<name>.txt
    word2vec_binary: list[str] = _f([])  # word2vec binary (word2vec.c, gensim): exports/word2vec/<name>.bin
    model2vec: list[str] = _f([])  # model2vec / sentence-transformers static model: exports/model2vec/<name>/
    projector: list[str] = _f([])  # TensorBoard projector: exports/projector/<name>.tsv, .meta.tsv


@dataclass(frozen=True)
class EvaluateParams:
    """Similarity, analogy, classification and probe evaluation."""

    # word1<TAB>word2<TAB>score files; the metric key of each is its file stem. null = language profile.
    similarity_files: list[str] = _profile("evaluate", "similarity_files")
    # word2vec-format analogy files (`: section` headers, then `a b c d`), scored with 3CosAdd.
    analogy_files: list[str] = _profile("evaluate", "analogy_files")
    # Words whose nearest neighbours are listed in metrics/neighbours.md for every matrix.
    probe_words: list[str] = _profile("evaluate", "probe_words")
    neighbours: int = _f(10, min=1)
    # Lower-case benchmark words before lookup (the prepared vocabulary is lower-cased).
    lowercase: bool = True
    # Downstream probe: mean of word vectors -> linear layer, trained on train, scored on test.
    probe_epochs: int = _f(4, min=1)
    probe_batch_size: int = _f(64, min=1)
    probe_lr: float = _f(3e-3, gt=0.0)
    seed: int = _seed(42)
    # Learning curves (embedforge.evaluate.curves): matrices (names or glob patterns; `random*` and
    # `word2vec` name the baselines) trained on nested, stratified subsets of the train split.
    curve_matrices: list[str] = _f(["decontext_*", "word2vec", "random*"])
    curve_consumers: list[str] = _f(["mean", "bilstm"])  # mean, cnn, bilstm
    curve_variants: list[Literal["frozen", "trainable"]] = _f(["frozen"])
    curve_sizes: list[int] = _f([50, 200, 1000, 0])  # examples per class; 0 = the whole train split
    curve_seeds: int = _f(3, min=1)  # runs per size below the whole split (the whole split runs once)
    curve_epochs: int = _f(2, min=1)
    curve_min_steps: int = _f(60, min=0)  # small subsets train for more epochs, at least this many steps
    curve_batch_size: int = _f(32, min=1)
    curve_lr: float = _f(1e-3, gt=0.0)
    cnn_filters: int = _f(64, min=1)  # per width (3, 4, 5)
    lstm_hidden: int = _f(64, min=1)  # per direction
    curve_dropout: float = _f(0.5, min=0.0, max=0.95)
    # where the probe, the curve consumers and the classifier run: cpu, cuda, cuda:<index>, auto (CUDA
    # when available); fp32 always. The committed CPU numbers do not depend on it (GPU kernels differ)
    device: str = "auto"
    # Big data (embedforge.evaluate.caps): the probes and curves use a seeded, stratified sample of at most
    # this many train / test rows (0 = the whole split); recorded in classification.json `caps`.
    max_train_rows: int = _f(0, min=0)
    max_test_rows: int = _f(0, min=0)
    # The set whose dev half (pairs on odd line numbers) picks the recommended matrix; it must be one of
    # similarity_files. null: the language's SELECTION_SETS entry when similarity_files has it, else none.
    selection_set: str | None = None
    # A YAML file of targets for one model source (embedforge.evaluate.render.targets), shown in the report as
    # met or missed where they apply (that model.source, a benchmark or curve size this run has); null: none.
    targets: str | None = None


@dataclass(frozen=True)
class Params:
    """All sections of params.yaml."""

    model: ModelParams = _f(ModelParams())
    prepare: PrepareParams = _f(PrepareParams())
    finetune: FinetuneParams = _f(FinetuneParams())
    ceiling: CeilingParams = _f(CeilingParams())
    extract: ExtractParams = _f(ExtractParams())
    export: ExportParams = _f(ExportParams())
    evaluate: EvaluateParams = _f(EvaluateParams())


def _type_name(tp: Any) -> str:
    """A readable name for a type hint, used in error messages."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _invalid(value: Any, tp: Any, key: str) -> EmbedforgeError:
    return EmbedforgeError(f"params.yaml: {key} = {value!r} is not valid; expected {_type_name(tp)}")


def _check_union(value: Any, tp: Any, key: str) -> Any:
    """The first member type that accepts `value` (null only where the union allows it)."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _check(value, arg, key)
        except EmbedforgeError:
            continue
    raise _invalid(value, tp, key)


def _check_bool(value: Any, key: str) -> bool:
    if isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        raise EmbedforgeError(
            f"params.yaml: {key} = {value!r} is not valid; expected true or false "
            "(params.yaml is YAML 1.2, as DVC reads and writes it: yes/no/on/off are text)"
        )
    if not isinstance(value, bool):
        raise _invalid(value, bool, key)
    return value


def _check_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(value, int, key)
    return value


def _check_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(value, float, key)
    # NaN passes every range check and inf trains a model of NaN weights: neither is a setting.
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise EmbedforgeError(f"params.yaml: {key} = {value!r} is not valid; expected a finite number")
    return number


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _invalid(value, str, key)
    return value


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    str: _check_str,
}


def _check(value: Any, tp: Any, key: str) -> Any:
    """Return `value` converted to `tp`, or raise EmbedforgeError naming `key`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _invalid(value, tp, key)
        return value
    if origin in (Union, types.UnionType):
        return _check_union(value, tp, key)
    if origin is list:
        if not isinstance(value, list):
            raise _invalid(value, tp, key)
        return [_check(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _invalid(value, tp, key)
        return _build(typing.cast(type, tp), value, key)
    if tp in _SCALARS:
        return _SCALARS[tp](value, key)
    raise TypeError(f"unsupported type hint {tp!r} for {key}")


def _check_range(value: Any, limits: dict[str, Any], key: str) -> None:
    """Raise if a number is outside the limits declared in the field's metadata."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "min" in limits and value < limits["min"]:
        raise EmbedforgeError(f"params.yaml: {key} = {value!r} is out of range; expected >= {limits['min']}")
    if "gt" in limits and value <= limits["gt"]:
        raise EmbedforgeError(f"params.yaml: {key} = {value!r} is out of range; expected > {limits['gt']}")
    if "max" in limits and value > limits["max"]:
        raise EmbedforgeError(f"params.yaml: {key} = {value!r} is out of range; expected <= {limits['max']}")


def _build(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """Validate a mapping against dataclass `cls`; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise EmbedforgeError(
            f"params.yaml: unknown key {where!r}; expected one of: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        checked = _check(value, hints[name], key)
        _check_range(checked, dict(fields[name].metadata), key)
        values[name] = checked
    return cls(**values)


def parse_params(data: dict[str, Any] | None) -> Params:
    """Validate an already-parsed params mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EmbedforgeError("params.yaml: expected a mapping of stage sections at the top level")
    params = _build(Params, apply_profile(data), "")
    check_prepare(params.prepare)
    check_templates(params.extract)
    check_selection(params.evaluate)
    return params


def check_templates(extract: ExtractParams) -> None:
    """`extract.template` and each of `extract.extra_templates` hold exactly one `{w}`."""
    for template in [extract.template, *extract.extra_templates]:
        if template is not None:
            template_parts(template)


def template_parts(template: str) -> tuple[str, str]:
    """The text before and after the one `{w}` of extract.template; an error unless there is exactly one."""
    if template.count(WORD_SLOT) != 1:
        raise EmbedforgeError(
            f"params.yaml: extract.template = {template!r}; expected text with exactly one {WORD_SLOT} "
            "(where the word goes), or null for the word by itself"
        )
    before, _, after = template.partition(WORD_SLOT)
    return before, after


def check_selection(p: EvaluateParams) -> None:
    """evaluate.selection_set must be one of the similarity files (it is scored like them)."""
    if p.selection_set is not None and p.selection_set not in p.similarity_files:
        raise EmbedforgeError(
            f"params.yaml: evaluate.selection_set = {p.selection_set!r} is not one of "
            "evaluate.similarity_files; expected one of them, or null"
        )


def check_prepare(p: PrepareParams) -> None:
    """Cross-field checks of the prepare section: where the data comes from, and the split ratios."""
    files = p.split_files
    if any(files.values()):
        if not all(files.values()):
            raise EmbedforgeError(
                "params.yaml: prepare.train_file, validation_file and test_file must be set together"
            )
        if p.input:
            raise EmbedforgeError(
                f"params.yaml: prepare.input ({p.input}) and the three split files are both set; "
                "set either input or train_file/validation_file/test_file (and input: null)"
            )
        return  # a fixed split uses no ratios
    if not p.input:
        raise EmbedforgeError(
            "params.yaml: prepare.input is empty; name a data file or set the three split files"
        )
    total = p.train_ratio + p.validation_ratio + p.test_ratio
    if abs(total - 1.0) > 1e-6:
        raise EmbedforgeError(
            f"params.yaml: prepare.train_ratio + validation_ratio + test_ratio = {total:g}; expected 1"
        )


def read_yaml(path: Path) -> Any:
    """Parse a YAML file exactly as DVC does (ruamel.yaml's safe loader, YAML 1.2).

    DVC writes `dvc exp run -S` values with the same library and reads params.yaml with this loader,
    so a value reads back as the user typed it: `off` and `yes` stay text, `2e-05` is a number, an
    empty value is null, and a duplicated key is an error rather than silently the last one.
    """
    try:
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EmbedforgeError(f"{path}: not valid UTF-8") from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or "").strip().splitlines()
        raise EmbedforgeError(
            f"{path}{where}: not valid YAML{f' ({problem[0]})' if problem else ''}"
        ) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: parameters file not found")
    return parse_params(read_yaml(path))
