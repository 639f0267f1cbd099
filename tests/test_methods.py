"""The method registry: unknown names and hyperparameters."""

import pytest

from edgewise.methods import UnknownMethodError, discover


def test_unknown_method_and_hyperparameter(reverse):
    with pytest.raises(UnknownMethodError, match="unknown method 'acdcc'"):
        discover(reverse, "acdcc")
    with pytest.raises(UnknownMethodError, match="random has no hyperparameter steps"):
        discover(reverse, "random", steps=3)

