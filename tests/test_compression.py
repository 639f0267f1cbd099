"""Residual-stream compression: folded weights against a hand-written hook patch of the original model, and the
compressed tracr tasks against RASP's own evaluation and the compiled model's labelled directions."""

import pytest
import torch
from conftest import random_transformer, tracr

from edgewise.errors import InvalidHyperparameterError, UnsupportedArchitectureError
from edgewise.models.transformer import Transformer
from edgewise.suite.models.compression import CompressionConfig, compress_residual, folded_state


@torch.no_grad()
def test_folded_model_is_the_original_reading_a_projected_stream():
    """Compressed by W, a model computes what the original computes when every reader sees P x, P = W W^T: patch
    the original's q/k/v inputs, MLP inputs and final residual with P by hooks and compare."""
    model = random_transformer(normalization=False).double()  # float64: its large random logits amplify rounding
    projection = torch.randn(32, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 12**0.5
    compressed = Transformer(type(model.cfg)(**{**model.cfg.to_dict(), "d_model": 12})).double().eval()
    compressed.load_state_dict(folded_state(model, projection))
    p = projection @ projection.T
    project = lambda value, hook: value @ p  # noqa: E731
    readers = [
        f"blocks.{layer}.{hook}"
        for layer in range(3)
        for hook in ("hook_q_input", "hook_k_input", "hook_v_input", "hook_mlp_in")
    ]
    tokens = torch.randint(0, 20, (4, 9), generator=torch.Generator().manual_seed(0))
    with model.hooks(fwd_hooks=[(name, project) for name in readers + ["blocks.2.hook_resid_post"]]):
        expected = model(tokens)
    torch.testing.assert_close(compressed(tokens), expected, atol=1e-8, rtol=1e-8)


def test_compression_refuses_what_it_cannot_fold():
    tokens = torch.zeros(2, 3, dtype=torch.long)
    scored = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(UnsupportedArchitectureError, match="LayerNorm"):
        compress_residual(random_transformer(), tokens, scored, CompressionConfig(8))
    with pytest.raises(InvalidHyperparameterError, match="d_compressed must lie in"):
        compress_residual(random_transformer(normalization=False), tokens, scored, CompressionConfig(32))


@pytest.fixture(scope="module")
def compressed():
    return tracr("tracr-reverse-compressed")


@torch.no_grad()
def test_compressed_reverse_keeps_rasp_outputs_in_superposition(compressed):
    """The compressed model gives what RASP's own evaluator gives, with 41 labelled directions in 16 dimensions that
    are no longer orthogonal."""
    from tracr.rasp import rasp

    from edgewise.suite.tasks.tracr import TRACR_TASKS

    program = TRACR_TASKS["tracr-reverse"].build_program()
    compiled = compressed.family.compiled
    sequences = compressed.family.sequences
    assert compiled.decode(compressed.model(compressed.clean)) == [rasp.evaluate(program, s) for s in sequences]
    assert compiled.model.cfg.d_model == 16 and len(compiled.residual_labels) == 41
    assert compiled.compression["accuracy"] == 1.0
    cosines = (
        torch.nn.functional.normalize(compiled.projection, dim=-1)
        @ torch.nn.functional.normalize(compiled.projection, dim=-1).T
    )
    assert (cosines - torch.eye(41)).abs().max() > 0.5


@torch.no_grad()
def test_oracle_features_split_every_writer_exactly(compressed, reverse):
    """Every writer's compressed output lies in the span of its labelled directions taken through the projection
    (the error nodes are numerically empty), and the embeddings' features are the compiled model's coordinates.
    Other writers' features are the compressed model's own values, which need not be tracr's: reverse's data all
    has length 3, and the compressed layer 0 writes a constant there."""
    from edgewise.features.sets import writer_outputs

    compiled = reverse.family.compiled
    dimension = {label: i for i, label in enumerate(compiled.residual_labels)}
    original, squeezed = writer_outputs(reverse), writer_outputs(compressed)
    for writer, dictionary in compressed.dictionaries["oracle"].items():
        if writer in squeezed:
            assert dictionary.split(squeezed[writer])[:, -1].abs().max() < 1e-3, writer
    embedding = compressed.dictionaries["oracle"]["Resid Start"]
    expected = original["Resid Start"][:, [dimension[label] for label in embedding.labels]]
    torch.testing.assert_close(embedding.encode(squeezed["Resid Start"]), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("features", [None, "oracle"])
@torch.no_grad()
def test_compiled_circuit_alone_gives_the_compressed_models_outputs(compressed, features):
    """Compression is trained to keep unread directions apart, so the compiler's circuit (every other edge resampled)
    still decodes to every output."""
    from edgewise.patching import full_logits, patched_forward, task_ablation

    graph = compressed.graph(features=features)
    keep = graph.mask_for(compressed.ground_truth_edges(graph))
    logits = patched_forward(
        compressed.model, graph, compressed.clean, task_ablation(compressed, graph, "resample"), keep[None]
    )[0]
    assert torch.equal(
        logits.argmax(-1)[compressed.scored_positions], full_logits(compressed).argmax(-1)[compressed.scored_positions]
    )


def test_trained_saes_inherit_the_truth_of_the_oracle_features_they_recover(compressed):
    import dataclasses

    from edgewise.features.sets import TRAINED, add_trained_features

    task = dataclasses.replace(
        compressed,
        dictionaries=dict(compressed.dictionaries),
        feature_ground_truth=dict(compressed.feature_ground_truth),
    )
    report = add_trained_features(task)
    truth = task.feature_ground_truth[TRAINED]
    graph = task.graph(features=TRAINED)
    assert truth and {w for w, _ in truth} <= set(graph.writers) and {r for _, r in truth} <= set(graph.readers)
    oracle_graph = task.graph(features="oracle")
    oracle = [
        (oracle_graph.writer_node(f), reader)
        for f, reader in task.feature_ground_truth["oracle"]
        if f in oracle_graph.writers
    ]
    for writer, r in report.items():  # a recovered direction's edges reappear, on the trained feature recovering it
        recovered = {label for label, cosine in r.get("oracle_best_cosine", {}).items() if cosine >= 0.9}
        readers = {reader for node, reader in oracle if node.component == writer and node.part in recovered}
        assert readers == {reader for f, reader in truth if graph.writer_node(f).component == writer}


def test_compressed_programs_are_cached_and_too_few_dimensions_are_refused(tmp_path, reverse, monkeypatch):
    from edgewise.suite.tasks.tracr import compressed as module
    from edgewise.suite.tasks.tracr.compressed import compress_program

    compiled, sequences = reverse.family.compiled, reverse.family.sequences
    config = CompressionConfig(12, steps=3)
    first = compress_program(compiled, "reverse-test", config, sequences, cache_dir=tmp_path)
    monkeypatch.setattr(module, "compress_residual", lambda *a, **k: pytest.fail("trained again"))
    second = compress_program(compiled, "reverse-test", config, sequences, cache_dir=tmp_path)
    assert torch.equal(first.projection, second.projection) and second.compression == first.compression
    assert second.ground_truth == compiled.ground_truth and second.model.cfg.d_model == 12
    with pytest.raises(InvalidHyperparameterError, match="Resid Start writes 11 residual directions"):
        compress_program(compiled, "reverse-test", CompressionConfig(8, steps=3), sequences, cache_dir=tmp_path)
