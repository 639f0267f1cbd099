"""The tracr suite's data: discovery and held-out (evaluation) splits that do not share inputs."""

import pytest

from edgewise.errors import UnknownTaskError
from edgewise.suite.tasks import get_task
from edgewise.suite.tasks.registry import held_out_size
from edgewise.suite.tasks.tracr import TRACR_TASKS


@pytest.mark.parametrize("name", list(TRACR_TASKS))
def test_held_out_inputs_are_not_discovery_inputs(name):
    spec = TRACR_TASKS[name]
    discovery = {tuple(s) for s in spec.sequences()}
    if spec.held_out is None:
        assert spec.no_held_out  # a task without a split says why
        return
    held_out = [tuple(s) for s in spec.held_out()]
    assert len(held_out) == len(set(held_out)) >= 40 and held_out_size(name) == len(held_out)
    shared = discovery & set(held_out)
    if name == "tracr-dyck2":  # its few balanced strings are in both splits; everything else is new
        assert shared and all(len(s) == 4 for s in shared) and len(shared) < len(held_out) / 5
    else:
        assert not shared


def test_a_task_without_a_split_says_why_and_one_with_a_split_builds_it():
    with pytest.raises(UnknownTaskError, match="every permutation of \\[1, 2, 3\\]"):
        get_task("tracr-reverse", held_out=True)
    evaluation = get_task("tracr-shift", held_out=True)
    discovery = get_task("tracr-shift")
    assert evaluation.clean.shape == discovery.clean.shape
    assert not {tuple(r) for r in evaluation.clean.tolist()} & {tuple(r) for r in discovery.clean.tolist()}
    assert "held-out" in evaluation.description
