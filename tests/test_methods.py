"""The method registry: unknown names and hyperparameters."""

import pytest

from edgewise.errors import UnknownMethodError
from edgewise.methods import discover


def test_unknown_method_and_hyperparameter(reverse):
    with pytest.raises(UnknownMethodError, match="unknown method 'acdcc'"):
        discover(reverse, "acdcc")
    with pytest.raises(UnknownMethodError, match="random has no hyperparameter steps"):
        discover(reverse, "random", steps=3)


def test_presets_tuned_and_published(reverse):
    from edgewise.methods import PRESETS, get_method, make_config, preset_hyperparameters

    assert PRESETS == ("tuned", "published")
    sp = get_method("edge-sp")
    assert preset_hyperparameters(sp, "tuned") == {}
    published = make_config(sp, preset_hyperparameters(sp, "published"))
    # auto-circuit's registry SEP (docs/presets.md): lr 0.1, 200 epochs, lambda 0.5, one sample a step
    assert (published.lr, published.steps, published.lambda_, published.n_samples) == (0.1, 200, 0.5, 1)
    node = make_config(get_method("node-sp"), preset_hyperparameters(get_method("node-sp"), "published"))
    assert (node.lr, node.steps, node.n_samples) == (1e-3, 10000, 1)  # ACDC's SP
    scores = discover(reverse, "edge-sp", preset="published", steps=3)  # explicit settings override the preset
    assert scores.hyperparameters["lr"] == 0.1 and scores.hyperparameters["steps"] == 3
    with pytest.raises(UnknownMethodError, match="unknown preset 'paper'; choose one of tuned, published"):
        discover(reverse, "eap", preset="paper")


@pytest.mark.parametrize("method", ["eap", "edge-sp"])
def test_discovery_leaves_no_weight_gradients_and_restores_requires_grad(proportion, method):
    """Methods differentiate with respect to masks only: the model's parameters get no gradient during discovery
    (none is left behind) and require gradients again afterwards, as before."""
    model = proportion.model
    frozen = next(model.parameters())
    frozen.requires_grad_(False)  # a parameter the user froze stays frozen
    try:
        discover(proportion, method, steps=3) if method == "edge-sp" else discover(proportion, method)
        assert all(p.grad is None for p in model.parameters())
        assert [p.requires_grad for p in model.parameters()] == [p is not frozen for p in model.parameters()]
    finally:
        frozen.requires_grad_(True)
