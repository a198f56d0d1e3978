"""`prepare.language` picks the language-dependent defaults: benchmarks, extra words, probe words."""

from __future__ import annotations

import runpy
import shlex
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from embedforge.core.benchmarks import benchmark_words
from embedforge.core.params import load_params, parse_params
from embedforge.core.profiles import PROFILES, TEMPLATE_ENSEMBLES, TEMPLATES
from embedforge.core.schema import read_yaml

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = sorted(PROFILES)


def _benchmarks(language: str) -> list[str]:
    """Every benchmark file a run in `language` reads."""
    p = parse_params({"prepare": {"language": language}})
    return [*p.extract.extra_words, *p.evaluate.similarity_files, *p.evaluate.analogy_files]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_profile_uses_only_its_own_languages_benchmarks(language):
    files = _benchmarks(language)
    assert files, "a profile with no benchmark at all"
    for f in files:
        assert Path(f).parent.name == language, f"{f} is not a {language} benchmark"
        assert (ROOT / f).is_file(), f"{f} is not committed"
    assert not set(files) & {f for other in LANGUAGES if other != language for f in _benchmarks(other)}


def test_english_by_one_switch():
    p = parse_params({"prepare": {"language": "en"}})
    assert [Path(f).stem for f in p.evaluate.similarity_files] == ["ws353_all", "simlex999", "men3000"]
    assert p.evaluate.analogy_files == []
    assert p.extract.extra_words == p.evaluate.similarity_files
    assert all(w.isascii() for w in p.evaluate.probe_words)


def test_english_probe_words_are_in_the_english_benchmarks():
    """Each English probe word occurs in an English benchmark, so extra_words puts it in the vocabulary."""
    p = parse_params({"prepare": {"language": "en"}})
    words = {w for f in p.evaluate.similarity_files for w in benchmark_words(ROOT / f, lowercase=True)}
    assert set(p.evaluate.probe_words) <= words


def test_the_default_language_is_chinese_and_keeps_the_committed_defaults():
    p = parse_params({})
    assert p.prepare.language == "zh"
    assert p.evaluate.similarity_files == PROFILES["zh"]["evaluate"]["similarity_files"]
    assert p.evaluate.probe_words[0] == "好吃"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("evaluate", "similarity_files", ["data/benchmarks/wordsim/zh/wordsim240.tsv"]),
        ("evaluate", "analogy_files", ["data/benchmarks/analogy/zh/ca_translated.txt"]),
        ("evaluate", "probe_words", ["好吃"]),
        ("extract", "extra_words", []),
    ],
)
def test_an_explicit_value_wins_over_the_profile(section, key, value):
    p = parse_params({"prepare": {"language": "en"}, section: {key: value}})
    assert getattr(getattr(p, section), key) == value
    others = {k for k in PROFILES["en"]["evaluate"] if (section, k) != ("evaluate", key)}
    assert all(getattr(p.evaluate, k) == PROFILES["en"]["evaluate"][k] for k in others)


def test_null_means_the_profile_value(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "prepare:\n  language: en\nevaluate:\n  probe_words: null\n  analogy_files:\n", encoding="utf-8"
    )
    p = load_params(path)
    assert p.evaluate.probe_words == PROFILES["en"]["evaluate"]["probe_words"]
    assert p.evaluate.analogy_files == []


def test_the_committed_params_follow_the_language(tmp_path):
    """params.yaml leaves the profile keys null, so switching its language alone switches them."""
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    assert "language: zh" in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("language: zh", "language: en"), encoding="utf-8")
    p = load_params(path)
    assert p.evaluate.similarity_files == PROFILES["en"]["evaluate"]["similarity_files"]
    assert p.extract.extra_words == PROFILES["en"]["extract"]["extra_words"]


def test_profile_null_is_only_for_profile_keys():
    with pytest.raises(Exception, match="finetune.weight_decay = None is not valid"):
        parse_params({"finetune": {"weight_decay": None}})


def test_an_unknown_language_is_still_a_one_line_error():
    with pytest.raises(Exception, match="prepare.language = 'fr' is not valid"):
        parse_params({"prepare": {"language": "fr"}})


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_template_follows_the_language_unless_set(language, tmp_path):
    """`auto` (the committed value) or no key: the language's template; an English model is never asked
    about a word inside a Chinese sentence. A set template, and null (the word alone), win."""
    text = (ROOT / "params.yaml").read_text(encoding="utf-8").replace("language: zh", f"language: {language}")
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_params(path).extract.template == TEMPLATES[language]
    assert parse_params({"prepare": {"language": language}}).extract.template == TEMPLATES[language]
    assert (
        parse_params({"prepare": {"language": language}, "extract": {"template": None}}).extract.template
        is None
    )
    mine = "word: {w}"
    assert (
        parse_params({"prepare": {"language": language}, "extract": {"template": mine}}).extract.template
        == mine
    )
    if language == "en":
        assert TEMPLATES[language].isascii()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_template_ensemble_follows_the_language_and_the_template(language, tmp_path):
    """`auto` (committed) or no key: the language's ensemble while the template is the language's too; a
    template of one's own (or null) gets no ensemble unless listed; a list wins."""
    text = (ROOT / "params.yaml").read_text(encoding="utf-8").replace("language: zh", f"language: {language}")
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_params(path).extract.extra_templates == TEMPLATE_ENSEMBLES[language]
    lang = {"prepare": {"language": language}}
    assert parse_params(lang).extract.extra_templates == TEMPLATE_ENSEMBLES[language]
    assert parse_params({**lang, "extract": {"template": None}}).extract.extra_templates == []
    assert parse_params({**lang, "extract": {"template": "w: {w}"}}).extract.extra_templates == []
    mine = {"template": None, "extra_templates": ["w: {w}"]}
    assert parse_params({**lang, "extract": mine}).extract.extra_templates == ["w: {w}"]
    assert all(t.count("{w}") == 1 for t in TEMPLATE_ENSEMBLES[language])
    if language == "en":
        assert TEMPLATE_ENSEMBLES[language] == []  # none measured for English: the one template


def _english_readme_args() -> list[str]:
    """The -S arguments of the English guide's `dvc exp run -n en-minilm` command (continued lines joined)."""
    text = (ROOT / "docs" / "guide" / "english.md").read_text(encoding="utf-8")
    start = text.index("dvc exp run -n en-minilm \\")
    command = text[start : text.index("```", start)].replace("\\\n", " ")
    return shlex.split(command)[5:]


def test_params_en_yaml_is_the_readme_english_run_and_all_english() -> None:
    exp_args = runpy.run_path(str(ROOT / "tools" / "exp_args.py"))["exp_args"]
    path = ROOT / "params" / "en.yaml"
    # the profile writes the data folder as {data}, the guide as the shell variable $DATA
    data = {
        s: {k: v.replace("{data}", "$DATA") if isinstance(v, str) else v for k, v in values.items()}
        for s, values in read_yaml(path).items()
    }
    assert exp_args(data) == _english_readme_args()
    p = load_params(path)
    assert p.prepare.language == "en" and p.extract.template == TEMPLATES["en"]
    assert all("/en/" in f for f in [*p.extract.extra_words, *p.evaluate.similarity_files])


def test_exp_args_writes_values_dvc_reads_back_typed() -> None:
    flow = runpy.run_path(str(ROOT / "tools" / "exp_args.py"))["flow"]
    values = [None, 2e-5, True, 3, "auto", ["cls", "input"], "pkg:x/y"]
    assert [YAML(typ="safe").load(flow(v)) for v in values] == values
    assert " " not in flow(["a", "b"])  # one shell word
