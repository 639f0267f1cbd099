"""Graph kinds: which graph of a task a run uses, as one validated value instead of a string split in several places.

A kind is plain (one node per head, MLP and embedding) or per-position (each node unrolled over the sequence), and
optionally splits the writers that a named dictionary set covers into feature nodes. Its text form, `plain`,
`per-position`, `plain/oracle` or `per-position/train`, is what records, files and the command line carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import UnknownGraphKindError

BASES = ("plain", "per-position")


@dataclass(frozen=True)
class GraphKind:
    """Which graph of a task: per position or not, and the feature set its writers are split by (None: none).

    Attributes:
        per_position: unroll every node over the sequence positions.
        features: the name of the task's dictionary set that splits writers into features, or None.
    """

    per_position: bool = False
    features: str | None = None

    @classmethod
    def parse(cls, text: "str | GraphKind", feature_sets: Sequence[str] | None = None) -> "GraphKind":
        """Returns the graph kind that `text` names.

        Args:
            text: `plain` or `per-position`, optionally followed by `/` and a feature set (`plain/oracle`); a
                GraphKind is returned as it is (after the feature-set check).
            feature_sets: the feature sets allowed (the bench's); None allows any name.

        Returns:
            The GraphKind.

        Raises:
            UnknownGraphKindError: an unknown base or feature set; the message lists the kinds allowed.
        """
        if isinstance(text, GraphKind):
            base, features = BASES[text.per_position], text.features or ""
        else:
            base, _, features = str(text).partition("/")
        if (
            base not in BASES
            or (feature_sets is not None and features and features not in feature_sets)
            or ("/" in str(text) and not features)
        ):
            allowed = [*BASES, *(f"{b}/{f}" for b in BASES for f in feature_sets or ("SET",))]
            raise UnknownGraphKindError(f"unknown graph kind {str(text)!r}; choose from {', '.join(allowed)}")
        return cls(base == "per-position", features or None)

    def __str__(self) -> str:
        base = BASES[self.per_position]
        return base if self.features is None else f"{base}/{self.features}"
