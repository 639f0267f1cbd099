"""ACDC's node names <-> edgewise's: read circuits written in ACDC's hook names, write ours in theirs.

ACDC (Conmy et al. 2023, ArthurConmy/Automatic-Circuit-Discovery) names a graph node by a TransformerLens hook name
and a `TorchIndex` that picks one head out of the hook's value: `(None, None, 3)`, printed `[:, :, 3]`, for head 3;
`(None,)`, printed `[:]`, for the whole hook. An ACDC edge is keyed receiver first:
`(receiver_hook, receiver_index, sender_hook, sender_index)`. edgewise, like auto-circuit, keys edges writer first,
`(writer, reader)`, and its node names are auto-circuit's, so auto-circuit names need no translation.

    ACDC node                                        edgewise / auto-circuit     role
    hook_embed                          [:]          Resid Start (Tok Embed)     writer
    hook_pos_embed                      [:]          Resid Start (Pos Embed)     writer
    blocks.0.hook_resid_pre             [:]          Resid Start                 writer (ACDC without use_pos_embed)
    blocks.{l}.attn.hook_result         [:, :, h]    A{l}.{h}                    writer
    blocks.{l}.hook_mlp_out             [:]          MLP {l}                     writer
    blocks.{l}.hook_q_input             [:, :, h]    A{l}.{h}.Q                  reader
    blocks.{l}.hook_k_input             [:, :, h]    A{l}.{h}.K                  reader (h = key-value head)
    blocks.{l}.hook_v_input             [:, :, h]    A{l}.{h}.V                  reader (h = key-value head)
    blocks.{l}.hook_mlp_in              [:]          MLP {l}                     reader (older ACDC: hook_resid_mid)
    blocks.{L-1}.hook_resid_post        [:]          Resid End                   reader
    blocks.{l}.attn.hook_q/_k/_v        [:, :, h]    (none: inside head A{l}.{h})

The names in brackets apply with `split_embeddings=True` (edgewise's graph built with split embeddings); otherwise
both embedding hooks merge into `Resid Start`, as auto-circuit does.

ACDC's graph has three edge types (acdc/TLACDCEdge.py, EdgeType):
- ADDITION: a writer's output summed into a reader's input through the residual stream. These are exactly
  edgewise's edges and map one to one.
- DIRECT_COMPUTATION: `hook_q_input -> hook_q` (and k, v) inside one head, and in early ACDC versions
  `hook_mlp_in -> hook_mlp_out` inside one MLP. ACDC counts them in its edge counts.
- PLACEHOLDER: `hook_q/k/v -> hook_result` inside one head (later ACDC versions also `hook_mlp_in -> hook_mlp_out`),
  kept only to make ACDC's graph connected; ACDC does not count them.
edgewise's graph has no nodes inside a head or an MLP: a reader's input feeds its node directly. So the last two
types have no counterpart and `import_acdc_edges` drops them. A head that ACDC keeps only through such edges (e.g.
`hook_q -> hook_result` with nothing into `hook_q_input`) contributes no edge here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from ..errors import GraphMismatchError
from ..graph import Edge, Graph, NodeKind, head_node, mlp_node, parse_node_name

WHOLE: tuple = (None,)  # ACDC's index for a whole hook, printed [:]

AcdcIndex = tuple  # (None,) for a whole hook, (None, None, head) for one head
AcdcEdge = tuple[str, AcdcIndex, str, AcdcIndex]  # (receiver, receiver index, sender, sender index)
AcdcEdgeType = Literal["ADDITION", "DIRECT_COMPUTATION", "PLACEHOLDER"]

ACCEPTED_FORMS = (
    "edgewise / auto-circuit names: Resid Start, Tok Embed, Pos Embed, A{layer}.{head}, A{layer}.{head}.Q/.K/.V, "
    "MLP {layer}, Resid End; ACDC hook names with a TorchIndex (tuple such as (None, None, 0) or (None,), or the "
    "printed form [:, :, 0] / [:]): hook_embed, hook_pos_embed, blocks.0.hook_resid_pre, "
    "blocks.{layer}.attn.hook_result[:, :, head], blocks.{layer}.hook_q_input/hook_k_input/hook_v_input[:, :, head], "
    "blocks.{layer}.hook_mlp_in (or hook_resid_mid), blocks.{layer}.hook_mlp_out, blocks.{last layer}.hook_resid_post, "
    "and inside a head blocks.{layer}.attn.hook_q/hook_k/hook_v[:, :, head]"
)

# ACDC hook name -> (kind, letter); kind says which table row the hook is.
_HEAD_HOOKS = {
    "attn.hook_result": ("head_out", None),
    "hook_q_input": ("head_in", "Q"),
    "hook_k_input": ("head_in", "K"),
    "hook_v_input": ("head_in", "V"),
    "attn.hook_q": ("head_inner", "Q"),
    "attn.hook_k": ("head_inner", "K"),
    "attn.hook_v": ("head_inner", "V"),
}
_WHOLE_HOOKS = {
    "hook_mlp_out": "mlp_out",
    "hook_mlp_in": "mlp_in",
    "hook_resid_mid": "mlp_in",
    "hook_resid_post": "resid_post",
    "hook_resid_pre": "resid_pre",
}
_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_PRINTED_INDEX = re.compile(r"^(.*?)\s*\[([^\]]*)\]$")


def _unknown(name: object, why: str = "") -> GraphMismatchError:
    reason = f" ({why})" if why else ""
    return GraphMismatchError(f"unknown node name {name!r}{reason}. Accepted forms: {ACCEPTED_FORMS}")


def format_acdc_node(hook: str, index: AcdcIndex = WHOLE) -> str:
    """Returns ACDC's printed form of a node, e.g. `blocks.3.hook_q_input[:, :, 0]` or `hook_embed[:]`.

    Args:
        hook: the TransformerLens hook name.
        index: the TorchIndex: a tuple or list of None and ints, or ACDC's TorchIndex; the default is the whole hook.

    Returns:
        The printed form `hook[...]`, None printed as `:`.

    Raises:
        GraphMismatchError: `index` is not a TorchIndex-like tuple of None and ints.
    """
    parts = [":" if i is None else str(i) for i in _as_index(index, hook)]
    return f"{hook}[{', '.join(parts)}]"


def parse_acdc_node(text: str) -> tuple[str, AcdcIndex]:
    """Returns (hook, index) from ACDC's printed form; a name without brackets means the whole hook, `[:]`.

    Args:
        text: the printed node, e.g. `blocks.3.hook_q_input[:, :, 0]`; `COLON` or `COL` may stand for `:`, as in
            ACDC's graphviz output.

    Returns:
        The hook name and the index as a tuple of None (for `:`) and ints.

    Raises:
        GraphMismatchError: the brackets hold something other than colons and integers.
    """
    match = _PRINTED_INDEX.match(text.strip())
    if match is None:
        return text.strip(), WHOLE
    hook, inside = match.group(1), match.group(2)
    index = []
    for part in (p.strip() for p in inside.split(",")):
        if part in (":", "COLON", "COL"):  # ACDC's graphviz output spells the colon out
            index.append(None)
        elif part.lstrip("-").isdigit():
            index.append(int(part))
        else:
            raise _unknown(text, f"cannot read the index [{inside}]")
    return hook, tuple(index)


def _as_index(index: object, name: object) -> AcdcIndex:
    """Returns a TorchIndex-like value (tuple, list, or ACDC's TorchIndex with `hashable_tuple`) as a plain tuple."""
    index = getattr(index, "hashable_tuple", index)
    if not isinstance(index, (tuple, list)) or not all(i is None or isinstance(i, int) for i in index):
        raise _unknown(name, f"index {index!r} is not a TorchIndex-like tuple of None and ints")
    return tuple(index)


def _head_of(index: AcdcIndex, hook: str) -> int:
    if len(index) != 3 or index[0] is not None or index[1] is not None or not isinstance(index[2], int):
        raise _unknown(
            format_acdc_node(hook, index), f"{hook} is a per-head hook; pick one head with (None, None, head)"
        )
    return index[2]


def _classify(hook: str, index: AcdcIndex, split_embeddings: bool) -> tuple[str, str, tuple]:
    """Returns (role, edgewise name, identity) of one ACDC node; role is writer, reader or inner (inside a head).

    identity is (layer, head, letter) for head hooks and (layer,) for MLP hooks, to check that an internal edge stays
    inside one head or MLP.
    """
    shown = format_acdc_node(hook, index) if all(i is None or isinstance(i, int) for i in index) else hook
    if hook in ("hook_embed", "hook_pos_embed"):
        if index != WHOLE:
            raise _unknown(shown, f"{hook} is a whole hook; its index is (None,)")
        split_name = "Tok Embed" if hook == "hook_embed" else "Pos Embed"
        return "writer", split_name if split_embeddings else "Resid Start", ()
    match = _BLOCK_HOOK.match(hook)
    if match is None:
        raise _unknown(shown)
    layer, rest = int(match.group(1)), match.group(2)
    if rest in _HEAD_HOOKS:
        kind, letter = _HEAD_HOOKS[rest]
        head = _head_of(index, hook)
        if kind == "head_out":
            return "writer", head_node(layer, head).name, (layer, head, None)
        name = head_node(layer, head, letter.lower()).name
        return ("reader" if kind == "head_in" else "inner"), name, (layer, head, letter)
    if rest in _WHOLE_HOOKS:
        if index != WHOLE:
            raise _unknown(shown, f"{hook} is a whole hook; its index is (None,)")
        kind = _WHOLE_HOOKS[rest]
        if kind in ("mlp_out", "mlp_in"):
            return ("writer" if kind == "mlp_out" else "reader"), mlp_node(layer).name, (layer,)
        if kind == "resid_post":
            return "reader", "Resid End", ()
        if layer == 0:  # ACDC's merged embedding node
            if split_embeddings:
                raise GraphMismatchError(
                    f"{shown} is ACDC's merged embedding node (run without use_pos_embed); it cannot be split into "
                    "Tok Embed and Pos Embed: import with split_embeddings=False"
                )
            return "writer", "Resid Start", ()
    raise _unknown(shown)


def _classify_edgewise(name: str, split_embeddings: bool) -> tuple[str, str] | None:
    """Returns (role, name) for an edgewise / auto-circuit node name; None when `name` is not one. MLPs: role both."""
    try:
        node = parse_node_name(name)
    except GraphMismatchError:
        return None
    if node.kind is NodeKind.EMBEDDING:
        return "writer", (name if split_embeddings or name == "Resid Start" else "Resid Start")
    if node.kind is NodeKind.OUTPUT:
        return "reader", name
    if node.kind is NodeKind.MLP:
        return "both", name
    return ("reader" if node.input else "writer"), name


def from_acdc_name(node: str, index: object = None, split_embeddings: bool = False) -> str:
    """Returns the edgewise node name of ACDC node `node` (hook name, or printed form `hook[:, :, h]`) at `index`.

    Raises GraphMismatchError for unknown names and for nodes inside a head (`attn.hook_q` etc.), which edgewise's
    graph does not have.

    Args:
        node: the ACDC hook name, or its printed form with the index in brackets.
        index: the TorchIndex (tuple, list or ACDC's TorchIndex); None takes the index printed in `node`, else the
            whole hook.
        split_embeddings: map `hook_embed` / `hook_pos_embed` to `Tok Embed` / `Pos Embed` (a graph built with
            split embeddings) rather than both to `Resid Start`.

    Returns:
        The edgewise (and auto-circuit) node name, e.g. `A3.0.Q` for `blocks.3.hook_q_input[:, :, 0]`.

    Raises:
        GraphMismatchError: the name or index is not one ACDC's graph has, the node lies inside a head, or
            `split_embeddings` is asked of ACDC's merged embedding node `blocks.0.hook_resid_pre`.
    """
    hook, printed_index = parse_acdc_node(node)
    idx = printed_index if index is None else _as_index(index, node)
    role, name, _ = _classify(hook, idx, split_embeddings)
    if role == "inner":
        raise GraphMismatchError(
            f"{format_acdc_node(hook, idx)} lies inside head {parse_node_name(name).component}; edgewise's graph has "
            "no node there (a reader's input feeds the head directly). Use the head's input hook, e.g. "
            f"{format_acdc_node(hook.replace('.attn.hook_', '.hook_') + '_input', idx)}"
        )
    return name


def to_acdc_name(
    node: str, role: Literal["writer", "reader"] | None = None, n_layers: int | None = None
) -> tuple[str, AcdcIndex]:
    """Returns ACDC's (hook name, index) of an edgewise / auto-circuit node name.

    `MLP {l}` is both a writer (hook_mlp_out) and a reader (hook_mlp_in): pass `role` for it. `Resid End` becomes
    `blocks.{n_layers - 1}.hook_resid_post`, so it needs `n_layers`. `Resid Start` becomes ACDC's merged embedding
    node `blocks.0.hook_resid_pre`; `Tok Embed` / `Pos Embed` become `hook_embed` / `hook_pos_embed`.

    Args:
        node: the edgewise / auto-circuit node name, e.g. `A3.0`, `A3.0.Q`, `MLP 2`, `Resid End`.
        role: whether the node is meant as a writer or a reader; needed for `MLP {l}`, checked for the others.
        n_layers: the model's number of layers; needed for `Resid End`.

    Returns:
        ACDC's hook name and TorchIndex tuple: `(None, None, head)` for a head, `(None,)` for a whole hook.

    Raises:
        GraphMismatchError: `node` is not an edgewise node name, is not of `role`, or lacks the `role` or
            `n_layers` it needs.
    """
    parsed = _classify_edgewise(node, split_embeddings=True)
    if parsed is None:
        raise _unknown(node, "not an edgewise node name")
    if role is not None and parsed[0] not in (role, "both"):
        raise GraphMismatchError(f"{node} is a {parsed[0]}, not a {role}; writers are the first element of an edge")
    if node == "Resid Start":
        return "blocks.0.hook_resid_pre", WHOLE
    if node == "Tok Embed":
        return "hook_embed", WHOLE
    if node == "Pos Embed":
        return "hook_pos_embed", WHOLE
    if node == "Resid End":
        if n_layers is None:
            raise GraphMismatchError(
                "Resid End is ACDC's blocks.{n_layers - 1}.hook_resid_post: pass n_layers (model.cfg.n_layers)"
            )
        return f"blocks.{n_layers - 1}.hook_resid_post", WHOLE
    parsed_node = parse_node_name(node)
    if parsed_node.kind is NodeKind.MLP:
        if role is None:
            raise GraphMismatchError(
                f"{node} is both a writer (hook_mlp_out) and a reader (hook_mlp_in): pass role='writer' or 'reader'"
            )
        return f"blocks.{parsed_node.layer}.hook_mlp_{'out' if role == 'writer' else 'in'}", WHOLE
    layer, head = parsed_node.layer, parsed_node.head
    if parsed_node.input is None:
        return f"blocks.{layer}.attn.hook_result", (None, None, head)
    return f"blocks.{layer}.hook_{parsed_node.input}_input", (None, None, head)


def acdc_edge_type(edge: Iterable) -> AcdcEdgeType:
    """Returns ACDC's EdgeType name of a 4-tuple ACDC edge (receiver, receiver index, sender, sender index).

    MLP-internal edges (hook_mlp_in -> hook_mlp_out) are reported as PLACEHOLDER, ACDC's current label; its early
    versions called them DIRECT_COMPUTATION. Raises GraphMismatchError for pairs ACDC's graph cannot hold.

    Args:
        edge: the ACDC edge, receiver first; indices as tuples, lists or ACDC TorchIndex.

    Returns:
        "ADDITION", "DIRECT_COMPUTATION" or "PLACEHOLDER".

    Raises:
        GraphMismatchError: the edge is not a 4-tuple of known ACDC nodes, or joins nodes no ACDC edge joins.
    """
    (r_role, r_name, r_id), (s_role, s_name, s_id) = _classify_acdc_edge(tuple(edge), split_embeddings=False)
    if s_role == "writer" and r_role == "reader":
        return "ADDITION"
    if s_role == "reader" and r_role == "inner" and s_id == r_id:
        return "DIRECT_COMPUTATION"  # hook_q_input -> hook_q inside one head
    if s_role == "inner" and r_role == "writer" and s_id[:2] == r_id[:2] and r_id[2] is None:
        return "PLACEHOLDER"  # hook_q/k/v -> hook_result inside one head
    if s_role == "reader" and r_role == "writer" and len(s_id) == 1 and s_id == r_id:
        return "PLACEHOLDER"  # hook_mlp_in -> hook_mlp_out inside one MLP
    raise GraphMismatchError(
        f"ACDC edge {_show(edge)} joins {s_name} ({s_role}) to {r_name} ({r_role}); ACDC's graph only has writer -> "
        "reader edges through the residual stream and edges inside one head or MLP (receiver is listed first)"
    )


def _show(edge: tuple) -> str:
    try:
        return f"{format_acdc_node(edge[2], edge[3])} -> {format_acdc_node(edge[0], edge[1])}"
    except (GraphMismatchError, IndexError, TypeError):
        return repr(edge)


def _classify_acdc_edge(edge: tuple, split_embeddings: bool) -> tuple[tuple, tuple]:
    if len(edge) != 4 or not isinstance(edge[0], str) or not isinstance(edge[2], str):
        raise GraphMismatchError(
            f"an ACDC edge is a 4-tuple (receiver, receiver index, sender, sender index); got {edge!r}"
        )
    receiver = _classify(edge[0], _as_index(edge[1], edge[0]), split_embeddings)
    sender = _classify(edge[2], _as_index(edge[3], edge[2]), split_embeddings)
    return receiver, sender


def _endpoint(text: str, position: Literal["writer", "reader"], split_embeddings: bool) -> tuple[str, str, tuple]:
    """Returns (role, edgewise name, ACDC (hook, index) or ()) of one end of a 2-element edge given by name."""
    if not isinstance(text, str):
        raise _unknown(text, "a 2-element edge holds two node names")
    parsed = _classify_edgewise(text, split_embeddings)
    if parsed is not None:
        role, name = parsed
        return (position if role == "both" else role), name, ()
    hook, index = parse_acdc_node(text)
    role, name, _ = _classify(hook, index, split_embeddings)
    return role, name, (hook, index)


def import_acdc_edges(
    edges: Iterable | Mapping, split_embeddings: bool = False, graph: Graph | None = None
) -> set[tuple[str, str]]:
    """Returns the (writer, reader) edgewise edges of a circuit given in ACDC's (or auto-circuit's) names.

    Accepted items:
    - ACDC 4-tuples `(receiver, receiver_index, sender, sender_index)`, indices as tuples / lists / ACDC TorchIndex;
    - a Mapping from such tuples to `present` flags (ACDC's `get_tracr_reverse_edges()` format, or
      `{k: e.present for k, e in correspondence.all_edges().items()}`): only present edges are read;
    - 2-tuples `(writer, reader)` (writer first, as in edgewise and auto-circuit) whose ends are edgewise /
      auto-circuit names or ACDC printed nodes such as `blocks.3.hook_q_input[:, :, 0]`;
    - auto-circuit edge names `"Resid Start->A3.0.V"`.
    ACDC's ADDITION edges map one to one; its DIRECT_COMPUTATION and PLACEHOLDER edges (inside a head or an MLP)
    have no counterpart in edgewise's graph and are dropped. `hook_embed` and `hook_pos_embed` both become
    `Resid Start` unless `split_embeddings`. With `graph`, every edge is checked to be one of its edges.
    Unknown names raise GraphMismatchError naming the bad name and the accepted forms.

    Args:
        edges: the circuit's edges in any of the forms above, or a Mapping from ACDC 4-tuples to present flags (or
            to objects with a `present` attribute).
        split_embeddings: keep `hook_embed` / `hook_pos_embed` apart as `Tok Embed` / `Pos Embed`.
        graph: a graph to check every edge against; None: no check.

    Returns:
        The (writer, reader) name pairs of the circuit's residual-stream edges.

    Raises:
        GraphMismatchError: an item cannot be read, names an unknown node, is not writer -> reader, or (with
            `graph`) is not an edge of `graph`.
    """
    if isinstance(edges, Mapping):
        items = [key for key, present in edges.items() if getattr(present, "present", present)]
    else:
        items = list(edges)
    out: set[tuple[str, str]] = set()
    for item in items:
        if isinstance(item, str):
            if "->" not in item:
                raise _unknown(item, "an edge given as one string is written writer->reader")
            item = tuple(part.strip() for part in item.split("->", 1))
        item = tuple(item)
        if len(item) == 4:
            if acdc_edge_type(item) != "ADDITION":
                continue
            (_, reader, _), (_, writer, _) = _classify_acdc_edge(item, split_embeddings)
        elif len(item) == 2:
            w_role, writer, w_acdc = _endpoint(item[0], "writer", split_embeddings)
            r_role, reader, r_acdc = _endpoint(item[1], "reader", split_embeddings)
            if "inner" in (w_role, r_role):
                if not (w_acdc and r_acdc):
                    raise GraphMismatchError(f"edge {item!r} joins a node inside a head to an edgewise node")
                acdc_edge_type((*r_acdc, *w_acdc))  # raises unless the edge stays inside one head
                continue  # an edge inside one head: no edgewise counterpart
            if w_role != "writer" or r_role != "reader":
                raise GraphMismatchError(
                    f"edge {item!r} is not writer -> reader: {item[0]} is a {w_role} and {item[1]} a {r_role}. "
                    "2-element edges are (writer, reader); ACDC's 4-tuples list the receiver first"
                )
        else:
            raise GraphMismatchError(
                f"cannot read edge {item!r}: give ACDC 4-tuples (receiver, receiver index, sender, sender index), "
                "(writer, reader) pairs, or 'writer->reader' strings"
            )
        if graph is not None:
            graph.edge_index(Edge(writer, reader))
        out.add((writer, reader))
    return out


def export_acdc_edges(edges: Iterable, n_layers: int | None = None) -> list[AcdcEdge]:
    """Returns ACDC 4-tuples (receiver, receiver index, sender, sender index) for edgewise (writer, reader) edges.

    Only ADDITION edges are written: ACDC's DIRECT_COMPUTATION / PLACEHOLDER edges inside each used head and MLP are
    not (add them when ACDC needs a connected correspondence). `n_layers` is needed when an edge reads `Resid End`.

    Args:
        edges: the edges, as `Edge`s or (writer, reader) name pairs; an `Edge`'s position is not written.
        n_layers: the model's number of layers, for edges into `Resid End`.

    Returns:
        One ACDC 4-tuple per edge, in the order given.

    Raises:
        GraphMismatchError: a name is not an edgewise node name, a writer or reader is in the wrong place, or
            `n_layers` is missing for `Resid End`.
    """
    out = []
    for edge in edges:
        writer, reader = (edge.writer, edge.reader) if isinstance(edge, Edge) else tuple(edge)
        sender, sender_index = to_acdc_name(writer, "writer", n_layers)
        receiver, receiver_index = to_acdc_name(reader, "reader", n_layers)
        out.append((receiver, receiver_index, sender, sender_index))
    return out
