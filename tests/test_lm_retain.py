"""Retain tasks on SmolLM2-135M: factual recall from templates (`smollm2-capitals`) and the model's own greedy text
(`smollm2-self-text`), each checked with plain bridge forwards rather than edgewise's own code."""

import pytest
import torch

from edgewise.errors import InvalidHyperparameterError
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.lm.templated import fact_prompts
from edgewise.suite.tasks.registry import held_out_size

# Facts written here by hand, not read from the task's tables: what the decoded answers must say
KNOWN = {
    "The capital city of France is": " Paris",
    "The capital city of Japan is": " Tokyo",
    "The capital city of Kenya is": " Nairobi",
    "The official language of Brazil is": " Portuguese",
    "The official language of Iran is": " Persian",
    "The official language of Egypt is": " Arabic",
}


def test_fact_prompts_split_apart_and_corrupt_with_another_answer():
    discovery = fact_prompts(24)
    held_out = fact_prompts(24, seed=1, exclude=discovery)
    assert len({p["clean"] for p in discovery + held_out}) == 48  # no prompt twice, none in both splits
    for p in discovery + held_out:
        assert p["clean"].replace(p["country"], p["corrupt_country"]) == p["corrupt"]
    by_clean = {p["clean"]: p["answer"] for p in discovery + held_out}
    assert all(by_clean[p["corrupt"]] != p["answer"] for p in discovery + held_out if p["corrupt"] in by_clean)
    assert {p["family"] for p in discovery} == {"capital", "language"}


@pytest.fixture(scope="module")
def capitals(smollm2):
    from edgewise.suite.tasks.lm.templated import smollm2_capitals_task

    return smollm2_capitals_task(loaded=smollm2), smollm2_capitals_task(loaded=smollm2, held_out=True)


@pytest.mark.slow
def test_capital_prompts_decode_to_their_text_and_answers_to_the_fact(capitals, smollm2):
    tokenizer = smollm2.tokenizer
    for task in capitals:
        answers = task.answers
        assert answers.shape == task.clean.shape and (answers[:, :-1] == -1).all() and (answers[:, -1] >= 0).all()
        assert task.scored_positions.sum() == len(task.clean) and task.scored_positions[:, -1].all()
        for row, corrupt, answer, p in zip(task.clean, task.corrupt, answers[:, -1], task.family.prompts):
            assert tokenizer.decode(row) == tokenizer.bos_token + p["clean"]  # BOS, then the prompt, no padding
            assert tokenizer.decode(corrupt) == tokenizer.bos_token + p["corrupt"]
            assert tokenizer.decode(answer) == " " + p["answer"] == KNOWN.get(p["clean"], " " + p["answer"])
    assert {p["clean"] for task in capitals for p in task.family.prompts} & set(KNOWN)  # KNOWN checked something


@pytest.mark.slow
def test_smollm2_recalls_the_facts_and_the_corrupted_prompt_does_not(capitals, smollm2):
    discovery, held_out = capitals
    assert held_out_size("smollm2-capitals") == len(held_out.clean) == 24 and "held-out" in held_out.description
    assert not {p["clean"] for p in discovery.family.prompts} & {p["clean"] for p in held_out.family.prompts}
    with torch.no_grad():
        for task in capitals:
            answers = task.answers[:, -1]
            assert (smollm2.bridge(task.clean)[:, -1].argmax(-1) == answers).float().mean() >= 0.9
            assert (smollm2.bridge(task.corrupt)[:, -1].argmax(-1) == answers).float().mean() <= 0.1


@pytest.mark.slow
def test_the_registry_builds_capitals_on_the_runs_one_model(smollm2):
    task = get_task("smollm2-capitals", metric="mse")
    assert {"smollm2-capitals", "smollm2-self-text"} <= set(task_names())
    assert task.model is smollm2.bridge and task.metric.name == "mse"


@pytest.fixture(scope="module")
def self_text(smollm2):
    """The discovery texts, 16 tokens rather than the task's 24 for time (generation is one forward per token)."""
    from edgewise.suite.tasks.lm.self_text import smollm2_self_text_task

    return smollm2_self_text_task(loaded=smollm2, n_tokens=16)


def _is_greedy(bridge, tokens: torch.Tensor, positions) -> bool:
    """Returns whether the token at each of `positions` is the bridge's top next token given only the tokens before
    it (a plain forward of that prefix)."""
    with torch.no_grad():
        return all(torch.equal(bridge(tokens[:, :k])[:, -1].argmax(-1), tokens[:, k]) for k in positions)


@pytest.mark.slow
def test_self_text_is_the_models_own_greedy_text(self_text, smollm2):
    from edgewise.suite.tasks.lm.self_text import DISCOVERY_OPENINGS

    tokenizer, clean = smollm2.tokenizer, self_text.clean
    assert clean.shape == (len(DISCOVERY_OPENINGS), 16) and (clean[:, 0] == tokenizer.bos_token_id).all()
    for row, opening in zip(clean, DISCOVERY_OPENINGS):
        assert tokenizer.decode(row[1:5]) == opening
    assert not torch.isin(clean[:, 1:], torch.tensor(tokenizer.all_special_ids)).any()  # no end-of-turn inside
    assert _is_greedy(smollm2.bridge, clean, (5, 8, 11, 13, 15))  # every generated token would take 11 forwards


@pytest.mark.slow
def test_self_text_pairs_each_text_with_another_and_scores_all_but_bos(self_text):
    assert torch.equal(self_text.corrupt, torch.cat([self_text.clean[-1:], self_text.clean[:-1]]))
    assert (self_text.corrupt[:, 1:] != self_text.clean[:, 1:]).any(dim=1).all()  # every pair differs
    assert self_text.bos_position == 0 and not self_text.scored_positions[:, 0].any()
    assert self_text.scored_positions[:, 1:].all() and self_text.answers is None
    assert self_text.metric.name == "kl"


@pytest.mark.slow
def test_held_out_self_text_continues_other_openings(smollm2):
    """Texts of 8 tokens, for time: the generation is the same loop."""
    from edgewise.suite.tasks.lm.self_text import DISCOVERY_OPENINGS, smollm2_self_text_task

    held_out = smollm2_self_text_task(loaded=smollm2, n_tokens=8, held_out=True)
    openings = [smollm2.tokenizer.decode(row[1:5]) for row in held_out.clean]
    assert len(openings) == held_out_size("smollm2-self-text") and not set(openings) & set(DISCOVERY_OPENINGS)
    assert held_out.clean.shape[1] == 8 and _is_greedy(smollm2.bridge, held_out.clean, range(5, 8))
    with pytest.raises(InvalidHyperparameterError, match="n_tokens=5"):
        smollm2_self_text_task(loaded=smollm2, n_tokens=5)  # the openings alone: nothing generated
