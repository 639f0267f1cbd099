"""Adapter.hooks against TransformerLens' own hook mechanism (run_with_hooks): same values, same order, nothing left
behind."""

import pytest
import torch

from edgewise.adapters import adapter_for


def _hooks(log):
    """Hooks on three points: one twice (both must run, in order), one that only reads (returns None)."""

    def scale(factor, tag):
        def hook(value, hook):
            log.append((tag, hook.name))
            return value * factor

        return hook

    def read(value, hook):
        log.append(("read", hook.name))

    return [
        ("blocks.0.hook_mlp_out", scale(0.5, "a")),
        ("blocks.1.hook_q_input", scale(-1.0, "b")),
        ("blocks.0.hook_mlp_out", scale(3.0, "c")),
        ("blocks.2.hook_resid_pre", read),
    ]


@torch.no_grad()
def test_hooks_give_run_with_hooks_values_in_its_order(random_model, random_batches):
    clean, _ = random_batches
    earlier = []  # a hook the point held before: it runs first under both mechanisms
    random_model.hook_dict["blocks.1.hook_q_input"].add_hook(lambda v, hook: earlier.append(v.sum()) or v + 1)
    try:
        ours, theirs = [], []
        with adapter_for(random_model).hooks(_hooks(ours)):
            logits = random_model(clean)
        reference = random_model.run_with_hooks(clean, fwd_hooks=_hooks(theirs), reset_hooks_end=False)
        assert ours == theirs and len(ours) == 4
        assert torch.equal(logits, reference)
        assert torch.equal(earlier[0], earlier[1])
    finally:
        random_model.reset_hooks(including_permanent=True)


@torch.no_grad()
def test_hooks_leave_the_model_as_it_was_also_after_an_error(random_model, random_batches):
    clean, _ = random_batches
    before = random_model(clean)

    def fail(value, hook):
        raise RuntimeError("inside the hook")

    with pytest.raises(RuntimeError, match="inside the hook"):
        with adapter_for(random_model).hooks([("blocks.0.hook_mlp_out", fail), *_hooks([])]):
            random_model(clean)
    assert all(
        "forward" not in point.__dict__ and not point._forward_hooks and not point.fwd_hooks
        for point in random_model.hook_dict.values()
    )
    assert torch.equal(random_model(clean), before)
