"""`--model DIR --data FILE`: a task from the user's own model folder (or hub name) and file of prompt pairs, for the
commands that take a task (`edgewise.tasks.prompt_tasks` does the work)."""

from __future__ import annotations

import argparse

from ..errors import UsageError

PROMPT_METRICS = ("logit-diff", "prob", "kl")


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --model, --data and the prompt file's options to a command whose task may come from them."""
    group = parser.add_argument_group("your own model and prompts (instead of TASK)")
    group.add_argument("--model", metavar="DIR|NAME", help="a Hugging Face causal LM: a local folder or a hub name")
    group.add_argument(
        "--data",
        metavar="FILE",
        help="prompt pairs, .csv or .jsonl, with columns clean, corrupted and (for logit-diff, prob) answer, "
        "wrong_answer, each answer one token",
    )
    group.add_argument(
        "--split",
        metavar="FRACTION|COLUMN",
        help="hold rows out for evaluation: a fraction (0.25) drawn with --seed, or a column saying discovery or "
        "held-out; --held-out then scores the circuit on them",
    )
    group.add_argument(
        "--column",
        action="append",
        metavar="FIELD=NAME",
        help="the file's name of a field (clean, corrupted, answer, wrong_answer), e.g. --column clean=prompt",
    )
    group.add_argument("--prepend-bos", action="store_true", help="put the tokenizer's BOS before every prompt")


def uses_prompts(args: argparse.Namespace) -> bool:
    """Returns whether the command's task comes from --model and --data; raises UsageError when the task is given
    twice, only half given, or not at all."""
    given = args.model is not None or args.data is not None
    if given and (args.model is None or args.data is None):
        raise UsageError("--model and --data go together: give the model folder (or hub name) and the prompts file")
    if given and args.task is not None:
        raise UsageError(f"give a TASK ({args.task}) or --model and --data, not both")
    if not given and args.task is None:
        raise UsageError("give a TASK (`edgewise tasks` lists them; or FILE.py:FUNCTION), or --model DIR --data FILE")
    if not given and (args.split is not None or args.column or args.prepend_bos):
        raise UsageError("--split, --column and --prepend-bos describe a prompts file: use them with --model/--data")
    return given


def _file_options(args: argparse.Namespace):
    """Returns the prompts files' PromptColumns (None: the defaults) and held-out rule (a fraction or a column) of
    --column and --split; raises UsageError for a bad --column."""
    from ..tasks import PromptColumns

    fields = {}
    for item in args.column or ():
        field, _, name = item.partition("=")
        if field not in PromptColumns.__dataclass_fields__ or not name:
            raise UsageError(
                f"--column {item!r}: give FIELD=NAME with FIELD one of {', '.join(PromptColumns.__dataclass_fields__)}"
            )
        fields[field] = name
    held_out: float | str = 0.0
    if args.split is not None:
        try:
            held_out = float(args.split)
        except ValueError:
            held_out = args.split  # a column's name
    return (PromptColumns(**fields) if fields else None), held_out


def check_prompt_files(args: argparse.Namespace, files: list[str]) -> None:
    """Reads and checks more prompts files (a command's retain files) with --data's options, loading no model.

    Args:
        args: the parsed command line (column, split; metric where the command has it).
        files: the prompts files.

    Raises:
        PromptDataError: a file is missing, empty, lacks a column or holds a bad row.
        UsageError: a bad --column.
    """
    from ..tasks import read_prompt_rows

    columns, held_out = _file_options(args)
    for path in files:
        read_prompt_rows(path, _metric(args), columns, held_out if isinstance(held_out, str) else None)


def _metric(args: argparse.Namespace) -> str:
    return getattr(args, "metric", None) or "logit-diff"


def prompt_tasks_from(args: argparse.Namespace, data: str | None = None, like=None):
    """Returns `PromptTasks` (discovery, and held_out when --split is given) for --model and --data.

    Args:
        args: the parsed command line (model, data, split, column, prepend_bos; metric and seed where the command
            has them).
        data: another prompts file than --data, read with the same options (a retain file); None: --data.
        like: a task built from --model already (a `Task`), whose model and tokenizer the tasks reuse; None: load
            --model.

    Returns:
        The prompt tasks.

    Raises:
        UsageError: a bad --column or --split, naming the flag.
    """
    from ..tasks import prompt_tasks

    columns, held_out = _file_options(args)
    return prompt_tasks(
        args.model if like is None else like.adapter,
        data or args.data,
        _metric(args),
        columns=columns,
        held_out=held_out,
        seed=getattr(args, "seed", 0),
        tokenizer=None if like is None else like.family.tokenizer,
        prepend_bos=True if args.prepend_bos else None,
    )


def prompt_source_from(args: argparse.Namespace):
    """Returns the bench's `PromptSource` of --model and --data (paths made absolute, since a bench's workers may
    start elsewhere), after checking the prompts file; raises UsageError where only one is given, or a prompts
    file's option is given without them.

    Args:
        args: the parsed command line (model, data, split, column, prepend_bos; metric and seed where the command
            has them).

    Returns:
        The source, or None where neither --model nor --data is given.

    Raises:
        UsageError: half of --model/--data, a bad --column, or --split/--column/--prepend-bos without a prompts file.
        PromptDataError: the prompts file is missing, empty, lacks a column or holds a bad row.
    """
    from pathlib import Path

    from ..suite.bench import PromptSource

    if args.model is None and args.data is None:
        if args.split is not None or args.column or args.prepend_bos:
            raise UsageError(
                "--split, --column and --prepend-bos describe a prompts file: use them with --model/--data"
            )
        return None
    if args.model is None or args.data is None:
        raise UsageError("--model and --data go together: give the model folder (or hub name) and the prompts file")
    check_prompt_files(args, [args.data])
    columns, held_out = _file_options(args)
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model  # a folder, or a hub name
    return PromptSource(
        model,
        str(Path(args.data).resolve()),
        _metric(args),
        columns,
        held_out,
        getattr(args, "seed", 0),
        True if args.prepend_bos else None,
    )
