"""The method registry: unknown names and hyperparameters."""

import pytest

from edgewise.methods import UnknownMethodError, discover


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
