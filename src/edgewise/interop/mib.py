"""MIB circuit files <-> edgewise scores and circuits: write ours for MIB's evaluator, read theirs into our graph.

The circuit-localization track of MIB (Mueller et al. 2025, hannamw/MIB-circuit-track) reads and writes circuits in
the JSON of EAP-IG's `Graph.to_json` (hannamw/EAP-IG, `src/eap/graph.py`):

    {"cfg":   {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
     "nodes": {"input": {"in_graph": true}, "a0.h0": {"in_graph": false}, ..., "m11": {...}, "logits": {...}},
     "edges": {"input->a0.h0<q>": {"score": -0.0003, "in_graph": false}, ..., "m11->logits": {...}}}

Node and edge names, edgewise's on the left (see docs/mib.md):

    Resid Start   input         writer
    A{l}.{h}      a{l}.h{h}     writer
    MLP {l}       m{l}          writer and reader
    A{l}.{h}.Q    a{l}.h{h}<q>  reader; an edge is `{writer}->a{l}.h{h}<q>`
    A{l}.{j}.K    a{l}.h{h}<k>  reader, one per query head h of key-value head j (and .V / <v> alike)
    Resid End     logits        reader

MIB ungroups grouped-query attention (TransformerLens' `ungroup_grouped_query_attention`): every query head has its
own key and value inputs, and query head h uses key-value head h // (n_heads // n_kv_heads). edgewise keeps one key
and one value input per key-value head, so one edgewise edge into `A{l}.{j}.K` is several MIB edges.

Parallel blocks (GPT-NeoX/Pythia, Phi: attention and MLP read the same residual) are MIB's `parallel_attn_mlp`
graphs, whose MLPs read no head of their own layer: `to_mib` writes the flag from the graph, and `from_mib` refuses a
file whose flag is not the graph's.

MIB has no per-position edges and one embedding node, so per-position graphs and split embeddings cannot be written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import EdgewiseError, GraphMismatchError
from ..graph import Circuit, EdgeScores, Graph, Node, NodeKind
from ..outputs import write_text

MIB_FORMAT = (
    'EAP-IG\'s Graph.to_json / MIB circuit JSON: {"cfg": {"n_layers": int, "n_heads": int, '
    '"parallel_attn_mlp": bool, "d_model": int}, "nodes": {"input": {"in_graph": bool}, ...}, '
    '"edges": {"input->a0.h0<q>": {"score": float, "in_graph": bool}, ...}}'
)

_SOURCE = re.compile(r"^(?:input|a(\d+)\.h(\d+)|m(\d+))$")
_DESTINATION = re.compile(r"^(?:logits|a(\d+)\.h(\d+)<([qkv])>|m(\d+))$")


class MibFileError(EdgewiseError, ValueError):
    """A MIB circuit file (or its JSON record) that is missing, not JSON, malformed, or would hold a non-finite score
    or a bad cfg value."""


@dataclass(frozen=True)
class _MibShape:
    """How a graph lays out as a MIB graph: its cfg, query heads per key-value head, nodes by typed identity, and
    the MIB edges each of its edges becomes."""

    n_layers: int
    n_heads: int
    group_size: dict[int, int]  # layer -> query heads per key-value head (1 without grouped-query attention)
    nodes: dict[tuple, Node]  # ("input",), ("head", l, h), ("q" | "k" | "v", l, h), ("mlp", l), ("logits",)
    edge_names: list[tuple[str, ...]]  # per edge of the graph, in order: its MIB edge names
    parallel: bool  # attention and MLP read the same residual (MIB's parallel_attn_mlp): no head feeds its layer's MLP


def mib_node_names(node: Node, group_size: int = 1) -> tuple[str, ...]:
    """Returns MIB's names of an edgewise node: one name, except for a key or value input under grouped-query
    attention, which is one MIB input per query head of its group (`group_size` query heads per key-value head).

    Writers and the MLP get MIB's node names (`input`, `a{l}.h{h}`, `m{l}`); readers get the names after `->` in a
    MIB edge (`a{l}.h{h}<q>`, `m{l}`, `logits`). Raises GraphMismatchError for nodes MIB's graphs do not have.

    Args:
        node: the edgewise node, a writer or a reader.
        group_size: query heads per key-value head in the node's layer (1 without grouped-query attention); used
            only for key and value inputs.

    Returns:
        The MIB names: `group_size` of them for a key or value input, else one.

    Raises:
        GraphMismatchError: the node is a feature, error or module node, which MIB's graphs do not have.
    """
    if node.kind is NodeKind.EMBEDDING:
        return ("input",)
    if node.kind is NodeKind.OUTPUT:
        return ("logits",)
    if node.kind is NodeKind.MLP:
        return (f"m{node.layer}",)
    if node.kind is NodeKind.HEAD and node.input is None:
        return (f"a{node.layer}.h{node.head}",)
    if node.kind is NodeKind.HEAD and node.input == "q":
        return (f"a{node.layer}.h{node.head}<q>",)
    if node.kind is NodeKind.HEAD:
        first = node.head * group_size
        return tuple(f"a{node.layer}.h{h}<{node.input}>" for h in range(first, first + group_size))
    raise GraphMismatchError(
        f"{node.name} is a {node.kind.value} node; MIB's graphs hold only the embeddings, attention heads, MLPs and "
        "logits: export a graph built without dictionaries or module nodes"
    )


def edgewise_node(mib_name: str, graph: Graph) -> Node:
    """Returns the node of `graph` that MIB node `mib_name` denotes: a writer for `input` / `a{l}.h{h}`, a reader for
    `a{l}.h{h}<q|k|v>` / `logits`, the MLP for `m{l}`; MIB's query head h of a key or value input becomes the
    key-value head of its group. Raises MibFileError for a name that is not MIB's, GraphMismatchError for a node
    `graph` lacks.

    Args:
        mib_name: the MIB node name, e.g. `input`, `a0.h3`, `a0.h3<k>`, `m1`, `logits`.
        graph: the plain head/MLP graph the name is looked up in.

    Returns:
        The node of `graph`.

    Raises:
        MibFileError: `mib_name` is not a MIB node name.
        GraphMismatchError: `graph` has no such node, or MIB's format cannot hold `graph` (per position, split
            embeddings, dictionary features, unequal heads per layer).
    """
    shape = _shape(graph)
    key = _identity(mib_name, shape)
    if key not in shape.nodes:
        raise GraphMismatchError(
            f"MIB node {mib_name!r} has no counterpart in this graph ({shape.n_layers} layers, {shape.n_heads} heads "
            "per layer); was the file written for another model?"
        )
    return shape.nodes[key]


def to_mib(
    scores: EdgeScores, circuit: Circuit | None = None, n_heads: int | None = None, d_model: int | None = None
) -> dict:
    """Returns the MIB circuit record (EAP-IG's `Graph.to_json` layout) of `scores`, with `circuit`'s edges in_graph.

    Every MIB edge gets its edgewise edge's score; an edge into key-value head j's key or value input becomes one MIB
    edge per query head of j's group, each with the same score and in_graph. `circuit=None` puts no edge in the graph
    (an importance-score file, which MIB's evaluator thresholds itself). Nodes are in_graph by EAP-IG's rule: a node
    with an in-graph edge out and one in (`input`: out only); `logits` always.

    `n_heads` (query heads per layer) is counted in the graph; when given, it is checked against it. `d_model` is
    written as given; EAP-IG's loader needs an integer but reads it only to size neuron masks, which edge files do
    not have, so 0 is written when it is unknown. Raises GraphMismatchError for graphs MIB cannot hold (per
    position, split embeddings, dictionary features) and MibFileError for non-finite scores.

    Args:
        scores: the edge scores, on a plain graph with embeddings merged into `Resid Start`.
        circuit: the circuit whose edges are marked in_graph; None marks none.
        n_heads: the model's query heads per layer, checked against the graph's; None: not checked.
        d_model: the model's width, written to the cfg; None writes 0.

    Returns:
        The record, with `cfg`, `nodes` and `edges` keys, as `save_mib` writes it.

    Raises:
        GraphMismatchError: MIB's format cannot hold the graph, `n_heads` differs from the graph's, or
            `circuit` holds edges the graph lacks.
        MibFileError: a score is not finite, or `d_model` is not a positive integer.
    """
    graph = scores.graph
    shape = _shape(graph)
    if n_heads is not None and n_heads != shape.n_heads:
        raise GraphMismatchError(
            f"n_heads={n_heads} but the graph has {shape.n_heads} query heads per layer; pass the model's "
            "cfg.n_heads or leave n_heads out"
        )
    if d_model is not None and (isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1):
        raise MibFileError(f"d_model={d_model!r} is not a positive integer; pass the model's cfg.d_model or None")
    kept = torch.zeros(graph.n_edges, dtype=torch.bool) if circuit is None else circuit.mask(graph) > 0.5
    values = scores.scores.tolist()
    by_name: dict[str, dict] = {}
    for edge, names, value, in_graph in zip(graph.edges, shape.edge_names, values, kept.tolist()):
        if not math.isfinite(value):
            raise MibFileError(
                f"edge {edge.name} has score {value}; MIB files hold finite scores: fix or drop the method's output "
                "before exporting"
            )
        for name in names:
            by_name[name] = {"score": value, "in_graph": in_graph}
    edges = {name: by_name[name] for name in _all_edge_names(shape.n_layers, shape.n_heads, shape.parallel)}
    cfg = {
        "n_layers": shape.n_layers,
        "n_heads": shape.n_heads,
        "parallel_attn_mlp": shape.parallel,
        "d_model": d_model or 0,
    }
    return {"cfg": cfg, "nodes": _node_flags(edges, shape), "edges": edges}


def from_mib(record: dict, graph: Graph, method: str = "mib", task: str = "") -> tuple[EdgeScores, Circuit]:
    """Returns the edge scores and the circuit (its in_graph edges) of a MIB circuit record, on `graph`'s edges.

    Grouped-query attention: edgewise's edge into key-value head j's key (or value) input takes the mean of the
    scores of its group's MIB edges, and is in the circuit when any of them is. The mean keeps the score on the
    scale of one MIB edge (a query edge's scale), and equals that score when the group's edges agree, so a file
    written by `to_mib` round trips exactly. For linear attribution scores (EAP, EAP-IG) the shared input's score is
    the sum over the group instead: multiply those edges by the group size to get it.

    Every MIB edge of the cfg must be present (EAP-IG and MIB always write all of them): a missing edge raises
    MibFileError naming the count and an example, as do unknown names and non-finite or non-numeric scores. Node
    flags and any node or neuron scores are not read: MIB's evaluator derives nodes from edges too. A cfg whose
    n_layers or n_heads differs from the graph's raises GraphMismatchError.

    Args:
        record: the MIB circuit record, as `load_mib` returns it.
        graph: the plain head/MLP graph of the model the file was written for.
        method: the method name the scores carry.
        task: the task name the scores and the circuit carry.

    Returns:
        The scores, float64 on `graph`'s edges, and the circuit of the in_graph edges.

    Raises:
        MibFileError: the record is not MIB's, or its cfg, edge names or entries are malformed or incomplete.
        GraphMismatchError: the cfg is of another model (n_layers, n_heads, parallel attention and MLP), or MIB's
            format cannot hold `graph`.
    """
    cfg, edges = _check_record(record, "the MIB record")
    shape = _shape(graph)
    _check_cfg(cfg, shape)
    expected = {name for names in shape.edge_names for name in names}
    for name, entry in edges.items():
        if name not in expected:
            raise _unknown_edge(name, shape)
        _check_entry(name, entry)
    missing = [name for name in _all_edge_names(shape.n_layers, shape.n_heads, shape.parallel) if name not in edges]
    if missing:
        raise MibFileError(
            f"the MIB record lacks {len(missing)} of the {len(expected)} edges of a {shape.n_layers}-layer "
            f"{shape.n_heads}-head model, e.g. {missing[0]!r}; MIB files hold every edge (with score 0 and in_graph "
            "false for unscored ones): write the file with EAP-IG's Graph.to_json or edgewise's to_mib"
        )
    values, chosen = [], set()
    for edge, names in zip(graph.edges, shape.edge_names):
        group = [float(edges[name]["score"]) for name in names]
        # Equal scores are kept as they are: (x + x + x) / 3 need not be x in floating point.
        values.append(group[0] if len(set(group)) == 1 else math.fsum(group) / len(group))
        if any(edges[name]["in_graph"] for name in names):
            chosen.add(edge)
    scores = EdgeScores(graph, torch.tensor(values, dtype=torch.float64), method, task=task)
    circuit = Circuit(
        frozenset(chosen),
        description="in_graph edges of a MIB circuit file",
        metadata={"source": "mib"},
        task=task,
        n_graph_edges=graph.n_edges,
    )
    return scores, circuit


def save_mib(record: dict, path: str | Path) -> None:
    """Writes a MIB circuit record (from `to_mib`) as JSON at `path`, atomically (a failed write leaves the previous
    file as it was); raises OutputPathError if the file cannot be written and MibFileError if the record is not a MIB
    record.

    Args:
        record: the MIB circuit record (`to_mib`).
        path: the file to write; its folder must exist.

    Raises:
        MibFileError: the record lacks a `cfg`, `nodes` or `edges` object, or holds a NaN or infinite number.
        OutputPathError: the file cannot be written (no such folder, no permission, a full disk).
    """
    _check_record(record, "the record to save")
    try:
        text = json.dumps(record, allow_nan=False)  # NaN is not JSON, and MIB's evaluator cannot rank it
    except ValueError:
        raise MibFileError("the record to save holds a NaN or infinite number; build it with to_mib") from None
    write_text(path, text)  # atomic: a failed write raises OutputPathError and leaves the previous file


def load_mib(path: str | Path) -> dict:
    """Returns the MIB circuit record saved at `path`; raises MibFileError for a missing, non-JSON or malformed file,
    naming the format expected. Pass the record to `from_mib` to map it onto a graph.

    Args:
        path: the MIB circuit file, JSON.

    Returns:
        The record as read, checked only to have `cfg`, `nodes` and `edges` objects.

    Raises:
        MibFileError: the file is missing, unreadable, not JSON, or lacks a `cfg`, `nodes` or `edges` object.
    """
    try:
        record = json.loads(Path(path).read_text())
    except OSError as error:
        raise MibFileError(f"cannot read the MIB file {path}: {error.strerror}; expected {MIB_FORMAT}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MibFileError(f"{path} is not JSON ({error}); expected {MIB_FORMAT}") from None
    _check_record(record, str(path))
    return record


def _shape(graph: Graph) -> _MibShape:
    """Returns how `graph` lays out as a MIB graph; raises GraphMismatchError when MIB's format cannot hold it."""
    if graph.per_position:
        raise GraphMismatchError(
            "MIB circuit files have no per-position edges: export the plain graph (per_position=False)"
        )
    if graph.split_embeddings:
        raise GraphMismatchError(
            f"MIB has one embedding node (input) but this graph has {', '.join(graph.input_writers)}: build the graph "
            "with split_embeddings=False"
        )
    nodes: dict[tuple, Node] = {}
    for node in graph.writer_nodes + graph.reader_nodes:
        mib_node_names(node)  # raises for features, errors and modules
        nodes[_node_identity(node)] = node
    heads_per_layer: dict[int, int] = {}
    kv_heads: dict[tuple[int, str], int] = {}
    for node in graph.writer_nodes:
        if node.kind is NodeKind.HEAD:
            heads_per_layer[node.layer] = heads_per_layer.get(node.layer, 0) + 1
    for node in graph.reader_nodes:
        if node.input in ("k", "v"):
            kv_heads[node.layer, node.input] = kv_heads.get((node.layer, node.input), 0) + 1
    if len(set(heads_per_layer.values())) != 1:
        raise GraphMismatchError(
            f"MIB's cfg has one n_heads for every layer, but this graph's layers have {heads_per_layer} attention "
            "heads (layer: heads)"
        )
    n_heads = next(iter(heads_per_layer.values()))
    group_size = {}
    for layer in heads_per_layer:
        n_kv = kv_heads.get((layer, "k"), 0)
        if n_kv == 0 or n_heads % n_kv or kv_heads.get((layer, "v"), 0) != n_kv:
            raise GraphMismatchError(
                f"layer {layer} has {n_heads} query heads, {n_kv} key inputs and {kv_heads.get((layer, 'v'), 0)} "
                "value inputs; MIB needs as many key as value inputs, dividing the query heads into equal groups"
            )
        group_size[layer] = n_heads // n_kv
    n_layers = max(heads_per_layer) + 1
    edge_names = _mib_names(graph, group_size)
    ours = {name for names in edge_names for name in names}
    # a parallel block's MLP reads the block's input, so its layer's heads do not feed it: MIB's parallel_attn_mlp
    parallel = "a0.h0->m0" not in ours
    theirs = _all_edge_names(n_layers, n_heads, parallel)
    if ours != set(theirs):
        absent = next((name for name in theirs if name not in ours), None) or sorted(ours - set(theirs))[0]
        raise GraphMismatchError(
            f"this graph's edges are not those of a {n_layers}-layer {n_heads}-head "
            f"{'parallel' if parallel else 'sequential'} MIB graph (e.g. {absent!r} is in one but not the other); "
            "MIB's graphs are decoders whose every writer feeds every later reader, with every block sequential or "
            "every block parallel (parallel_attn_mlp)"
        )
    return _MibShape(n_layers, n_heads, group_size, nodes, edge_names, parallel)


def _node_identity(node: Node) -> tuple:
    """Returns the typed key of an edgewise node that `_identity` also computes from a MIB name."""
    if node.kind is NodeKind.EMBEDDING:
        return ("input",)
    if node.kind is NodeKind.OUTPUT:
        return ("logits",)
    if node.kind is NodeKind.MLP:
        return ("mlp", node.layer)
    return ("head" if node.input is None else node.input, node.layer, node.head)


def _identity(mib_name: str, shape: _MibShape) -> tuple:
    """Returns the typed key of a MIB node name, with a key or value input's query head turned into its key-value
    head; raises MibFileError for names that are not MIB's."""
    source, destination = _SOURCE.match(mib_name), _DESTINATION.match(mib_name)
    if source is None and destination is None:
        raise MibFileError(
            f"{mib_name!r} is not a MIB node name: use input, a{{layer}}.h{{head}}, m{{layer}}, logits, or "
            "a{layer}.h{head}<q|k|v> for a head's input"
        )
    if mib_name in ("input", "logits"):
        return (mib_name,)
    match = source or destination
    if match.group(match.re.groups) is not None:  # the last group is the MLP's layer in both patterns
        return ("mlp", int(match.group(match.re.groups)))
    layer, head = int(match.group(1)), int(match.group(2))
    if source is not None:
        return ("head", layer, head)
    attention_input = match.group(3)
    if attention_input == "q":
        return ("q", layer, head)
    return (attention_input, layer, head // shape.group_size.get(layer, 1))


def _mib_names(graph: Graph, group_size: dict[int, int]) -> list[tuple[str, ...]]:
    """Returns, for each edge of `graph` in order, the names of the MIB edges it becomes (`group_size`: query heads
    per key-value head, by layer)."""
    names = []
    for edge in graph.edges:
        writer = mib_node_names(graph.writer_node(edge.writer))[0]
        reader = graph.reader_node(edge.reader)
        names.append(tuple(f"{writer}->{r}" for r in mib_node_names(reader, group_size.get(reader.layer, 1))))
    return names


def _all_edge_names(n_layers: int, n_heads: int, parallel: bool = False) -> list[str]:
    """Returns every edge name of a MIB graph in EAP-IG's order (`Graph.from_model`): each layer's heads read (q, k, v)
    every earlier writer; its MLP reads those and, unless `parallel`, the layer's heads; the logits read everything.
    A parallel layer lists each earlier writer's q/k/v edges, then its edge into the MLP."""
    names, residual = [], ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        if parallel:
            for w in residual:
                names += [f"{w}->{h}<{x}>" for h in heads for x in "qkv"] + [f"{w}->m{layer}"]
            residual += heads
        else:
            names += [f"{w}->{h}<{x}>" for w in residual for h in heads for x in "qkv"]
            residual += heads
            names += [f"{w}->m{layer}" for w in residual]
        residual.append(f"m{layer}")
    return names + [f"{w}->logits" for w in residual]


def _node_flags(edges: dict[str, dict], shape: _MibShape) -> dict[str, dict]:
    """Returns MIB's node records: in_graph when an in-graph edge leaves the node and one enters it (`input` needs
    only one leaving, `logits` is always in), EAP-IG's rule after `apply_topn` / `prune`."""
    leaving, entering = set(), set()
    for name, entry in edges.items():
        if entry["in_graph"]:
            writer, reader = name.split("->")
            leaving.add(writer)
            entering.add(reader.split("<")[0])
    order = ["input"]
    for layer in range(shape.n_layers):
        order += [f"a{layer}.h{h}" for h in range(shape.n_heads)] + [f"m{layer}"]
    flags = {n: {"in_graph": n in leaving and (n == "input" or n in entering)} for n in order}
    flags["logits"] = {"in_graph": True}
    return flags


def _check_record(record: object, where: str) -> tuple[dict, dict]:
    """Returns (cfg, edges) of a MIB record; raises MibFileError naming the format when its top level is not MIB's."""
    if not isinstance(record, dict):
        raise MibFileError(f"{where} is a JSON {type(record).__name__}, not an object; expected {MIB_FORMAT}")
    absent = [key for key in ("cfg", "nodes", "edges") if not isinstance(record.get(key), dict)]
    if absent:
        raise MibFileError(f"{where} has no {' / '.join(absent)} object; expected {MIB_FORMAT}")
    return record["cfg"], record["edges"]


def _check_cfg(cfg: dict, shape: _MibShape) -> None:
    """Raises MibFileError for a malformed cfg and GraphMismatchError for one of another model than the graph's."""
    for key in ("n_layers", "n_heads"):
        if isinstance(cfg.get(key), bool) or not isinstance(cfg.get(key), int):
            raise MibFileError(f"the MIB cfg's {key} is {cfg.get(key)!r}, not an integer; expected {MIB_FORMAT}")
    if bool(cfg.get("parallel_attn_mlp", False)) != shape.parallel:
        theirs, ours = ("parallel", "sequential") if not shape.parallel else ("sequential", "parallel")
        raise GraphMismatchError(
            f"the MIB file is of a model with {theirs} attention and MLP (parallel_attn_mlp: "
            f"{str(not shape.parallel).lower()}), but the graph's blocks are {ours} (its MLPs "
            f"{'do not ' if shape.parallel else ''}read their layer's heads), so its edges do not match: load it "
            "with the graph of the model it was made for"
        )
    if (cfg["n_layers"], cfg["n_heads"]) != (shape.n_layers, shape.n_heads):
        raise GraphMismatchError(
            f"the MIB file is of a model with n_layers={cfg['n_layers']}, n_heads={cfg['n_heads']} but the graph has "
            f"n_layers={shape.n_layers}, n_heads={shape.n_heads}: load it with the graph of the model it was made for"
        )


def _check_entry(name: str, entry: object) -> None:
    """Raises MibFileError unless `entry` is MIB's {"score": finite number, "in_graph": bool}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("in_graph"), bool):
        raise MibFileError(f'edge {name!r} is {entry!r}; MIB edges are {{"score": float, "in_graph": bool}}')
    score = entry.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise MibFileError(f'edge {name!r} has score {score!r}, not a number; MIB edges are {{"score": float, ...}}')
    if not math.isfinite(score):
        raise MibFileError(
            f"edge {name!r} has score {score}; scores must be finite: re-run the method that wrote the file, or "
            "replace the non-finite scores"
        )


def _unknown_edge(name: str, shape: _MibShape) -> MibFileError:
    """Returns the error for an edge name that is not one of the cfg's MIB edges, saying why."""
    parts = name.split("->")
    if len(parts) != 2 or not _SOURCE.match(parts[0]) or not _DESTINATION.match(parts[1]):
        return MibFileError(
            f"{name!r} is not a MIB edge name: MIB edges are writer->reader with writers input, a{{l}}.h{{h}}, "
            "m{l} and readers a{l}.h{h}<q|k|v>, m{l}, logits, e.g. 'input->a0.h0<q>' or 'a0.h0->m0'"
        )
    return MibFileError(
        f"{name!r} is not an edge of a {shape.n_layers}-layer {shape.n_heads}-head MIB graph (layers count from 0, "
        "and a writer must come before its reader); was the file edited or written for another model?"
    )
