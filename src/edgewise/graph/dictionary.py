"""Dictionaries: split a writer's output into feature nodes and an error node, so circuits can be found over features.

A dictionary of writer w gives features f_i(out_w) with decoder directions d_i; the graph then holds one writer node
per feature, carrying f_i(out_w) * d_i, and one error node carrying out_w - sum_i f_i(out_w) * d_i (what the
dictionary does not reconstruct, its decoder bias included, as in Marks et al.'s Sparse Feature Circuits). The parts
sum to out_w exactly, so with every edge kept a feature graph computes the model's own outputs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import torch

from ..errors import GraphMismatchError
from .graph import Graph
from .nodes import HookGroup, Node, NodeKind, error_node, feature_node


class Dictionary:
    """Features of one writer's output: `encode(out) -> [..., n_features]` and `decoder` [n_features, d_model].

    Args:
        labels: one label per feature, shown in its node's name (`MLP 2[opp_idx:2]`).
        decoder: each feature's decoder direction [n_features, d_model]; stored detached.
        encode: the feature activations of outputs, [..., d_model] -> [..., n_encoded].
        indices: for a dictionary restricted to some features, their positions in `encode`'s output; None: every
            output of `encode`, in order.

    Attributes:
        labels: the feature labels, as a tuple.
        decoder: the decoder directions [n_features, d_model].
        indices: each feature's position in `encode`'s output.
        writer_group: for a writer the model's graph holds split over other nodes (an attention layer whose heads
            are writers of their own), the one-writer group on the hook of its whole output; None otherwise (see
            `on_writer_group`).
        merges: the writer nodes `writer_group` stands in for in a feature graph (that layer's heads).

    Raises:
        GraphMismatchError: `decoder` is not a matrix with one row per label.
    """

    def __init__(
        self,
        labels: Sequence[str],
        decoder: torch.Tensor,
        encode: Callable[[torch.Tensor], torch.Tensor],
        indices: Sequence[int] | None = None,
    ):
        if decoder.dim() != 2 or decoder.shape[0] != len(labels):
            raise GraphMismatchError(
                f"a dictionary needs one decoder row per feature label: got decoder {tuple(decoder.shape)} for "
                f"{len(labels)} labels"
            )
        self.labels = tuple(labels)
        self.decoder = decoder.detach()
        self._encode = encode
        self._select = None if indices is None else list(indices)
        self.indices = tuple(range(len(labels))) if indices is None else tuple(indices)
        self.writer_group: HookGroup | None = None
        self.merges: tuple[str, ...] = ()

    def on_writer_group(self, group: HookGroup, merges: Sequence[str]) -> "Dictionary":
        """Returns this dictionary as that of a writer the model's graph does not hold as one node: in its feature
        graph `group` (one writer node, on the hook of the writer's whole output) takes the place of the writer nodes
        `merges`, and readers that fed those feed it (an SAE on an attention layer's output, whose heads are writers
        of their own; the layer's q/k/v readers stay per head).

        Args:
            group: the writer group of the whole output, holding one node.
            merges: the names of the writer nodes it replaces, all the nodes of one writer group.

        Returns:
            A dictionary with the same features that carries the group.
        """
        merged = Dictionary(self.labels, self.decoder, self._encode, self.indices)
        merged.writer_group, merged.merges = group, tuple(merges)
        return merged

    @classmethod
    def from_directions(cls, directions: torch.Tensor, labels: Sequence[str]) -> "Dictionary":
        """Returns the linear dictionary whose features are the coordinates of the output along `directions`
        [n, d_model] (least squares, so exact for outputs inside their span: tracr's labelled residual directions).

        Args:
            directions: the feature directions [n, d_model]; they are also the decoder.
            labels: one label per direction.

        Returns:
            A dictionary whose `encode` multiplies by the directions' pseudo-inverse.

        Raises:
            GraphMismatchError: the number of labels is not the number of directions.
        """
        directions = directions.detach().to(torch.float64)
        reader = torch.linalg.pinv(directions)  # [d_model, n]
        return cls(labels, directions.float(), lambda x: x @ reader.to(x))

    @classmethod
    def from_sae(cls, sae: torch.nn.Module) -> "Dictionary":
        """Returns the dictionary of a sparse autoencoder (`encode`, `decoder`, `labels`; see edgewise.features).

        Args:
            sae: a module with `encode`, `decoder` [d_sae, d_in] and `labels`, such as
                `edgewise.features.SparseAutoencoder`.

        Returns:
            A dictionary over all of the SAE's features.
        """
        return cls(sae.labels, sae.decoder, lambda x: sae.encode(x))

    @property
    def n_features(self) -> int:
        return len(self.labels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the feature activations [..., n_features] of outputs x [..., d_model].

        Args:
            x: writer outputs [..., d_model].

        Returns:
            The activations of this dictionary's features (only the kept ones, if restricted) [..., n_features].
        """
        activations = self._encode(x)
        return activations if self._select is None else activations[..., self._select]

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the parts of outputs x [..., d_model]: each feature's contribution, then the error [..., n + 1, d].

        Args:
            x: writer outputs [..., d_model].

        Returns:
            The parts [..., n_features + 1, d_model]: feature i's activation times its decoder row, then the error
                (x minus the features' sum), so the parts sum to x.
        """
        return self.parts(x)

    def parts(self, x: torch.Tensor, which: Sequence[int] | None = None) -> torch.Tensor:
        """Returns some parts of outputs x [..., d_model], computing only those: a feature's part is its activation
        times its decoder row; the error is x minus the reconstruction (activations @ decoder), so that it never needs
        the dense `[..., n_features, d_model]` split.

        Args:
            x: writer outputs [..., d_model].
            which: the parts to return, ascending: i < n_features is feature i, n_features the error; None: all.

        Returns:
            The chosen parts in the order of `which`, [..., len(which), d_model].

        Raises:
            GraphMismatchError: `which` is not ascending or names a part outside 0..n_features.
        """
        activations, decoder = self.encode(x), self.decoder.to(x)
        if which is None:
            features, error = activations.unsqueeze(-1) * decoder, True
        else:
            which = list(which)
            if which != sorted(set(which)) or (which and (which[0] < 0 or which[-1] > self.n_features)):
                raise GraphMismatchError(
                    f"parts must be ascending indices in 0..{self.n_features} (the last is the error); got {which}"
                )
            error = bool(which) and which[-1] == self.n_features
            chosen = which[:-1] if error else which
            if len(chosen) == self.n_features:
                features = activations.unsqueeze(-1) * decoder
            else:
                index = torch.tensor(chosen, dtype=torch.long, device=x.device)
                features = activations.index_select(-1, index).unsqueeze(-1) * decoder[index]
        if not error:
            return features
        return torch.cat([features, (x - activations @ decoder).unsqueeze(-2)], dim=-2)

    def restricted(self, keep: Sequence[int]) -> "Dictionary":
        """Returns the dictionary of features `keep` (positions in this one); the others move into the error.

        Args:
            keep: positions of the features to keep, in this dictionary's order.

        Returns:
            A dictionary with the same `encode`, whose `indices` point into `encode`'s output.
        """
        keep = list(keep)
        kept = Dictionary(
            [self.labels[i] for i in keep], self.decoder[keep], self._encode, [self.indices[i] for i in keep]
        )
        kept.writer_group, kept.merges = self.writer_group, self.merges
        return kept

    def active(self, outputs: torch.Tensor, tolerance: float = 1e-6) -> list[int]:
        """Returns the features that are non-zero somewhere on `outputs` [..., d_model]: only they can carry
        anything, so a feature graph keeps them and leaves the rest to the error node.

        Args:
            outputs: writer outputs [..., d_model].
            tolerance: a feature is active where its largest |activation| is above this.

        Returns:
            Positions of the active features in this dictionary, ascending.
        """
        activity = self.encode(outputs).abs().reshape(-1, self.n_features).amax(0)
        return [i for i, a in enumerate(activity.tolist()) if a > tolerance]


def merged_groups(groups: Sequence[HookGroup], dictionaries: dict[str, Dictionary]) -> list[HookGroup]:
    """Returns the hook groups with each dictionary's `writer_group` in place of the writer group of the nodes it
    merges, and every reader that fed one of those nodes, or read it, pointed at the merged writer instead.

    Args:
        groups: the model's hook groups in residual-stream order.
        dictionaries: dictionaries by writer name; those without a `writer_group` change nothing.

    Returns:
        The groups, in the same order.

    Raises:
        GraphMismatchError: a dictionary merges nodes that are not exactly one writer group of `groups`.
    """
    groups = list(groups)
    for writer, dictionary in dictionaries.items():
        if dictionary.writer_group is None:
            continue
        merges = set(dictionary.merges)
        held = [g for g in groups if g.kind == "writer" and merges & set(g.names)]
        if len(held) != 1 or set(held[0].names) != merges:
            raise GraphMismatchError(
                f"the dictionary of {writer} merges {sorted(merges)}, which are not the nodes of one writer group of "
                "this graph; build it on the model's own graph"
            )

        def renamed(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
            return None if names is None else tuple(dict.fromkeys(writer if n in merges else n for n in names))

        groups = [
            dictionary.writer_group
            if g is held[0]
            else g
            if g.kind == "writer"
            else replace(
                g,
                nodes=tuple(replace(n, component=writer) if n.component in merges else n for n in g.nodes),
                fed_by=renamed(g.fed_by),
            )
            for g in groups
        ]
    return groups


def feature_groups(groups: Sequence[HookGroup], dictionaries: dict[str, Dictionary]) -> list[HookGroup]:
    """Returns the hook groups with each writer that has a dictionary replaced by its feature nodes and error node.

    Args:
        groups: the model's hook groups in residual-stream order.
        dictionaries: the dictionary of each writer to split, by writer name.

    Returns:
        The groups in the same order; a split writer's group holds, in its place, one feature node per feature and
            then its error node.

    Raises:
        GraphMismatchError: a dictionary names a writer the groups do not hold.
    """
    known = {n.name for g in groups if g.kind == "writer" for n in g.nodes}
    unknown = sorted(set(dictionaries) - known)
    if unknown:
        raise GraphMismatchError(
            f"dictionaries given for {unknown}, which are not writers of this model; its writers are {sorted(known)}"
        )
    split = []
    for group in groups:
        if group.kind != "writer" or not any(n.name in dictionaries for n in group.nodes):
            split.append(group)
            continue
        nodes: list[Node] = []
        for node in group.nodes:
            if node.name not in dictionaries:
                nodes.append(node)
                continue
            d = dictionaries[node.name]
            nodes += [feature_node(node, label, index) for label, index in zip(d.labels, d.indices)]
            nodes.append(error_node(node))
        split.append(HookGroup(group.kind, group.hook, tuple(nodes), group.per_head))
    return split


def feature_graph(
    groups: Sequence[HookGroup], n_positions: int | None, features: str, dictionaries: dict[str, Dictionary]
) -> Graph:
    """Returns the graph of `groups` with the writers that `dictionaries` cover split into features; dictionaries of
    writers these groups lack (Tok Embed and Pos Embed in a graph with merged embeddings, say) are left out. A
    dictionary with a `writer_group` first takes the place of the nodes it merges (`merged_groups`).

    Args:
        groups: the model's hook groups in residual-stream order.
        n_positions: the sequence length of a per-position graph; None for a plain graph.
        features: the name of the dictionary set (`oracle`, `sae:DIR`, `train`, ...).
        dictionaries: the dictionary of each writer to split, by writer name.

    Returns:
        The feature graph, holding the dictionaries it used.
    """
    held = {n.name for g in groups if g.kind == "writer" for n in g.nodes}
    groups = merged_groups(groups, {w: d for w, d in dictionaries.items() if set(d.merges) <= held and d.merges})
    writers = {n.name for g in groups if g.kind == "writer" for n in g.nodes}
    present = {w: d for w, d in dictionaries.items() if w in writers}
    return Graph(feature_groups(groups, present), n_positions, features, present)


def node_outputs(
    group: HookGroup, dictionaries: dict[str, Dictionary], value: torch.Tensor, nodes: Sequence[int] | None = None
) -> torch.Tensor:
    """Returns the outputs of a writer group's nodes [..., n_nodes, d_model] from its hook value
    [..., (head,) d_model]: each head's (or the single output's) slice, or a dictionary's parts of it.

    Args:
        group: a writer group of the graph.
        dictionaries: the graph's dictionaries, by writer name.
        value: the group's hook value [..., head, d_model] for a per-head group, else [..., d_model].
        nodes: positions of the nodes to compute, ascending, in the group's node order; None: every node. Only
            these are computed: a dictionary's unchosen features are never multiplied out.

    Returns:
        One output per chosen node, in the group's node order [..., len(nodes), d_model].

    Raises:
        GraphMismatchError: the group splits a writer that `dictionaries` has no dictionary for (a feature graph
            loaded from a file).
    """
    slots = value if group.per_head else value.unsqueeze(-2)
    if not group.split:
        if nodes is None:
            return slots
        return slots.index_select(-2, torch.tensor(list(nodes), dtype=torch.long, device=value.device))
    chosen = None if nodes is None else set(nodes)
    parts, whole = [], {n.name for n in group.nodes if n.kind not in (NodeKind.FEATURE, NodeKind.ERROR)}
    sizes: dict[str, int] = {}
    for node in group.nodes:
        sizes[node.component] = sizes.get(node.component, 0) + 1
    start = 0
    for slot, (component, size) in enumerate(sizes.items()):
        own = None if chosen is None else [i - start for i in range(start, start + size) if i in chosen]
        start += size
        if own == []:
            continue
        if component in dictionaries:
            parts.append(dictionaries[component].parts(slots[..., slot, :], own))
        elif component in whole:
            parts.append(slots[..., slot : slot + 1, :])
        else:
            raise GraphMismatchError(
                f"writer {component} is split into features but this graph holds no dictionary for it (feature "
                "graphs loaded from a file keep their nodes only); rebuild the graph with its dictionaries, e.g. "
                "task.graph(features='oracle')"
            )
    return torch.cat(parts, dim=-2)
