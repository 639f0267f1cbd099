"""Compile RASP programs with tracr into edgewise Transformers, and read their true circuits off the compiler.

The compiler's craft model says, for every attention head and MLP, which residual-stream directions (labelled by
RASP operation and value) it reads through its query, key and value inputs and which it writes. A writer -> reader
edge is in the ground truth when the writer writes a direction the reader reads. Compiled weights and the derived
circuit are cached on disk, keyed by a fingerprint of the program, so tracr's compile time is paid once. Each
entry records its cache format, fingerprint and task name, and is recompiled (with a CacheWarning) when any of them
disagrees or the file cannot be read; a cache that cannot be written costs the next run a compile, never this one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgewise.adapters import TransformerAdapter
from edgewise.cache import cache_root
from edgewise.errors import CacheWarning, CompileError, InvalidTokensError
from edgewise.graph import Graph, feature_graph, head_node, mlp_node, output_node
from edgewise.models import Transformer, TransformerConfig

from .oracle import oracle_dictionaries
from .truth import derived_edges, derived_feature_edges

CACHE_FORMAT = 6  # bump when the conversion, the ground-truth rule or the stored fields change
COMPILER_BOS = "BOS"
COMPILER_PAD = "PAD"


def default_cache_dir() -> Path:
    """Returns $EDGEWISE_CACHE/tracr, or ~/.cache/edgewise/tracr."""
    return cache_root() / "tracr"


@dataclass
class CompiledProgram:
    """A tracr program loaded into an edgewise Transformer, with its input/output coding and true circuit.

    Attributes:
        name: the task's name.
        model: the compiled (or compressed) transformer, in eval mode.
        vocab: input values, without BOS/PAD.
        max_seq_len: the longest input the program was compiled for (BOS not counted).
        encoding: input value (and BOS, PAD) -> token id.
        output_values: categorical outputs: the value of each output logit; numerical: None.
        ground_truth: plain-graph (writer, reader) edges the program uses, by node name.
        ground_truth_split: the same with Tok Embed and Pos Embed apart.
        reads: reader node name -> residual directions it reads.
        writes: writer node name -> residual directions it writes.
        residual_labels: the label of each residual dimension, in order.
        feature_ground_truth: (feature, reader) edges over the oracle features, on both the merged and the split
            embeddings' graphs.
        variables: residual direction label -> the RASP variable it codes.
        operations: RASP variable -> its operation (Map, Aggregate, ...).
        fingerprint: the cache key it was stored under: the program's, or its compression's.
        projection: in a compressed program (compressed.py), the projection [d_residual, d_model] (residual
            x -> x @ projection); None for a compiled one.
        compression: in a compressed program, how the compression went (dimensions, final loss, agreement with
            tracr's outputs); {} for a compiled one.
    """

    name: str
    model: Transformer
    vocab: list
    max_seq_len: int
    encoding: dict
    output_values: list | None
    ground_truth: list[tuple[str, str]]
    ground_truth_split: list[tuple[str, str]] = field(default_factory=list)
    reads: dict[str, list[str]] = field(default_factory=dict)
    writes: dict[str, list[str]] = field(default_factory=dict)
    residual_labels: list[str] = field(default_factory=list)
    feature_ground_truth: list[tuple[str, str]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    operations: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    projection: torch.Tensor | None = None
    compression: dict = field(default_factory=dict)

    def writer_operations(self) -> dict[str, list[str]]:
        """Returns, per writer, the RASP variables it computes with their operations: `opp_idx_4 (SequenceMap)`.

        Returns:
            Writer node name -> its variables, each with its operation; writers that write nothing are left out.
        """
        return {
            writer: [f"{v} ({self._operation(v)})" for v in dict.fromkeys(self.variables[d] for d in labels)]
            for writer, labels in self.writes.items()
            if labels
        }

    def _operation(self, variable: str) -> str:
        """Returns a variable's operation; a compiler scratch space (`length_5_selector_width_attn_output`) is named
        after the operation it belongs to, and the embeddings' tokens, indices and one are inputs."""
        if variable in self.operations:
            return self.operations[variable]
        owner = next((v for v in self.operations if variable.startswith(f"{v}_")), None)
        return "input" if owner is None else f"inside {owner}'s {self.operations[owner]}"

    def carried(self, writer: str, reader: str) -> list[str]:
        """Returns the RASP variables a writer -> reader edge can carry: those of the directions both use.

        Args:
            writer: the writer's node name.
            reader: the reader's node name.

        Returns:
            The variables, in the writer's order; empty for an edge that carries nothing.
        """
        shared = [d for d in self.writes.get(writer, ()) if d in set(self.reads.get(reader, ()))]
        return list(dict.fromkeys(self.variables[d] for d in shared))

    def oracle_dictionaries(self) -> dict:
        """Returns each writer's oracle dictionary: one feature per residual direction it writes (oracle.py), the
        direction taken through the projection in a compressed program.

        Returns:
            Writer node name -> its dictionary (Dictionary); writers that write nothing are left out.
        """
        return oracle_dictionaries(self.writes, self.residual_labels, self.projection)

    @property
    def categorical(self) -> bool:
        """Returns whether the outputs are categorical (one logit per value) rather than numerical."""
        return self.output_values is not None

    @property
    def bos_id(self) -> int:
        """Returns the BOS token's id."""
        return self.encoding[COMPILER_BOS]

    @property
    def pad_id(self) -> int:
        """Returns the PAD token's id."""
        return self.encoding[COMPILER_PAD]

    def encode(self, sequences: list[list]) -> torch.Tensor:
        """Returns token ids [batch, 1 + longest] with BOS prepended and shorter sequences padded with PAD.

        Args:
            sequences: input sequences of vocabulary values.

        Returns:
            The token ids (long).

        Raises:
            InvalidTokensError: a sequence is longer than `max_seq_len`, or holds a value outside the vocabulary.
        """
        width = max(len(s) for s in sequences)
        if width > self.max_seq_len:
            raise InvalidTokensError(
                f"{self.name} was compiled for sequences up to {self.max_seq_len}; got one of {width}"
            )
        try:
            rows = [[self.bos_id] + [self.encoding[v] for v in s] + [self.pad_id] * (width - len(s)) for s in sequences]
        except KeyError as err:
            raise InvalidTokensError(f"value {err.args[0]!r} is not in {self.name}'s vocabulary {self.vocab}") from None
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, logits: torch.Tensor) -> list[list]:
        """Returns the program's outputs per sequence (BOS position dropped): argmax values or numbers.

        Args:
            logits: the model's outputs [batch, pos, out].

        Returns:
            Per sequence, the output value at each position after BOS (padding positions included).
        """
        if self.output_values is None:
            return logits[:, 1:, 0].tolist()
        return [[self.output_values[i] for i in row] for row in logits[:, 1:].argmax(-1).tolist()]


def _label(direction) -> str:
    return str(direction.name) if direction.value is None else f"{direction.name}:{direction.value}"


def program_fingerprint(program, vocab: set, max_seq_len: int, causal: bool) -> str:
    """Returns a hash of the program's structure and of every operation's values on fixed sample inputs.

    RASP labels carry global ids that depend on what else was built in the process, so operations are numbered by
    a depth-first walk from the output instead; the sampled values make two programs with the same shape but
    different functions hash apart. The tracr and edgewise versions are part of the key.

    Annotations are hashed as tracr reads them, not as they happen to be stored: tracr fills in default annotations
    (an SOp's categorical encoding) lazily, in place, the first time anything reads them, and the compiler reads them
    on every expression it compiles, including the `rasp.tokens` and `rasp.indices` every program shares.

    Args:
        program (rasp.SOp): the RASP program.
        vocab: the input values.
        max_seq_len: the longest input.
        causal: whether it is compiled with causal attention.

    Returns:
        The first 16 hex digits of a SHA-256 hash.
    """
    from importlib.metadata import version

    from tracr.rasp import rasp

    order: list = []
    number: dict[int, int] = {}

    def visit(expr) -> int:
        if id(expr) not in number:
            children = [visit(child) for child in expr.children]
            number[id(expr)] = len(order)
            order.append((expr, children))
        return number[id(expr)]

    visit(program)
    rng = random.Random(0)
    values = sorted(vocab, key=repr)
    samples = [[rng.choice(values) for _ in range(rng.randint(1, max_seq_len))] for _ in range(24)]
    parts = [repr(values), max_seq_len, causal, CACHE_FORMAT, version("tracr-pypi"), version("edgewise")]
    for expr, children in order:
        annotations = _compiled_annotations(expr)
        outputs = [repr(rasp.evaluate(expr, s)) for s in samples] if isinstance(expr, rasp.SOp) else []
        parts.append([type(expr).__name__, children, annotations, outputs])
    return hashlib.sha256(json.dumps(parts, default=repr).encode()).hexdigest()[:16]


def _compiled_annotations(expr) -> list[tuple[str, str]]:
    """Returns the expression's annotations other than its name, with the encoding tracr compiles an SOp with even if no
    one has read (and so stored) it yet."""
    from tracr.rasp import rasp

    annotations = {k: v for k, v in expr.annotations.items() if k != "name"}
    if isinstance(expr, rasp.SOp) and "encoding" not in annotations:
        # what the lazy default would store; computed here without storing it in the caller's program
        annotations["encoding"] = rasp.DEFAULT_ANNOTATORS["encoding"](expr)
    return sorted((k, repr(v)) for k, v in annotations.items())


def compile_program(
    program,
    vocab: set,
    max_seq_len: int,
    name: str,
    causal: bool = False,
    cache_dir: Path | None = None,
) -> CompiledProgram:
    """Returns `program` compiled by tracr and loaded into an edgewise Transformer, from the cache when possible.

    An entry that is damaged, of another cache format, or saved for another program or task is recompiled and
    replaced, with a CacheWarning naming the file; a cache that cannot be written is warned about, not raised.

    Args:
        program (rasp.SOp): the RASP program.
        vocab: the input values.
        max_seq_len: the longest input.
        name: the task's name, stored with the entry and part of its file name.
        causal: compile with causal attention.
        cache_dir: the cache folder; None: `default_cache_dir()`.

    Returns:
        The compiled program.

    Raises:
        CompileError: `program` is not a RASP SOp, tracr cannot compile it, or its weights do not fit a Transformer.
    """
    _check_program(program, name)
    key = program_fingerprint(program, vocab, max_seq_len, causal)
    return cached_program(name, key, lambda: _compile(program, vocab, max_seq_len, name, causal)[0], cache_dir)


def cached_program(
    name: str, key: str, build: Callable[[], CompiledProgram], cache_dir: Path | None = None
) -> CompiledProgram:
    """Returns the program stored for task `name` under cache key `key`, or `build()`'s, stored for next time.

    An entry that is damaged, of another cache format, or saved for another key or task is rebuilt and replaced,
    with a CacheWarning naming the file; a cache that cannot be written is warned about, not raised.

    Args:
        name: the task's name, stored with the entry and part of its file name.
        key: the cache key (a fingerprint), stored with the entry and part of its file name.
        build: makes the program when the cache has no usable entry.
        cache_dir: the cache folder; None: `default_cache_dir()`.

    Returns:
        The program, its `fingerprint` set to `key` when built here.
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = cache_dir / f"{name}-{key}.pt"
    try:
        return _load(path, key, name)
    except (FileNotFoundError, NotADirectoryError):
        pass  # no entry yet: build one
    except _UnusableEntry as problem:
        warnings.warn(
            f"tracr cache entry {path} {problem}; rebuilding {name} and replacing it", CacheWarning, stacklevel=3
        )
    program = build()
    program.fingerprint = key
    _save(program, path, key)
    return program


def _check_program(program, name: str) -> None:
    """Raises CompileError unless `program` is a RASP sequence operation (SOp)."""
    from tracr.rasp import rasp

    if not isinstance(program, rasp.SOp):
        raise CompileError(
            f"{name}: tracr compiles RASP sequence operations (tracr.rasp.rasp.SOp, e.g. "
            f"lib.make_reverse(rasp.tokens)); got {type(program).__name__}"
        )


def compile_with_tracr(program, vocab: set, max_seq_len: int, name: str, causal: bool = False):
    """Returns (CompiledProgram, tracr's AssembledTransformerModel), never from the cache: for exactness checks.

    Args:
        program (rasp.SOp): the RASP program.
        vocab: the input values.
        max_seq_len: the longest input.
        name: the task's name.
        causal: compile with causal attention.

    Returns:
        compiled (tuple[CompiledProgram, AssembledTransformerModel]): edgewise's program and tracr's own model.

    Raises:
        CompileError: `program` is not a RASP SOp, tracr cannot compile it, or its weights do not fit a Transformer.
    """
    _check_program(program, name)
    return _compile(program, vocab, max_seq_len, name, causal)


def _compile(program, vocab, max_seq_len, name, causal):
    from tracr.compiler import (
        assemble,
        basis_inference,
        craft_graph_to_model,
        craft_model_to_transformer,
        expr_to_craft_graph,
        rasp_to_graph,
        validating,
    )
    from tracr.craft import bases
    from tracr.rasp import rasp

    unsupported = validating.static_validate(program)
    if unsupported:
        reasons = "; ".join(f"{u.expr.name}: {u.reason}" for u in unsupported)
        raise CompileError(f"tracr cannot compile {name}: {reasons}")
    extracted = rasp_to_graph.extract_rasp_graph(program)
    basis_inference.infer_bases(extracted.graph, extracted.sink, vocab, max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        extracted.graph, bos_dir=bases.BasisDirection(rasp.tokens.label, COMPILER_BOS), mlp_exactness=100
    )
    craft_model = craft_graph_to_model.craft_graph_to_model(extracted.graph, extracted.sources)
    assembled = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model,
        graph=extracted.graph,
        sink=extracted.sink,
        max_seq_len=max_seq_len,
        causal=causal,
        compiler_bos=COMPILER_BOS,
        compiler_pad=COMPILER_PAD,
    )
    _, module_names = assemble._get_model_config_and_module_names(craft_model)
    model = _to_transformer(assembled, causal)
    encoding = dict(assembled.input_encoder.encoding_map)
    output_encoder = assembled.output_encoder
    output_values = None
    if output_encoder is not None and hasattr(output_encoder, "encoding_map"):
        decoding = {i: v for v, i in output_encoder.encoding_map.items()}
        output_values = [decoding[i] for i in range(len(decoding))]
    reads, writes = _residual_reads_and_writes(craft_model, module_names, extracted.sink)
    directions = {label: i for i, label in enumerate(assembled.residual_labels)}
    writes.update(_embedding_writes(model, assembled.residual_labels))
    component_graphs = [Graph(TransformerAdapter(model).hook_groups(split_embeddings=split)) for split in (False, True)]
    ground_truth, ground_truth_split = (derived_edges(model, g, reads, writes, directions) for g in component_graphs)
    dictionaries = oracle_dictionaries(writes, list(assembled.residual_labels))
    feature_ground_truth = [  # over both graphs: merged embeddings (Resid Start) and split (Tok Embed, Pos Embed)
        edge
        for g in component_graphs
        for edge in derived_feature_edges(
            model, feature_graph(g.groups, None, "oracle", dictionaries), g, reads, writes, directions
        )
    ]
    compiled = CompiledProgram(
        name=name,
        model=model,
        vocab=sorted(vocab, key=repr),
        max_seq_len=max_seq_len,
        encoding=encoding,
        output_values=output_values,
        ground_truth=ground_truth,
        ground_truth_split=ground_truth_split,
        reads=reads,
        writes=writes,
        residual_labels=list(assembled.residual_labels),
        feature_ground_truth=feature_ground_truth,
        variables={label: label.partition(":")[0] for label in assembled.residual_labels},
        operations={
            str(label): type(data["EXPR"]).__name__
            for label, data in extracted.graph.nodes(data=True)
            if not isinstance(data["EXPR"], (rasp.TokensType, rasp.IndicesType, rasp.Selector))
        },
    )
    return compiled, assembled


def _to_transformer(assembled, causal: bool) -> Transformer:
    """Returns tracr's weights in an edgewise Transformer: no LayerNorm, ReLU MLPs, tracr's own unembedding."""
    import einops
    import haiku as hk
    import jax.numpy as jnp

    params = {k: {n: np.asarray(v) for n, v in d.items()} for k, d in assembled.params.items()}
    tc = assembled.model_config
    n_layers = tc.num_layers
    d_model = params["token_embed"]["embeddings"].shape[1]

    @hk.without_apply_rng
    @hk.transform
    def unembed(x):
        return assembled.get_compiled_model().unembed(x, use_unembed_argmax=False)

    # tracr's projection onto the output space, applied to the identity: [d_model, d_vocab_out]
    w_u = np.asarray(unembed.apply(assembled.params, jnp.eye(d_model)))
    w_u = w_u.reshape(d_model, -1)
    cfg = TransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=tc.num_heads,
        d_head=tc.key_size,
        d_mlp=tc.mlp_hidden_size,
        d_vocab=params["token_embed"]["embeddings"].shape[0],
        d_vocab_out=w_u.shape[1],
        n_ctx=params["pos_embed"]["embeddings"].shape[0],
        normalization=False,
        attention_dir="causal" if causal else "bidirectional",
        act_fn="relu",
        pad_token_id=assembled.input_encoder.pad_encoding,
    )
    h = cfg.n_heads
    state = {
        "W_E": params["token_embed"]["embeddings"],
        "W_pos": params["pos_embed"]["embeddings"],
        "W_U": w_u,
        "b_U": np.zeros(w_u.shape[1]),
    }
    for layer in range(n_layers):
        attn, mlp = f"transformer/layer_{layer}/attn", f"transformer/layer_{layer}/mlp"
        for ours, theirs in (("W_Q", "query"), ("W_K", "key"), ("W_V", "value")):
            state[f"blocks.{layer}.attn.{ours}"] = einops.rearrange(
                params[f"{attn}/{theirs}"]["w"], "d (h e) -> h d e", h=h
            )
            state[f"blocks.{layer}.attn.b{ours[1:]}"] = einops.rearrange(
                params[f"{attn}/{theirs}"]["b"], "(h e) -> h e", h=h
            )
        state[f"blocks.{layer}.attn.W_O"] = einops.rearrange(params[f"{attn}/linear"]["w"], "(h e) d -> h e d", h=h)
        state[f"blocks.{layer}.attn.b_O"] = params[f"{attn}/linear"]["b"]
        state[f"blocks.{layer}.mlp.W_in"] = params[f"{mlp}/linear_1"]["w"]
        state[f"blocks.{layer}.mlp.b_in"] = params[f"{mlp}/linear_1"]["b"]
        state[f"blocks.{layer}.mlp.W_out"] = params[f"{mlp}/linear_2"]["w"]
        state[f"blocks.{layer}.mlp.b_out"] = params[f"{mlp}/linear_2"]["b"]
    model = Transformer(cfg)
    missing, unexpected = model.load_state_dict(
        {k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in state.items()}, strict=False
    )
    if unexpected or [k for k in missing if not k.endswith((".w", ".b"))]:
        raise CompileError(f"tracr weights did not fit the Transformer: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _embedding_writes(model: Transformer, labels: list[str]) -> dict[str, list[str]]:
    """Returns the residual directions the token and position embeddings write (non-zero columns), and both."""
    tok = [label for label, column in zip(labels, model.W_E.detach().abs().amax(0)) if column > 0]
    pos = [label for label, column in zip(labels, model.W_pos.detach().abs().amax(0)) if column > 0]
    return {"Tok Embed": tok, "Pos Embed": pos, "Resid Start": sorted(set(tok) | set(pos))}


def _residual_reads_and_writes(craft_model, module_names, sink) -> tuple[dict, dict]:
    """Returns, per head and MLP, the residual directions it reads and writes, by the compiler's vector spaces."""
    from tracr.craft import transformers

    reads: dict[str, set] = {}
    writes: dict[str, set] = {}
    for module_name, block in zip(module_names, craft_model.blocks):
        layer = int(module_name.split("_")[1].split("/")[0])
        if isinstance(block, transformers.MLP):
            reads[mlp_node(layer).name] = {_label(d) for d in block.fst.input_space.basis}
            writes[mlp_node(layer).name] = {_label(d) for d in block.snd.output_space.basis}
            continue
        for head, craft_head in enumerate(block.as_multi().heads()):
            spaces = {
                "q": craft_head.w_qk.left_space,
                "k": craft_head.w_qk.right_space,
                "v": craft_head.w_ov.input_space,
            }
            for attention_input, space in spaces.items():
                reads[head_node(layer, head, attention_input).name] = {_label(d) for d in space.basis}
            writes[head_node(layer, head).name] = {_label(d) for d in craft_head.w_ov.output_space.basis}
    reads[output_node().name] = {_label(d) for d in sink["OUTPUT_BASIS"]}
    return (
        {k: sorted(v) for k, v in reads.items()},
        {k: sorted(v) for k, v in writes.items()},
    )


class _UnusableEntry(Exception):
    """A cache entry that is there but cannot be served; the message says why, to complete "tracr cache entry PATH"."""


_STORED_FIELDS = (
    "format",
    "fingerprint",
    "name",
    "config",
    "state_dict",
    "vocab",
    "max_seq_len",
    "encoding",
    "output_values",
    "ground_truth",
    "ground_truth_split",
    "reads",
    "writes",
    "residual_labels",
    "feature_ground_truth",
    "variables",
    "operations",
    "projection",
    "compression",
)


def _save(compiled: CompiledProgram, path: Path, key: str) -> None:
    """Returns nothing; writes `compiled` to `path` atomically, labelled with the cache format, the fingerprint `key`
    and the task name, or warns (CacheWarning) when the cache cannot be written: the compile is kept either way."""
    record = {
        "format": CACHE_FORMAT,
        "fingerprint": key,
        "name": compiled.name,
        "config": compiled.model.cfg.to_dict(),
        "state_dict": compiled.model.state_dict(),
        "vocab": compiled.vocab,
        "max_seq_len": compiled.max_seq_len,
        "encoding": compiled.encoding,
        "output_values": compiled.output_values,
        "ground_truth": compiled.ground_truth,
        "ground_truth_split": compiled.ground_truth_split,
        "reads": compiled.reads,
        "writes": compiled.writes,
        "residual_labels": compiled.residual_labels,
        "feature_ground_truth": compiled.feature_ground_truth,
        "variables": compiled.variables,
        "operations": compiled.operations,
        "projection": compiled.projection,
        "compression": compiled.compression,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(record, path)
    except (OSError, RuntimeError) as err:  # torch reports some failed writes as RuntimeError
        warnings.warn(
            f"could not write tracr cache entry {path} ({type(err).__name__}: {err}); {compiled.name} is compiled "
            f"but will be compiled again next time. Make {path.parent} writable, or pass another cache_dir (or set "
            f"EDGEWISE_CACHE)",
            CacheWarning,
            stacklevel=3,
        )


def _write_atomically(record: dict, path: Path) -> None:
    """Returns nothing; saves `record` beside `path` and renames it into place, so a reader (another process, or a
    later run after a crash) sees the old entry or the whole new one, never part of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as file:
            torch.save(record, file)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename, or a crash could leave a renamed, empty file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load(path: Path, key: str, name: str) -> CompiledProgram:
    """Returns the compile stored at `path`.

    Raises FileNotFoundError or NotADirectoryError when there is no entry, and _UnusableEntry when the file cannot
    be read, is not a cache record, or was written in another cache format, for another fingerprint than `key` or
    for another task than `name`.
    """
    try:
        record = torch.load(path, weights_only=False)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except Exception as err:  # a damaged file fails in many ways: EOFError, UnpicklingError, RuntimeError (zip)...
        raise _UnusableEntry(f"cannot be read ({type(err).__name__}: {err})") from err
    _check_record(record, key, name)
    try:
        return _from_record(record)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _UnusableEntry(f"does not hold a model edgewise can load ({type(err).__name__}: {err})") from err


def _check_record(record, key: str, name: str) -> None:
    """Returns nothing; raises _UnusableEntry unless `record` is a whole record of this cache format for fingerprint
    `key` and task `name`."""
    if not isinstance(record, dict):
        raise _UnusableEntry(f"holds a {type(record).__name__}, not a cache record")
    found = record.get("format", "2 or older")  # the format is stored from format 3 on
    if found != CACHE_FORMAT:
        raise _UnusableEntry(f"is in cache format {found}; this edgewise reads format {CACHE_FORMAT}")
    if record.get("fingerprint") != key:
        raise _UnusableEntry(
            f"was saved for the program with fingerprint {record.get('fingerprint')!r}, not {key!r} (a file of another "
            f"program, copied or renamed?)"
        )
    if record.get("name") != name:
        raise _UnusableEntry(f"was saved for task {record.get('name')!r}, not {name!r}")
    missing = [f for f in _STORED_FIELDS if f not in record]
    if missing:
        raise _UnusableEntry(f"lacks the fields {missing}")


def _from_record(record: dict) -> CompiledProgram:
    """Returns the CompiledProgram a checked record holds."""
    model = Transformer(TransformerConfig(**record["config"]))
    model.load_state_dict(record["state_dict"])
    return CompiledProgram(
        name=record["name"],
        model=model.eval(),
        vocab=record["vocab"],
        max_seq_len=record["max_seq_len"],
        encoding=record["encoding"],
        output_values=record["output_values"],
        ground_truth=[tuple(e) for e in record["ground_truth"]],
        ground_truth_split=[tuple(e) for e in record["ground_truth_split"]],
        reads=record["reads"],
        writes=record["writes"],
        residual_labels=record["residual_labels"],
        feature_ground_truth=[tuple(e) for e in record["feature_ground_truth"]],
        variables=record["variables"],
        operations=record["operations"],
        fingerprint=record["fingerprint"],
        projection=record["projection"],
        compression=record["compression"],
    )
