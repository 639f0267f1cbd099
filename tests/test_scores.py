"""Edge scores: JSON round trips."""

import pytest
import torch

from edgewise.errors import ScoresFileError
from edgewise.graph import EdgeScores
from edgewise.methods import discover


def test_scores_round_trip_through_json(reverse, tmp_path):
    scores = discover(reverse, "random", seed=4)
    scores.save(tmp_path / "s.json")
    loaded = EdgeScores.load(tmp_path / "s.json")
    assert torch.equal(loaded.scores, scores.scores) and loaded.graph == scores.graph
    assert loaded.method == "random" and loaded.seed == 4


def test_unreadable_scores_file(tmp_path):
    (tmp_path / "s.json").write_text("not json")
    with pytest.raises(ScoresFileError, match=r"cannot read .*s\.json.*edgewise discover --json FILE"):
        EdgeScores.load(tmp_path / "s.json")
    with pytest.raises(ScoresFileError, match="cannot read"):
        EdgeScores.load(tmp_path / "missing.json")
