"""Language profiles: the defaults that follow `prepare.language`.

A key of PROFILES that params.yaml leaves out or sets to null takes the value of the `prepare.language`
profile, so `prepare.language: en` alone switches the benchmarks, the benchmark words added to the
vocabulary and the probe words; a value the user sets wins. The decontext template and its ensemble
follow the language too (`auto`), and so does the set that picks the recommended matrix.
"""

from __future__ import annotations

from typing import Any

_ZH_SIM = "data/benchmarks/wordsim/zh/"
_EN_SIM = "data/benchmarks/wordsim/en/"
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
# zh: the mean over these and TEMPLATES' scored best on the Chinese similarity sets with the fine-tuned
# encoder; en: none measured, so the one template alone.
TEMPLATE_ENSEMBLES = {"zh": ["“{w}”的意思是", "“{w}”", "词语：{w}。", "“{w}”这个词的意思是"], "en": []}
# SELECTION_SETS: the set whose dev half picks the recommended matrix, per language; it applies only when
# the resolved similarity_files contain it (else no matrix is recommended unless the user names one).
SELECTION_SETS = {"zh": f"{_ZH_SIM}multisimlex_zh.tsv", "en": f"{_EN_SIM}simlex999.tsv"}


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
