"""IOI on SmolLM2-135M: the prompts, the model's behaviour on them, and EAP at 70,651 edges against random edges."""

import dataclasses

import pytest
import torch

from edgewise.errors import UnknownTaskError
from edgewise.graph import circuit_from_scores
from edgewise.methods import discover
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.lm.ioi import IOI_NAMES, ioi_logit_difference, ioi_prompts


def test_ioi_prompts_name_three_people_and_corrupt_only_the_second_subject_mention():
    for p in ioi_prompts(24):
        assert len({p["io"], p["s"], p["c"]}) == 3 and {p["io"], p["s"], p["c"]} <= set(IOI_NAMES)
        clean, corrupt = p["clean"].split(), p["corrupt"].split()
        changed = [i for i, (a, b) in enumerate(zip(clean, corrupt)) if a != b]
        assert len(clean) == len(corrupt) and len(changed) == 1
        assert clean[changed[0]] == p["s"] and corrupt[changed[0]] == p["c"] and clean.count(p["s"]) == 2


def test_unknown_task_names_every_family():
    with pytest.raises(UnknownTaskError, match="smollm2-ioi"):
        get_task("smollm2-iio")
    assert "smollm2-ioi" in task_names() and "tracr-reverse" in task_names()


@pytest.fixture(scope="module")
def ioi(ioi_task):
    return ioi_task


@pytest.mark.slow
def test_smollm2_does_ioi_and_the_abc_corruption_removes_it(ioi):
    with torch.no_grad():
        corrupted = ioi.adapter.forward(ioi.corrupt)  # = every edge resample-ablated (tests/test_bridge.py)
    clean_difference = ioi_logit_difference(ioi, full_logits(ioi))
    assert (clean_difference > 0).all()  # the model names the indirect object on every prompt
    assert ioi_logit_difference(ioi, corrupted).mean() < 0.25 * clean_difference.mean()


@pytest.mark.slow
def test_held_out_ioi_prompts_are_new_and_the_model_still_does_ioi(ioi, smollm2):
    from edgewise.suite.tasks.lm.ioi import smollm2_ioi_task
    from edgewise.suite.tasks.registry import held_out_size

    evaluation = smollm2_ioi_task(loaded=smollm2, held_out=True)
    discovery = {p["clean"] for p in ioi.family.prompts}
    held_out = [p["clean"] for p in evaluation.family.prompts]
    assert len(set(held_out)) == len(held_out) == held_out_size("smollm2-ioi") and not discovery & set(held_out)
    assert evaluation.clean.shape[1] == ioi.clean.shape[1] and "held-out" in evaluation.description
    with torch.no_grad():
        difference = ioi_logit_difference(evaluation, full_logits(evaluation))
    assert (difference > 0).float().mean() >= 0.9  # the behaviour holds on prompts discovery never saw


@pytest.mark.slow
def test_eap_top_edges_carry_ioi_and_random_edges_do_not(ioi):
    """EAP ranks 70,651 edges from one backward pass; its top 5000 recover most of the behaviour (faithfulness by
    patching, an independent measurement), 5000 random edges none of it. On 8 of the 24 prompts, for time."""
    ioi = dataclasses.replace(
        ioi, clean=ioi.clean[:8], corrupt=ioi.corrupt[:8], scored_positions=ioi.scored_positions[:8]
    )
    graph = ioi.graph()
    ablated = task_ablation(ioi, graph, "resample")
    eap = discover(ioi, "eap", graph=graph, ablated=ablated)
    random_scores = discover(ioi, "random", graph=graph, ablated=ablated)
    assert graph.n_edges == 70651 and torch.isfinite(eap.scores).all()
    masks = torch.stack([graph.mask_for(circuit_from_scores(s, top_k=5000).edges) for s in (eap, random_scores)])
    with torch.no_grad():
        logits = patched_forward(ioi.model, graph, ioi.clean, ablated, masks)
        empty = ioi.adapter.forward(ioi.corrupt)  # the empty circuit under resample ablation
    full = full_logits(ioi)
    loss = ioi.metric(logits, full, ioi.scored_positions)  # [eap, random]
    faithfulness = 1 - loss / ioi.metric(empty, full, ioi.scored_positions)
    assert faithfulness[0] > 0.5 and faithfulness[1] < 0.1
