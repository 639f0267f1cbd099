"""tracr programs loaded into edgewise Transformers, against tracr's own compiled model on every input."""

import itertools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from edgewise.patching import full_logits, task_ablation
from edgewise.suite.tasks.tracr import TRACR_TASKS
from edgewise.suite.tasks.tracr.compile import compile_program, compile_with_tracr, program_fingerprint


def _tracr_forward(assembled):
    """Returns tracr's own forward as one jitted function: tokens -> (final residual, decoded outputs). Op by op, jax
    compiles each operation for each input shape (300 compilations on reverse); jitted, one per shape."""
    forward = jax.jit(lambda params, tokens: _outputs(assembled.forward(params, tokens)))
    return lambda tokens: [np.asarray(x) for x in forward(assembled.params, jnp.asarray(tokens.numpy()))]


def _outputs(output):
    return output.transformer_output.output, output.unembedded_output


def _tracr_unembed(assembled, residual):
    """tracr's own projection of its final residual stream onto the output space (no argmax)."""

    @hk.without_apply_rng
    @hk.transform
    def unembed(x):
        return assembled.get_compiled_model().unembed(x, use_unembed_argmax=False)

    return np.asarray(jax.jit(unembed.apply)(assembled.params, jnp.asarray(residual)))


# The redundant-or and -backup programs use the same operations as redundant-majority (numerical aggregates, linear
# sequence maps, a numerical-to-categorical map); tests/test_redundancy.py checks their answers against Python's.
CONVERTED = [name for name in TRACR_TASKS if name not in ("tracr-redundant-or", "tracr-redundant-backup")]


@pytest.mark.parametrize("name", CONVERTED)
def test_conversion_matches_tracr_on_every_input(name):
    spec = TRACR_TASKS[name]
    compiled, assembled = compile_with_tracr(spec.build_program(), set(spec.vocab), spec.max_seq_len, name)
    values = sorted(spec.vocab, key=repr)
    tracr_forward = _tracr_forward(assembled)
    n_checked = 0
    for length in range(1, spec.max_seq_len + 1):
        sequences = [list(s) for s in itertools.product(values, repeat=length)]
        tokens = compiled.encode(sequences)
        residual, decoded = tracr_forward(tokens)
        with torch.no_grad():
            _, cache = compiled.model.run_with_cache(tokens)
            ours = compiled.model(tokens).numpy()
        final = cache[f"blocks.{compiled.model.cfg.n_layers - 1}.hook_resid_post"].numpy()
        np.testing.assert_allclose(final, residual, atol=1e-4)
        expected = _tracr_unembed(assembled, residual).reshape(ours.shape)
        np.testing.assert_allclose(ours, expected, atol=1e-4)
        if compiled.categorical:  # decoded answers agree wherever tracr's argmax is not a tie
            top2 = np.sort(expected, -1)[..., -2:]
            clear = (top2[..., 1] - top2[..., 0]) > 0.5
            ours_idx, theirs_idx = ours.argmax(-1), decoded
            assert (ours_idx[clear] == theirs_idx[clear]).all()
        n_checked += len(sequences)
    assert n_checked == sum(len(values) ** n for n in range(1, spec.max_seq_len + 1))


def test_cache_returns_the_same_model_and_circuit(tmp_path):
    spec = TRACR_TASKS["tracr-proportion"]
    args = (spec.build_program(), set(spec.vocab), spec.max_seq_len, spec.name)
    first = compile_program(*args, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    second = compile_program(*args, cache_dir=tmp_path)
    assert second.ground_truth == first.ground_truth and second.encoding == first.encoding
    for key, value in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[key], value)


def test_fingerprint_tells_programs_apart():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    a = program_fingerprint(lib.make_frac_prevs(rasp.tokens == "x"), set("wxyz"), 5, False)
    b = program_fingerprint(lib.make_frac_prevs(rasp.tokens == "y"), set("wxyz"), 5, False)
    for _ in range(3):  # other programs built in between shift RASP's global ids; the key must not move
        lib.make_count(rasp.tokens, "a")
        lib.make_reverse(rasp.tokens)
    c = program_fingerprint(lib.make_frac_prevs(rasp.tokens == "x"), set("wxyz"), 5, False)
    assert a != b and a == c
    assert a != program_fingerprint(lib.make_frac_prevs(rasp.tokens == "x"), set("wxyz"), 5, True)


def test_user_program_with_causal_attention_becomes_a_task():
    """A program written here (not from tracr's lib), compiled causally: outputs match tracr's own model on every
    input, and the derived circuit alone reproduces the model."""
    from tracr.rasp import rasp

    from edgewise.patching import patched_forward
    from edgewise.suite.tasks.tracr import tracr_task

    is_a = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, rasp.tokens))
    prefix = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
    program = rasp.numerical(rasp.Aggregate(prefix, is_a, default=0)).named("frac_a")
    task = tracr_task(program, {"a", "b"}, 4, "user-frac-a", causal=True)
    compiled = task.family.compiled
    assert task.model.cfg.attention_dir == "causal" and not task.categorical
    _, assembled = compile_with_tracr(program, {"a", "b"}, 4, "user-frac-a", causal=True)
    tracr_forward = _tracr_forward(assembled)
    for length in range(1, 5):
        tokens = compiled.encode([list(s) for s in itertools.product("ab", repeat=length)])
        theirs = tracr_forward(tokens)[1]
        with torch.no_grad():
            ours = compiled.model(tokens)[..., 0].numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    expected = {
        ("Resid Start", "MLP 0"),
        ("Resid Start", "A1.0.Q"),
        ("Resid Start", "A1.0.K"),
        ("MLP 0", "A1.0.V"),
        ("A1.0", "Resid End"),
    }
    assert set(task.ground_truth) == expected
    graph = task.graph()
    with torch.no_grad():
        kept = patched_forward(
            task.model,
            graph,
            task.clean,
            task_ablation(task, graph, "zero"),
            graph.mask_for(task.ground_truth_edges(graph)),
        )
    assert torch.allclose(kept, full_logits(task), atol=1e-5)
