"""Run records: what one bench run measured, as one typed object with one JSON form.

A record says what ran (task, graph kind, method, preset, ablation, seed, hyperparameters), what it was scored on
(the evaluation inputs and the ground truths' sizes), every figure (`RunFigures`), and what it cost. `to_json`
writes the flat JSON of `runs/KEY.json` and `results.json`; `from_json` reads it back, also from files written
before a field existed (a missing preset is `tuned`, a missing `evaluated_on` is `discovery`, missing figures and
costs are None), and keeps fields it does not know so that a rewrite loses nothing. `load_run` reads a run file
back and checks it first: a file that is not JSON, or not the record of the run its name says, raises RunFileError;
`load_results` reads a results.json the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgewise.errors import RunFileError
from edgewise.evaluate import RunFigures
from edgewise.graph import GraphKind
from edgewise.patching import Ablation


@dataclass(frozen=True)
class RunRecord:
    """One finished bench run.

    Attributes:
        key: the run's file stem (RunSpec.key).
        task: the task's name.
        graph: the graph kind the method ran on.
        method: the method's name.
        preset: `tuned` (edgewise's defaults) or `published` (the authors' settings).
        ablation: what ablated edges carried.
        seed: the method's seed.
        hyperparameters: every hyperparameter the method ran with.
        n_edges: the graph's edges.
        evaluated_on: `held-out`, or `discovery` for a task without held-out inputs.
        n_evaluation_inputs: the inputs the figures were measured on.
        n_true_edges: the compiler's ground truth's size (None: the task has none).
        n_effective_edges: the effective truth's size (None: the task has none).
        effective_ground_truth: the effective truth's edges as [writer, reader(, position)] lists.
        figures: every figure of the run.
        redundancy: the effective truth's redundant groups, each with the copies the circuit keeps.
        dictionaries: trained features' report (`plain/train` graphs), else None.
        seconds: the method's time.
        evaluation_seconds: the time to score the run.
        peak_memory_mib: the method's peak memory (approximate on the CPU).
        memory_measure: how peak memory was measured.
        device: `cpu` or `cuda`.
        threads: torch's threads.
        jobs: how many runs ran beside each other (they share cores and memory bandwidth).
        executor: what ran it: `local` (this machine's bench process or its workers) or `ray`; None in files
            written before executors.
        node: the machine that ran it: the host name (`local`) or the Ray node's id (`ray`); None in older files.
        other: fields of the file this record does not know (written by another version), kept as they were.
    """

    key: str
    task: str
    graph: GraphKind
    method: str
    preset: str
    ablation: Ablation
    seed: int
    hyperparameters: dict
    n_edges: int
    evaluated_on: str
    n_evaluation_inputs: int | None
    n_true_edges: int | None
    n_effective_edges: int | None
    effective_ground_truth: list | None
    figures: RunFigures
    redundancy: list[dict] = field(default_factory=list)
    dictionaries: dict | None = None
    seconds: float | None = None
    evaluation_seconds: float | None = None
    peak_memory_mib: float | None = None
    memory_measure: str | None = None
    device: str | None = None
    threads: int | None = None
    jobs: int = 1
    executor: str | None = None
    node: str | None = None
    other: dict = field(default_factory=dict)

    _HEAD = (
        "key",
        "task",
        "graph",
        "method",
        "preset",
        "ablation",
        "seed",
        "hyperparameters",
        "n_edges",
        "evaluated_on",
        "n_evaluation_inputs",
        "n_true_edges",
        "n_effective_edges",
        "effective_ground_truth",
    )
    _COST = ("seconds", "evaluation_seconds", "peak_memory_mib", "memory_measure", "device", "threads", "jobs")
    _RAN_ON = ("executor", "node")  # written where known, so that older files write back unchanged

    @property
    def variant(self) -> str:
        """Returns the method, with the attribution method it was warm-started from where it was: `edge-sp (init
        eap)` (a warm start is a variant of the method a benchmark compares, not a preset)."""
        init = self.hyperparameters.get("init")
        return self.method + (f" (init {init})" if init else "")

    @property
    def label(self) -> str:
        """Returns the method as summaries name it: its variant at the tuned preset (`acdc`, `edge-sp (init eap)`),
        with the preset otherwise (`acdc (published)`)."""
        return self.variant if self.preset == "tuned" else f"{self.variant} ({self.preset})"

    def figure(self, name: str, truth: str = "compiler") -> float | None:
        """Returns one figure: a truth's (`auroc`, `node_auroc`, `faithfulness_at_truth_size`; None where the run
        has no such truth) or the run's own (`cpr`, `cmd`, `edges_to_95`, `circuit_faithfulness`, ...).

        Args:
            name: the figure's name, as RunFigures and TruthFigures call it.
            truth: for a truth's figure, which truth: `compiler` or `effective`.

        Returns:
            The value, or None.
        """
        if name in RunFigures.TRUTH_FIELDS:
            figures = self.figures.truths.get(truth)
            return None if figures is None else getattr(figures, name)
        return getattr(self.figures, name) if name in RunFigures.SCALARS else getattr(self, name)

    def to_json(self) -> dict:
        """Returns the record as the flat JSON object of `results.json` (the fields of earlier versions' files)."""
        head = {name: getattr(self, name) for name in self._HEAD}
        head.update(graph=str(self.graph), ablation=str(self.ablation))
        tail = {
            "redundancy": self.redundancy,
            **({} if self.dictionaries is None else {"dictionaries": self.dictionaries}),
        }
        cost = {name: getattr(self, name) for name in self._COST}
        ran_on = {name: getattr(self, name) for name in self._RAN_ON if getattr(self, name) is not None}
        return {**head, **self.figures.to_json(), **tail, **cost, **ran_on, **self.other}

    @classmethod
    def from_json(cls, fields: dict) -> "RunRecord":
        """Returns the record of a `runs/KEY.json` or `results.json` entry (curves, if present, are left out).

        Args:
            fields: the JSON object.

        Returns:
            The record; fields of older files that are missing take their defaults (see the module).
        """
        known = {*cls._HEAD, *cls._COST, *cls._RAN_ON, *RunFigures.SCALARS, "redundancy", "dictionaries", "curves"}
        known |= {
            f"{name}{'' if truth == 'compiler' else '_' + truth}"
            for name in RunFigures.TRUTH_FIELDS
            for truth in RunFigures.TRUTH_NAMES
        }
        head = {name: fields.get(name) for name in cls._HEAD}
        head.update(
            graph=GraphKind.parse(fields["graph"]),
            ablation=Ablation.parse(fields["ablation"]),
            preset=fields.get("preset") or "tuned",
            evaluated_on=fields.get("evaluated_on") or "discovery",
            hyperparameters=fields.get("hyperparameters") or {},
        )
        cost = {name: fields[name] for name in (*cls._COST, *cls._RAN_ON) if name in fields}
        return cls(
            **head,
            figures=RunFigures.from_json(fields),
            redundancy=fields.get("redundancy") or [],
            dictionaries=fields.get("dictionaries"),
            **cost,
            other={k: v for k, v in fields.items() if k not in known},
        )


_NUMBER = (int, float)
# the type of each field a run file must hold, and of each it may hold (None allowed), as `to_json` writes them
_REQUIRED = {"key": str, "task": str, "graph": str, "method": str, "ablation": str, "seed": int, "n_edges": int}
_OPTIONAL = {
    "preset": str,
    "evaluated_on": str,
    "hyperparameters": dict,
    "n_evaluation_inputs": int,
    "n_true_edges": int,
    "n_effective_edges": int,
    "effective_ground_truth": list,
    "redundancy": list,
    "dictionaries": dict,
    "curves": dict,
    "circuit_faithfulness_interval": list,
    "circuit_edges": int,
    "circuit_rule": str,
    "edges_to_95": int,
    "memory_measure": str,
    "device": str,
    "threads": int,
    "jobs": int,
    "executor": str,
    "node": str,
    **dict.fromkeys(
        ("circuit_faithfulness", "cpr", "cmd", "fraction_to_95", "seconds", "evaluation_seconds", "peak_memory_mib"),
        _NUMBER,
    ),
    **{
        f"{name}{'' if truth == 'compiler' else '_' + truth}": _NUMBER
        for name in RunFigures.TRUTH_FIELDS
        for truth in RunFigures.TRUTH_NAMES
    },
}


def load_run(path: Path) -> tuple[RunRecord, dict]:
    """Returns the record and the curves (by name; {} for a file restored without them) of the run file `path`,
    after checking that it is the whole record of the run its name says.

    Args:
        path: a `runs/KEY.json` file.

    Returns:
        The run's record, and its curves.

    Raises:
        RunFileError: naming the file and what is wrong with it: it cannot be read or is not JSON (a truncated
            write), it is not a JSON object, its key is not its file's name, or a field is missing or of the wrong
            type.
    """
    path = Path(path)
    fields = _json(path, "run file")
    record = _checked(fields, f"run file {path}")
    if record.key != path.stem:
        raise RunFileError(f"run file {path} holds the record of run {record.key!r}, not of {path.stem!r}")
    return record, fields.get("curves") or {}


def load_results(path: Path) -> list[RunRecord]:
    """Returns the records of a bench folder's `results.json`, in its order, after checking each as `load_run` does.

    Args:
        path: the results.json file.

    Returns:
        The records.

    Raises:
        RunFileError: naming the file (and the entry) and what is wrong: it cannot be read or is not JSON, it is not
            a list of run records, or an entry lacks a field or holds one of the wrong type.
    """
    path = Path(path)
    entries = _json(path, "results file")
    if not isinstance(entries, list):
        raise RunFileError(f"results file {path} holds {_in_json(entries)}, not a list of run records")
    return [_checked(fields, f"results file {path}, entry {i}") for i, fields in enumerate(entries)]


def _json(path: Path, what: str):
    """Returns the JSON value stored at `path`; raises RunFileError where it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(f"{what} {path} cannot be read ({type(error).__name__}: {error})") from None
    except ValueError as error:
        raise RunFileError(f"{what} {path} is not JSON ({error})") from None


def _checked(fields, where: str) -> RunRecord:
    """Returns the record of a JSON value checked to be a run record's object (see `load_run`); `where` names it in
    the RunFileError raised otherwise."""
    if not isinstance(fields, dict):
        raise RunFileError(f"{where} holds {_in_json(fields)}, not a run record (an object)")
    for name, kind in _REQUIRED.items():
        if name not in fields:
            raise RunFileError(f"{where} lacks the field {name!r}")
        _check_type(where, name, fields[name], kind)
    for name, kind in _OPTIONAL.items():
        if fields.get(name) is not None:
            _check_type(where, name, fields[name], kind)
    try:
        return RunRecord.from_json(fields)
    except (KeyError, TypeError, ValueError) as error:  # an unknown graph kind or ablation
        raise RunFileError(f"{where} is not a run record edgewise can read ({error})") from None


def _check_type(where: str, name: str, value, kind) -> None:
    """Raises RunFileError unless `value` is of `kind` (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        raise RunFileError(f"{where}: field {name!r} holds {_in_json(value)}, not {_IN_JSON[kind]}")


def _in_json(value) -> str:
    """Returns the JSON type of a value read from JSON, in JSON's words: `a string`, `an object`, `null`."""
    return "null" if value is None else _IN_JSON[type(value)]


_IN_JSON = {  # a JSON value's type, and what a field holds, in JSON's words
    str: "a string",
    int: "a whole number",
    float: "a number",
    _NUMBER: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}
