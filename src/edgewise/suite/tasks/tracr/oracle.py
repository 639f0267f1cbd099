"""Oracle dictionaries of a compiled program: tracr's residual stream is a direct sum of labelled directions
(`length:3`, `opp_idx:1`, a numerical variable's one dimension), so the directions a writer writes are its exact
features, and its error node is zero."""

from __future__ import annotations

import torch

from edgewise.graph import Dictionary


def oracle_dictionaries(
    writes: dict[str, list[str]], residual_labels: list[str], projection: torch.Tensor | None = None
) -> dict[str, Dictionary]:
    """Returns, for every writer, the dictionary of the residual directions it writes (the compiler's `writes`);
    feature i of writer w is the coordinate of w's output along direction `writes[w][i]`. In a compressed program
    (residual x -> x @ `projection`) direction i is row i of the projection: no longer orthogonal to the others, but
    still exact while a writer writes no more directions than the compressed stream has dimensions.

    Args:
        writes: writer node name -> the residual direction labels it writes.
        residual_labels: the label of each residual dimension, in order.
        projection: a compressed program's projection [d_residual, d_compressed]; None: the identity.

    Returns:
        Writer node name -> its dictionary; writers that write nothing are left out.
    """
    dimension = {label: i for i, label in enumerate(residual_labels)}
    basis = torch.eye(len(residual_labels)) if projection is None else projection
    return {
        writer: Dictionary.from_directions(basis[[dimension[label] for label in labels]], labels)
        for writer, labels in writes.items()
        if labels
    }
