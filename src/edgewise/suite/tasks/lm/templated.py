"""Factual recall on SmolLM2-135M-Instruct from templated prompts: "The capital city of France is" -> " Paris" and
"The official language of France is" -> " French". A retain task for capability removal: it runs the same model as
`smollm2-ioi` and asks for a different capability (stored facts, not tracking who did what in a sentence).

The fact tables hold only facts the model gets right (its top next token is the answer, measured on every entry when
the tables were written), so the task measures whether an intervention keeps knowledge the model has, not whether
the model knows geography. The corrupted prompt asks the same question of another country with another answer, so
resample ablation replaces the fact, not the question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from edgewise.errors import InvalidHyperparameterError
from edgewise.tasks import METRICS, Task

from ...models import PretrainedModel, load_smollm2
from .prompts import (
    PromptData,
    encode_pairs,
    last_position_answers,
    last_position_mask,
    one_token_id,
    prompt_split,
    token_label,
)


@dataclass(frozen=True)
class FactTemplate:
    """One family of prompts: a template with a {} for the country, and each country's one-token answer.

    Attributes:
        name: the family's name (`capital`, `language`).
        template: the prompt, with `{}` where the country goes.
        answers: country -> its answer (one token after a space).
    """

    name: str
    template: str
    answers: dict[str, str]


# Both templates are 7 tokens with BOS for every country below (each country and each answer is one token after a
# space), so one batch mixes them without padding. Left out, though one token: capitals and languages the model gets
# wrong (Spain -> " Barcelona", Canada -> " Toronto", Portugal's language -> " a", ...), and contested or
# several-language answers (Israel's capital, Ireland's language).
CAPITALS = FactTemplate(
    "capital",
    "The capital city of {} is",
    {
        "France": "Paris",
        "Germany": "Berlin",
        "Italy": "Rome",
        "Japan": "Tokyo",
        "China": "Beijing",
        "Russia": "Moscow",
        "Greece": "Athens",
        "Portugal": "Lisbon",
        "Austria": "Vienna",
        "Poland": "Warsaw",
        "Ireland": "Dublin",
        "England": "London",
        "Norway": "Oslo",
        "Sweden": "Stockholm",
        "Finland": "Helsinki",
        "Denmark": "Copenhagen",
        "Hungary": "Budapest",
        "Kenya": "Nairobi",
        "Cuba": "Havana",
        "Syria": "Damascus",
        "Belgium": "Brussels",
        "Netherlands": "Amsterdam",
        "Chile": "Santiago",
        "Korea": "Seoul",
        "Philippines": "Manila",
        "Afghanistan": "Kabul",
        "Bulgaria": "Sofia",
        "Scotland": "Edinburgh",
    },
)
LANGUAGES = FactTemplate(
    "language",
    "The official language of {} is",
    {
        "France": "French",
        "Germany": "German",
        "Italy": "Italian",
        "Spain": "Spanish",
        "Japan": "Japanese",
        "Russia": "Russian",
        "Greece": "Greek",
        "Poland": "Polish",
        "Sweden": "Swedish",
        "Norway": "Norwegian",
        "Finland": "Finnish",
        "Hungary": "Hungarian",
        "Netherlands": "Dutch",
        "Turkey": "Turkish",
        "Thailand": "Thai",
        "Vietnam": "Vietnamese",
        "Iran": "Persian",
        "Egypt": "Arabic",
        "Brazil": "Portuguese",
        "Romania": "Romanian",
        "Bulgaria": "Bulgarian",
        "Serbia": "Serbian",
        "Croatia": "Croatian",
        "Iceland": "Icelandic",
        "Argentina": "Spanish",
        "Chile": "Spanish",
        "Peru": "Spanish",
        "Cuba": "Spanish",
        "Colombia": "Spanish",
        "Austria": "German",
        "England": "English",
        "Syria": "Arabic",
        "Iraq": "Arabic",
        "Morocco": "Arabic",
    },
)
FACT_TEMPLATES = (CAPITALS, LANGUAGES)


def fact_prompts(n: int = 24, seed: int = 0, exclude: list[dict] | None = None) -> list[dict]:
    """Returns n prompts {clean, corrupt, family, country, answer, corrupt_country}, alternating the fact templates,
    countries drawn with a fixed seed; no clean prompt of `exclude` is drawn again. The corrupting country has another
    answer. Raises InvalidHyperparameterError when a template has fewer unused facts than its share of n.

    Args:
        n: the number of prompts.
        seed: the seed of the countries drawn.
        exclude: prompts (another split's) whose clean prompts are not drawn.

    Returns:
        The prompts, each a dict with keys `clean`, `corrupt`, `family`, `country`, `answer`, `corrupt_country`.

    Raises:
        InvalidHyperparameterError: a template has fewer unused facts than its share of n.
    """
    rng = random.Random(seed)
    taken = {p["clean"] for p in exclude or []}
    unused = {
        family.name: [c for c in family.answers if family.template.format(c) not in taken] for family in FACT_TEMPLATES
    }
    for index, family in enumerate(FACT_TEMPLATES):
        needed = len(range(index, n, len(FACT_TEMPLATES)))  # this template's share of n, as they alternate
        if needed > len(unused[family.name]):
            raise InvalidHyperparameterError(
                f"n={n} prompts need {needed} {family.name} facts, but only {len(unused[family.name])} are left "
                f"after the {len(taken)} excluded prompts; ask for fewer prompts or add facts to the table"
            )
        rng.shuffle(unused[family.name])
    prompts = []
    for i in range(n):
        family = FACT_TEMPLATES[i % len(FACT_TEMPLATES)]
        country = unused[family.name].pop()
        answer = family.answers[country]
        corrupt_country = rng.choice(sorted(c for c, a in family.answers.items() if a != answer))
        prompts.append(
            {
                "clean": family.template.format(country),
                "corrupt": family.template.format(corrupt_country),
                "family": family.name,
                "country": country,
                "answer": answer,
                "corrupt_country": corrupt_country,
            }
        )
    return prompts


def smollm2_capitals_task(
    metric: str | None = None,
    n_prompts: int = 24,
    cache_dir: Path | None = None,
    loaded: PretrainedModel | None = None,
    held_out: bool = False,
) -> Task:
    """Returns factual recall (capitals and official languages) on SmolLM2-135M-Instruct (`loaded`, or loaded from
    `cache_dir`): clean prompts and prompts about another country, the metric (default KL) on the answer token;
    `task.answers` holds each answer's id at the last position. `held_out`: the evaluation split, n_prompts
    other prompts (another seed, no discovery prompt repeated). The tables hold 62 facts: 24 + 24 fit.

    Args:
        metric: the name of a metric in `METRICS`; None: KL.
        n_prompts: the number of prompts.
        cache_dir: the folder of dequantised models, when `loaded` is None; None: the default cache.
        loaded: the model already loaded; None loads it.
        held_out: build the task on the evaluation split.

    Returns:
        The task, scored at the last position; `family` a PromptData of the prompts.

    Raises:
        PretrainedModelMissingError: the model is not cached and cannot be made.
        InvalidHyperparameterError: the tables hold too few facts for the prompts asked.
        BatchShapeError: the prompts do not tokenise to one length, or an answer is not one token.
    """
    loaded = load_smollm2(cache_dir) if loaded is None else loaded
    tokenizer = loaded.tokenizer
    prompts = prompt_split(fact_prompts, n_prompts, held_out)
    clean, corrupt = encode_pairs(
        tokenizer, prompts, fix="every country in the fact tables must be one token after a space"
    )
    scored = last_position_mask(clean)
    answers = last_position_answers(clean, [one_token_id(tokenizer, p["answer"]) for p in prompts])
    return Task(
        name="smollm2-capitals",
        model=loaded.bridge,
        clean=clean,
        corrupt=corrupt,
        metric=METRICS[metric or "kl"],
        scored_positions=scored,
        bos_position=0,
        description=f"factual recall (capitals, official languages) on SmolLM2-135M-Instruct ({len(prompts)} "
        f"{'held-out ' if held_out else ''}prompts, {clean.shape[1]} tokens with BOS)",
        pairing="corrupted prompt = the same question about another country, whose answer differs",
        answers=answers,
        class_label=token_label(tokenizer),
        family=PromptData(prompts, tokenizer),
    )
