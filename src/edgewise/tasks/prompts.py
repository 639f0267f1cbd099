"""Tasks from a language model and a file of prompt pairs: the Python side of `edgewise discover --model --data`.

The model is a Hugging Face causal LM (a local folder, a hub name, or a model already booted); the file is a CSV (or
TSV) or JSON-lines file with one prompt pair a row: the clean prompt, its corrupted partner and, for the answer
metrics, the right next token and a wrong one (each one token). A task scores each row at its own last prompt token.

Every check that needs only the file, the model's config and its tokenizer runs before the weights load, so a bad file
fails at once, naming the file, the line and the fix.

Rows of different lengths are right-padded: a causal model's output at a row's last prompt token cannot see the
padding after it, so the scored outputs are those of the unpadded row. Left padding is not offered: the adapters run a
model without an attention mask, so left pads would be attended to and shift every position. A row's clean and
corrupted prompts must tokenise to the same length, since resample ablation patches position by position. (Mean
ablation averages each position over the batch, padding included: where that matters, give rows of one length.)

The answer metrics are what the full model loses, so they are 0 on the full model (`Task.check_metric`) and
1 - loss(circuit) / loss(empty circuit) is MIB's normalised faithfulness, (m(circuit) - m(empty)) / (m(full) -
m(empty)), with m the logit difference or the answer's probability:

    logit-diff   mean over rows of  LD(full) - LD(patched),  LD = logit(answer) - logit(wrong answer)
    prob         mean over rows of  p(answer | full) - p(answer | patched)
    kl           KL(full || patched) on the next-token distribution (METRICS["kl"])

Being signed, they have a gradient at the full model: EAP with `objective="metric"` follows the logit difference, as
in the EAP papers (its default objective, `answer`, follows the log-probability of the full model's top token).
"""

from __future__ import annotations

import csv
import difflib
import json
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..adapters import Adapter, boot_bridge
from ..errors import (
    InvalidHyperparameterError,
    ModelFolderError,
    PromptDataError,
    PromptTokensError,
    UnknownMetricError,
    UsageError,
)
from .metrics import METRICS, Metric, _masked_mean
from .task import Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PROMPT_METRICS = ("logit-diff", "prob", "kl")
"""The metrics a prompt-pairs task takes; the first two need answer columns (see the module's docstring)."""
SPLITS = ("discovery", "held-out")  # the values a split column may hold
WEIGHTS_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")
# Without any of these, AutoTokenizer still returns a tokenizer for some model types, one with an empty vocabulary.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


@dataclass(frozen=True)
class PromptColumns:
    """The data file's column (CSV) or key (JSON lines) of each field of a prompt pair.

    Attributes:
        clean: the prompt whose next token the model predicts.
        corrupted: its partner, the same length in tokens, whose activations an ablated edge carries.
        answer: the right next token after the clean prompt (one token; logit-diff and prob).
        wrong_answer: the wrong next token it is compared with (one token; logit-diff).
    """

    clean: str = "clean"
    corrupted: str = "corrupted"
    answer: str = "answer"
    wrong_answer: str = "wrong_answer"


@dataclass(frozen=True)
class PromptRow:
    """One prompt pair as the data file holds it.

    Attributes:
        line: the file's line the row ends on (1-based; a CSV's header is line 1).
        clean: the clean prompt.
        corrupted: the corrupted prompt.
        answer: the right next token's text, or None when the file has no answer column.
        wrong_answer: the wrong next token's text, or None.
        split: the row's split (`discovery` or `held-out`) when a split column is read, else None.
    """

    line: int
    clean: str
    corrupted: str
    answer: str | None = None
    wrong_answer: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class PromptPairs:
    """A prompt-pairs task's own record (`task.family`): its rows and how they were encoded.

    Attributes:
        source: the data file.
        rows: the task's rows, in batch order (the file's order within the split).
        tokenizer: the tokenizer that encoded them.
        lengths: each row's number of tokens, BOS included [batch]; its scored position is length - 1.
        answer_ids: (answer, wrong answer) token ids per row [batch, 2], -1 where the file has no wrong answer; None
            without answers.
        split: `discovery` or `held-out`.
    """

    source: Path
    rows: list[PromptRow]
    tokenizer: "PreTrainedTokenizerBase"
    lengths: torch.Tensor
    answer_ids: torch.Tensor | None
    split: str


@dataclass(frozen=True)
class PromptTasks:
    """The tasks of one prompt-pairs file: discovery rows, and held-out rows when the file was split.

    Attributes:
        discovery: the task a method discovers a circuit on.
        held_out: the same model and metric on the held-out rows, for evaluating that circuit; None without a split.
    """

    discovery: Task
    held_out: Task | None


# ------------------------------------------------------------------------------------------------------------ metrics


def _at(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Returns logits[..., b, p, ids[b, p]]: [..., batch, pos] from logits [..., batch, pos, vocab] and ids [batch, pos]
    (-1 where no position is scored: any class is read there, and the metrics weigh it 0)."""
    ids = ids.to(logits.device).clamp(min=0).expand(logits.shape[:-1])
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def logit_difference_lost(
    logits: torch.Tensor,
    reference: torch.Tensor,
    positions: torch.Tensor,
    *,
    answers: torch.Tensor,
    wrong_answers: torch.Tensor,
) -> torch.Tensor:
    """Returns the logit difference (answer minus wrong answer) that the outputs lose against the reference, averaged
    over the scored positions: 0 on the full model, negative where the patched model prefers the answer more.

    Args:
        logits: the patched model's outputs [..., batch, pos, vocab] (any leading mask dimensions).
        reference: the full model's outputs [batch, pos, vocab].
        positions: [batch, pos] bool: the scored positions.
        answers: the right token's id at each scored position [batch, pos] (-1 elsewhere).
        wrong_answers: the wrong token's id there [batch, pos] (-1 elsewhere).

    Returns:
        LD(reference) - LD(logits), averaged; one per leading mask dimension ([] without).
    """
    reference_difference = _at(reference, answers) - _at(reference, wrong_answers)  # [batch, pos]
    difference = _at(logits, answers) - _at(logits, wrong_answers)  # [..., batch, pos]
    return _masked_mean(reference_difference - difference, positions)


def answer_probability_lost(
    logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor, *, answers: torch.Tensor
) -> torch.Tensor:
    """Returns the probability of the answer that the outputs lose against the reference, averaged over the scored
    positions: 0 on the full model, negative where the patched model gives the answer more.

    Args:
        logits: the patched model's outputs [..., batch, pos, vocab] (any leading mask dimensions).
        reference: the full model's outputs [batch, pos, vocab].
        positions: [batch, pos] bool: the scored positions.
        answers: the right token's id at each scored position [batch, pos] (-1 elsewhere).

    Returns:
        p(answer | reference) - p(answer | logits), averaged; one per leading mask dimension ([] without).
    """

    def probability(outputs: torch.Tensor) -> torch.Tensor:
        return (_at(outputs, answers) - outputs.logsumexp(-1)).exp()

    return _masked_mean(probability(reference) - probability(logits), positions)


def answer_logit_difference(task: Task, logits: torch.Tensor) -> torch.Tensor:
    """Returns logit(answer) - logit(wrong answer) at each row's scored position [..., batch]: the behaviour the
    logit-diff metric keeps.

    Args:
        task: a prompt-pairs task (`prompt_task`) whose file has answer and wrong-answer columns.
        logits: the model's outputs on its clean batch [..., batch, pos, vocab].

    Returns:
        The logit differences [..., batch].

    Raises:
        UsageError: the task is no prompt-pairs task with wrong answers.
    """
    family = task.family
    if not isinstance(family, PromptPairs) or family.answer_ids is None or bool((family.answer_ids[:, 1] < 0).any()):
        raise UsageError(
            f"task {task.name} has no (answer, wrong answer) pairs; build it with edgewise.tasks.prompt_task from a "
            "file with answer and wrong_answer columns"
        )
    rows = torch.arange(len(family.lengths), device=logits.device)
    last = logits[..., rows, family.lengths.to(logits.device) - 1, :]  # [..., batch, vocab]
    ids = family.answer_ids.to(logits.device).expand(*last.shape[:-1], 2)
    chosen = last.gather(-1, ids)  # [..., batch, 2]
    return chosen[..., 0] - chosen[..., 1]


# ---------------------------------------------------------------------------------------------------------- the file


def _needed_fields(metric: str) -> tuple[str, ...]:
    """Returns the PromptColumns fields a metric needs in every row."""
    return {"logit-diff": ("answer", "wrong_answer"), "prob": ("answer",), "kl": ()}[metric]


def _check_metric_name(metric: str) -> None:
    if metric not in PROMPT_METRICS:
        close = difflib.get_close_matches(str(metric), PROMPT_METRICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownMetricError(
            f"unknown metric {metric!r} for a prompt-pairs task.{hint} Choose one of {', '.join(PROMPT_METRICS)} "
            "(logit-diff and prob need answer columns)"
        )


def _records(path: Path) -> tuple[list[tuple[int, dict]], list[str] | None]:
    """Returns the file's records as (line, {column: value}), and a CSV's header (None for JSON lines)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".ndjson"):
        raise PromptDataError(
            f"{path}: unknown prompt-pairs format {suffix or '(no suffix)'!r}; give a .csv, .tsv or .jsonl file"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if suffix in (".csv", ".tsv"):
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                return [(reader.line_num, record) for record in reader], list(reader.fieldnames or [])
            records = []
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as err:
                    raise PromptDataError(
                        f"{path}, line {line}: not JSON ({err.msg}); a JSON-lines file holds one object per line, "
                        'e.g. {"clean": "...", "corrupted": "...", "answer": "...", "wrong_answer": "..."}'
                    ) from err
                if not isinstance(record, dict):
                    raise PromptDataError(
                        f"{path}, line {line}: a JSON {type(record).__name__}, not an object; give one object per line "
                        'with the prompt pair\'s fields, e.g. {"clean": "...", "corrupted": "..."}'
                    )
                records.append((line, record))
            return records, None
    except FileNotFoundError as err:
        raise PromptDataError(f"{path}: no such file; give the path of a .csv or .jsonl file of prompt pairs") from err
    except IsADirectoryError as err:
        raise PromptDataError(f"{path} is a folder; give the path of a .csv or .jsonl file of prompt pairs") from err
    except UnicodeDecodeError as err:
        raise PromptDataError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err


def _missing_column(
    path: Path, where: str, column: str, field: str, present: list[str], taken: set[str]
) -> PromptDataError:
    """Returns the error for a missing column, suggesting the closest of the columns no other field takes."""
    close = difflib.get_close_matches(column, [c for c in present if c not in taken], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    fix = "held_out=NAME" if field == "split" else f"columns=PromptColumns({field}=NAME)"
    return PromptDataError(
        f"{path}{where}: no column {column!r} (the {field.replace('_', ' ')}); it has {', '.join(present) or 'none'}."
        f"{hint} Rename the column, or name yours: {fix}"
    )


def read_prompt_rows(
    data: str | Path, metric: str = "logit-diff", columns: PromptColumns | None = None, split_column: str | None = None
) -> list[PromptRow]:
    """Returns the prompt pairs of a CSV, TSV or JSON-lines file, checked: every row holds a clean and a corrupted
    prompt, the answer columns `metric` needs (answers the file holds but the metric does not need are read too), and
    with `split_column` its split.

    Args:
        data: the file (`.csv`, `.tsv`, `.jsonl` or `.ndjson`).
        metric: one of PROMPT_METRICS: logit-diff needs answer and wrong_answer, prob needs answer.
        columns: the file's names of the fields; None: clean, corrupted, answer, wrong_answer.
        split_column: a column whose value in each row is `discovery` or `held-out`; None: no split column.

    Returns:
        The rows, in the file's order.

    Raises:
        UnknownMetricError: `metric` is not one of PROMPT_METRICS.
        PromptDataError: the file is missing, of another format, holds no rows, lacks a needed column, or a row's
            value is empty, not text, or not a split; the message names the file and the line.
    """
    _check_metric_name(metric)
    path, columns = Path(data), columns or PromptColumns()
    records, header = _records(path)
    if not records:
        raise PromptDataError(
            f"{path} holds no prompt pairs; give one row per pair with the columns "
            f"{', '.join(getattr(columns, f) for f in ('clean', 'corrupted', *_needed_fields(metric)))}"
        )
    needed = {"clean", "corrupted", *_needed_fields(metric)}
    present = header if header is not None else list(records[0][1])
    # Answers the metric does not need are read where the file has them: the task's `answers` and objectives use them.
    wanted = [f.name for f in fields(PromptColumns) if f.name in needed or getattr(columns, f.name) in present]
    roles = {name: getattr(columns, name) for name in wanted}
    if split_column is not None:
        roles["split"] = split_column
    if header is not None:
        for field, column in roles.items():
            if column not in header:
                raise _missing_column(path, "", column, field, header, set(roles.values()))
    rows = []
    for line, record in records:
        values: dict[str, Any] = {}
        for field, column in roles.items():
            value = record.get(column)
            if column not in record or value is None:
                raise _missing_column(path, f", line {line}", column, field, list(record), set(roles.values()))
            if isinstance(value, int) and not isinstance(value, bool) and field in ("answer", "wrong_answer"):
                value = str(value)  # a JSON number as an answer: its digits
            if not isinstance(value, str) or not value.strip():
                raise PromptDataError(
                    f"{path}, line {line}: column {column!r} holds {value!r}; every row needs non-empty text there"
                )
            values[field] = value
        if "split" in values:
            split = values["split"].strip().lower()
            if split not in SPLITS:
                raise PromptDataError(
                    f"{path}, line {line}: split column {split_column!r} holds {values['split']!r}; write "
                    f"{' or '.join(SPLITS)}"
                )
            values["split"] = split
        rows.append(PromptRow(line=line, **values))
    return rows


def _split_rows(rows: list[PromptRow], held_out: float | str, seed: int, path: Path) -> dict[str, list[int]]:
    """Returns the row indices of each split (file order within each): by the split column, or a seeded random
    `held_out` fraction (round(n * held_out) rows, at least one) held out."""
    if isinstance(held_out, str):
        chosen = {split: [i for i, row in enumerate(rows) if row.split == split] for split in SPLITS}
    else:
        if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 <= held_out < 1:
            raise InvalidHyperparameterError(
                f"held_out={held_out!r}: give the fraction of rows held out for evaluation, 0 <= held_out < 1 (e.g. "
                "0.5), or the name of a column that says `discovery` or `held-out` in each row"
            )
        n_held_out = 0 if held_out == 0 else max(1, round(len(rows) * held_out))
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
        held = set(order[:n_held_out])
        chosen = {
            "discovery": [i for i in range(len(rows)) if i not in held],
            "held-out": sorted(held),
        }
    if not chosen["discovery"]:
        raise PromptDataError(
            f"{path}: held_out={held_out!r} leaves none of its {len(rows)} rows for discovery; hold out fewer rows"
            + (" (mark some rows `discovery`)" if isinstance(held_out, str) else "")
        )
    return chosen


# ------------------------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class _ModelSource:
    """Where the model comes from: a folder or hub name to load (`load`), or a model given already (`module`)."""

    load: str | None
    module: torch.nn.Module | Adapter | None
    tokenizer: "PreTrainedTokenizerBase"
    n_ctx: int | None
    label: str


def _looks_like_path(name: str) -> bool:
    """Returns whether `name` is meant as a folder rather than a hub name (`org/model` or `model`)."""
    return name.startswith(("/", ".", "~", "\\")) or name.count("/") > 1 or "\\" in name


def _context_length(config: object) -> int | None:
    """Returns the longest input (in tokens) a Hugging Face config or TransformerLens cfg allows, or None."""
    for name in ("n_ctx", "n_positions", "max_position_embeddings", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _model_source(model: object, tokenizer: "PreTrainedTokenizerBase | None") -> _ModelSource:
    """Returns where the model comes from, with its tokenizer and context length, having read only its config and
    tokenizer files (no weights); raises ModelFolderError for a path or name that is no Hugging Face model."""
    if isinstance(model, (torch.nn.Module, Adapter)):
        inner = getattr(model, "model", None)
        tokenizer = tokenizer or getattr(model, "tokenizer", None) or getattr(inner, "tokenizer", None)
        if tokenizer is None:
            raise UsageError(
                f"the {type(model).__name__} given as the model has no tokenizer to encode the prompts with; pass "
                "tokenizer= (the model's Hugging Face tokenizer)"
            )
        cfg = getattr(model, "cfg", None) or getattr(inner, "cfg", None)
        return _ModelSource(None, model, tokenizer, _context_length(cfg), type(model).__name__)
    if not isinstance(model, (str, Path)):
        raise UsageError(
            f"model must be a Hugging Face folder, a hub name, or a booted model; got {type(model).__name__}"
        )
    from transformers import AutoConfig, AutoTokenizer

    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelFolderError(
                f"{path} is a file, not a model folder; give the folder that holds its config.json and weights"
            )
        if not (path / "config.json").is_file():
            held = sorted(p.name for p in path.iterdir())[:8]
            raise ModelFolderError(
                f"{path} is not a Hugging Face model folder: it has no config.json (it holds "
                f"{', '.join(held) or 'nothing'}). Give the folder that model.save_pretrained(folder) and "
                "tokenizer.save_pretrained(folder) wrote, or a hub name such as 'gpt2'"
            )
        if not any(next(path.glob(pattern), None) for pattern in WEIGHTS_FILES):
            raise ModelFolderError(
                f"{path} has a config.json but no weights (model.safetensors or pytorch_model.bin); save the model "
                "with model.save_pretrained(folder)"
            )
        if not any(next(path.glob(pattern), None) for pattern in TOKENIZER_FILES) and tokenizer is None:
            raise ModelFolderError(
                f"{path} has no tokenizer ({', '.join(TOKENIZER_FILES[:2])}, ...); save the model's tokenizer "
                "beside it (tokenizer.save_pretrained(folder)) or pass tokenizer="
            )
        source = str(path)
    elif _looks_like_path(str(model)):
        raise ModelFolderError(f"{path}: no such folder; give a Hugging Face model folder or a hub name")
    else:
        source = str(model)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        raise ModelFolderError(
            f"{source!r} is neither a model folder here nor a model the Hugging Face hub (or its local cache) holds: "
            f"{err}"
        ) from err
    if tokenizer is None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelFolderError(
                f"{source!r} has no tokenizer that loads ({err}); save the model's tokenizer beside it "
                "(tokenizer.save_pretrained(folder)) or pass tokenizer="
            ) from err
    return _ModelSource(source, None, tokenizer, _context_length(config), source)


# ----------------------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _EncodedRow:
    clean: list[int]
    corrupted: list[int]
    answer: int  # -1: none
    wrong_answer: int  # -1: none


def _encode_text(tokenizer: "PreTrainedTokenizerBase", text: str, prepend_bos: bool | None) -> list[int]:
    """Returns the prompt's token ids: as the tokenizer encodes it (None), or without its special tokens, after BOS
    (True) or not (False)."""
    if prepend_bos is None:
        return list(tokenizer(text).input_ids)
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    return [tokenizer.bos_token_id, *ids] if prepend_bos else ids


def _answer_id(
    tokenizer: "PreTrainedTokenizerBase", text: str, prefix: str, path: Path, row: PromptRow, column: str
) -> int:
    """Returns the one token id of an answer (written after `prefix` unless it starts with whitespace), or raises
    PromptTokensError naming the row."""
    written = text if text[:1].isspace() else prefix + text
    ids = list(tokenizer(written, add_special_tokens=False).input_ids)
    if len(ids) != 1:
        raise PromptTokensError(
            f"{path}, line {row.line}: {column} {text!r} is {len(ids)} tokens as it follows the prompt "
            f"({written!r} -> {tokenizer.convert_ids_to_tokens(ids)}); the metric scores one next token, so choose "
            "an answer that is one token"
            + (
                " (or pass answer_prefix='' when answers follow the prompt without a space)"
                if prefix and written != text
                else ""
            )
        )
    return ids[0]


def _encode_rows(
    rows: list[PromptRow],
    source: _ModelSource,
    path: Path,
    columns: PromptColumns,
    prepend_bos: bool | None,
    answer_prefix: str,
) -> list[_EncodedRow]:
    """Returns each row's token ids, having checked that its prompts are one length and fit the context and its
    answers are one token each; raises PromptTokensError naming the first row that does not."""
    tokenizer = source.tokenizer
    encoded = []
    for row in rows:
        clean = _encode_text(tokenizer, row.clean, prepend_bos)
        corrupted = _encode_text(tokenizer, row.corrupted, prepend_bos)
        if len(clean) != len(corrupted):
            raise PromptTokensError(
                f"{path}, line {row.line}: the clean prompt is {len(clean)} tokens "
                f"({tokenizer.convert_ids_to_tokens(clean)}) and the corrupted one {len(corrupted)} "
                f"({tokenizer.convert_ids_to_tokens(corrupted)}); resample ablation patches position by position, so "
                "a pair must tokenise to one length: reword the corrupted prompt (e.g. a name of as many tokens). "
                "Different rows may differ in length"
            )
        if not clean:
            raise PromptTokensError(f"{path}, line {row.line}: the prompts tokenise to no tokens; give some text")
        if source.n_ctx is not None and len(clean) > source.n_ctx:
            raise PromptTokensError(
                f"{path}, line {row.line}: the prompts are {len(clean)} tokens, longer than the model's context of "
                f"{source.n_ctx} tokens ({source.label}); shorten them or drop the row"
            )
        answer = wrong = -1
        if row.answer is not None:
            answer = _answer_id(tokenizer, row.answer, answer_prefix, path, row, columns.answer)
        if row.wrong_answer is not None:
            wrong = _answer_id(tokenizer, row.wrong_answer, answer_prefix, path, row, columns.wrong_answer)
            if wrong == answer:
                raise PromptTokensError(
                    f"{path}, line {row.line}: the answer {row.answer!r} and the wrong answer {row.wrong_answer!r} are "
                    f"the same token ({tokenizer.convert_ids_to_tokens([answer])}), so their logit difference is "
                    "always 0; give a wrong answer that differs"
                )
        encoded.append(_EncodedRow(clean, corrupted, answer, wrong))
    return encoded


def _pad_id(tokenizer: "PreTrainedTokenizerBase") -> int:
    """Returns the id that fills the positions after a row's prompt: any id does (the scored position cannot see
    them); the tokenizer's pad token, else its EOS, else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            return candidate
    return 0


def _token_label(tokenizer: "PreTrainedTokenizerBase", token: int) -> str:
    """Returns the quoted text a token id decodes to: how screens name an output class."""
    return repr(tokenizer.decode([token]))


# ------------------------------------------------------------------------------------------------------------- tasks


def _build_task(
    name: str,
    model: torch.nn.Module,
    metric: str,
    rows: list[PromptRow],
    encoded: list[_EncodedRow],
    tokenizer: "PreTrainedTokenizerBase",
    path: Path,
    split: str,
    columns: PromptColumns,
) -> Task:
    """Returns the task of one split's rows, right-padded to its longest row and scored at each row's last token."""
    lengths = torch.tensor([len(e.clean) for e in encoded])
    width = int(lengths.max())
    clean = torch.full((len(rows), width), _pad_id(tokenizer), dtype=torch.long)  # [batch, pos]
    corrupt = clean.clone()
    for i, e in enumerate(encoded):
        clean[i, : len(e.clean)] = torch.tensor(e.clean)
        corrupt[i, : len(e.corrupted)] = torch.tensor(e.corrupted)
    rows_index = torch.arange(len(rows))
    scored = torch.zeros_like(clean, dtype=torch.bool)
    scored[rows_index, lengths - 1] = True
    has_answers = rows[0].answer is not None
    has_wrong = rows[0].wrong_answer is not None
    answers = wrong_answers = answer_ids = None
    objectives: dict[str, Metric] = {}
    if has_answers:
        answer_ids = torch.tensor([[e.answer, e.wrong_answer] for e in encoded])  # [batch, (answer, wrong)]
        answers = torch.full_like(clean, -1)
        answers[rows_index, lengths - 1] = answer_ids[:, 0]
        objectives["prob"] = Metric("prob", partial(answer_probability_lost, answers=answers))
    if has_wrong:
        wrong_answers = torch.full_like(clean, -1)
        wrong_answers[rows_index, lengths - 1] = answer_ids[:, 1]
        objectives["logit-diff"] = Metric(
            "logit-diff", partial(logit_difference_lost, answers=answers, wrong_answers=wrong_answers)
        )
    bos = tokenizer.bos_token_id
    starts_with_bos = bos is not None and bool((clean[:, 0] == bos).all() and (corrupt[:, 0] == bos).all())
    padded = "" if bool((lengths == width).all()) else f", right-padded to {width} tokens"
    return Task(
        name=name,
        model=model,
        clean=clean,
        corrupt=corrupt,
        metric=METRICS["kl"] if metric == "kl" else objectives[metric],
        scored_positions=scored,
        bos_position=0 if starts_with_bos else None,
        description=f"{len(rows)} {'held-out ' if split == 'held-out' else ''}prompt pairs from {path.name}, "
        f"scored at each prompt's last token by {metric}{padded}",
        pairing=f"corrupted prompt = the {columns.corrupted!r} column of the same row of {path.name}",
        objectives=objectives,
        answers=answers,
        class_label=partial(_token_label, tokenizer),
        family=PromptPairs(path, rows, tokenizer, lengths, answer_ids, split),
    )


def prompt_tasks(
    model: "str | Path | torch.nn.Module | Adapter",
    data: str | Path,
    metric: str = "logit-diff",
    *,
    columns: PromptColumns | None = None,
    held_out: float | str = 0.0,
    seed: int = 0,
    tokenizer: "PreTrainedTokenizerBase | None" = None,
    prepend_bos: bool | None = None,
    answer_prefix: str = " ",
    name: str | None = None,
) -> PromptTasks:
    """Returns the discovery task (and the held-out one, when the rows are split) of a model on a file of prompt
    pairs; every row is scored at its own last prompt token, rows of different lengths right-padded.

    The file, the model's config and its tokenizer are checked before the weights load (a folder or hub name is booted
    with `edgewise.adapters.boot_bridge`).

    Args:
        model: a Hugging Face causal LM: a local folder (config, weights and tokenizer), a hub name, or a model
            already booted (a TransformerBridge, or an Adapter) whose tokenizer is `tokenizer` or its own.
        data: a `.csv`, `.tsv` or `.jsonl` file with one prompt pair a row (see `PromptColumns`).
        metric: `logit-diff` (needs answer and wrong_answer), `prob` (needs answer) or `kl`; see the module docstring.
        columns: the file's names of the fields; None: clean, corrupted, answer, wrong_answer.
        held_out: the fraction of rows held out for evaluation (drawn with `seed`; 0: none), or the name of a column
            that says `discovery` or `held-out` in each row.
        seed: the seed of the held-out draw.
        tokenizer: the tokenizer that encodes the prompts; None: the model's own (a folder's saved tokenizer; a
            booted TransformerBridge's `tokenizer`, which prepends BOS as TransformerLens does).
        prepend_bos: None: encode prompts as the tokenizer does (with its special tokens); True: the tokenizer's BOS,
            then the prompt's tokens; False: the prompt's tokens alone.
        answer_prefix: put before each answer that does not start with whitespace, as it follows the prompt
            (" Paris" after "The capital of France is"); "" when answers follow the prompt directly.
        name: the tasks' name; None: the data file's stem.

    Returns:
        The discovery task and the held-out task (None when `held_out` is 0). Each task's `answers` holds the answer
            at the scored positions, its objectives `prob` and (with wrong answers) `logit-diff`, and its `family` a
            PromptPairs of its rows.

    Raises:
        UnknownMetricError: `metric` is not one of PROMPT_METRICS.
        PromptDataError: the file is missing, empty, lacks a column the metric needs, holds a bad row, or its split
            leaves no discovery row.
        InvalidHyperparameterError: `held_out` is neither a fraction in [0, 1) nor a column name.
        ModelFolderError: `model` is no folder of a Hugging Face model (no config.json, weights or tokenizer) and no
            hub model.
        PromptTokensError: a row's answer is several tokens, its clean and corrupted prompts differ in length, or they
            are longer than the model's context.
        UsageError: `prepend_bos` with a tokenizer without BOS, or a booted model without a tokenizer.
        UnsupportedArchitectureError: the model's blocks are not ones edgewise's edge graph describes.
    """
    _check_metric_name(metric)
    columns, path = columns or PromptColumns(), Path(data)
    split_column = held_out if isinstance(held_out, str) else None
    rows = read_prompt_rows(path, metric, columns, split_column)
    splits = _split_rows(rows, held_out, seed, path)
    source = _model_source(model, tokenizer)
    if prepend_bos and source.tokenizer.bos_token_id is None:
        raise UsageError(f"prepend_bos=True, but the tokenizer of {source.label} has no BOS token; pass None or False")
    encoded = _encode_rows(rows, source, path, columns, prepend_bos, answer_prefix)
    module = source.module if source.module is not None else boot_bridge(Path(source.load))
    tasks = {
        split: _build_task(
            name or path.stem,
            module,
            metric,
            [rows[i] for i in indices],
            [encoded[i] for i in indices],
            source.tokenizer,
            path,
            split,
            columns,
        )
        for split, indices in splits.items()
        if indices
    }
    return PromptTasks(tasks["discovery"], tasks.get("held-out"))


def prompt_task(
    model: "str | Path | torch.nn.Module | Adapter",
    data: str | Path,
    metric: str = "logit-diff",
    **options: Any,
) -> Task:
    """Returns the discovery task of a model on a file of prompt pairs: `prompt_tasks(model, data, metric,
    **options).discovery` (the rows `held_out` leaves for discovery; all of them by default).

    Args:
        model: a Hugging Face folder, a hub name, or a booted model (see `prompt_tasks`).
        data: a `.csv`, `.tsv` or `.jsonl` file of prompt pairs.
        metric: `logit-diff`, `prob` or `kl`.
        **options (object): `prompt_tasks`'s keyword arguments (columns, held_out, seed, tokenizer, prepend_bos,
            answer_prefix, name).

    Returns:
        The discovery task.

    Raises:
        PromptDataError, PromptTokensError, ModelFolderError, UnknownMetricError: as `prompt_tasks`.
    """
    return prompt_tasks(model, data, metric, **options).discovery
