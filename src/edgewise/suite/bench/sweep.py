"""What a benchmark runs: sweeps of tasks x graphs x ablations x methods x seeds, and one run's specification."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgewise.errors import InvalidSweepError, UnknownGraphKindError, UnknownTaskError
from edgewise.graph import GraphKind
from edgewise.methods import PRESETS, get_method, method_names, resolve_config
from edgewise.patching import Ablation
from edgewise.tasks import PromptColumns, PromptTasks, prompt_tasks

from ..tasks import ALL_TRACR_TASKS, task_names

GRAPH_KINDS = ("plain", "per-position")
# dictionaries a bench can split writers by: tracr's oracle features (`plain/oracle`), or SAEs trained on the task's
# discovery inputs (`plain/train`), scored against the oracle truth of the features they recover
FEATURE_SETS = ("oracle", "train")


def graph_kind(kind: "str | GraphKind") -> GraphKind:
    """Returns the graph kind a sweep names (`plain`, `per-position`, either with `/oracle` or `/train`), or raises
    InvalidSweepError listing the kinds a bench runs.

    Args:
        kind: the kind's text form, or a GraphKind (checked against FEATURE_SETS).

    Returns:
        The GraphKind.

    Raises:
        InvalidSweepError: an unknown kind or feature set.
    """
    try:
        return GraphKind.parse(kind, FEATURE_SETS)
    except UnknownGraphKindError as err:
        raise InvalidSweepError(str(err)) from None


@dataclass(frozen=True)
class PromptSource:
    """A task from a user's Hugging Face model and file of prompt pairs (`edgewise bench --model DIR --data FILE`):
    the arguments of `edgewise.tasks.prompt_tasks`, which a bench's worker (another process, or a Ray node, where
    the same paths must exist) rebuilds the task from, so that no model is sent to it.

    Attributes:
        model: the model's folder or hub name.
        data: the prompts file (its stem names the task).
        metric: `logit-diff`, `prob` or `kl`.
        columns: the file's names of the fields; None: the defaults.
        held_out: the fraction of rows held out for evaluation (drawn with `seed`), or the column that says which.
        seed: the seed of the held-out draw.
        prepend_bos: None: as the tokenizer encodes; True or False: the tokenizer's BOS first, or not.
    """

    model: str
    data: str
    metric: str = "logit-diff"
    columns: PromptColumns | None = None
    held_out: float | str = 0.0
    seed: int = 0
    prepend_bos: bool | None = None

    @property
    def name(self) -> str:
        """Returns the task's name: the prompts file's stem, as `prompt_tasks` names it."""
        return Path(self.data).stem

    def tasks(self) -> PromptTasks:
        """Returns the discovery task, and the held-out one where rows are held out (see `prompt_tasks`).

        Returns:
            The prompt tasks.

        Raises:
            PromptDataError: a bad prompts file (prompt_tasks lists its other errors).
        """
        return prompt_tasks(
            self.model,
            self.data,
            self.metric,
            columns=self.columns,
            held_out=self.held_out,
            seed=self.seed,
            prepend_bos=self.prepend_bos,
        )


RECORD_FORMAT = 2  # part of every run key: bump when what a record measures changes (2: scored on held-out inputs)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a method with all its hyperparameters, on a task's graph, under an ablation, with a seed.

    Attributes:
        task: the task's name.
        graph: the graph kind (its text form is parsed on construction).
        method: the method's name.
        ablation: the ablation (its name is parsed on construction).
        seed: the method's seed.
        hyperparameters: every hyperparameter of the method's config, by field name.
        preset: where the hyperparameters come from: edgewise's tuned defaults or the authors' settings.
        source: where the task comes from when it is a user's model and prompts (`task` is its name); None: the
            built-in task `task`. Not part of the key.

    Raises:
        InvalidSweepError: an unknown graph kind.
        UnknownAblationError: an unknown ablation name.
    """

    task: str
    graph: GraphKind
    method: str
    ablation: Ablation
    seed: int
    hyperparameters: dict = field(default_factory=dict)
    preset: str = "tuned"
    source: PromptSource | None = None

    def __post_init__(self):
        object.__setattr__(self, "graph", graph_kind(self.graph))
        object.__setattr__(self, "ablation", Ablation.parse(self.ablation))

    @property
    def key(self) -> str:
        """Returns the run's file stem: its fields, and a hash of its hyperparameters, which do not fit a name."""
        digest = hashlib.sha1(json.dumps([RECORD_FORMAT, self.hyperparameters], sort_keys=True).encode()).hexdigest()
        digest = digest[:10]
        graph = str(self.graph).replace("/", "+")  # a file name: `plain/oracle` -> `plain+oracle`
        return f"{self.task}_{graph}_{self.method}_{self.preset}_{self.ablation}_seed{self.seed}_{digest}"


@dataclass(frozen=True)
class Sweep:
    """What a benchmark runs: every combination of its tasks, graphs, ablations, methods, presets and seeds.

    Attributes:
        tasks: the tasks' names.
        methods: the methods' names.
        ablations: the ablations, as names or Ablation values.
        graphs: graph kinds: plain, per-position, plain/oracle, ...
        seeds: the methods' seeds.
        hyperparameters: per method: values replacing its defaults.
        presets: tuned (edgewise's defaults) and/or published (the authors' settings).
        prompts: tasks from users' models and prompts files, which `tasks` names by `PromptSource.name`.
    """

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    ablations: tuple[str | Ablation, ...] = ("resample",)
    graphs: tuple[str | GraphKind, ...] = ("plain",)
    seeds: tuple[int, ...] = (0,)
    hyperparameters: dict[str, dict] = field(default_factory=dict)
    presets: tuple[str, ...] = ("tuned",)
    prompts: tuple[PromptSource, ...] = ()

    def runs(self) -> list[RunSpec]:
        """Returns the runs task by task (then graph, ablation, method, preset, seed); raises for any unknown name
        before anything runs. `hyperparameters` override both presets; a preset whose settings for a method are the
        tuned ones (exact and random have no published settings; ACDC's and EAP's are edgewise's defaults) runs as
        the tuned run, once.

        Returns:
            The run specifications, each with its method's full resolved hyperparameters.

        Raises:
            InvalidSweepError: an empty field, an unknown preset or graph kind, or hyperparameters for a method the
                sweep does not run.
            UnknownTaskError: an unknown task.
            UnknownAblationError: an unknown ablation.
            UnknownMethodError: an unknown method, or a hyperparameter its config has no field for.
            InvalidHyperparameterError: a hyperparameter value its config cannot take.
        """
        self._check()
        configs = {
            (m, p): dataclasses.asdict(resolve_config(get_method(m), p, self.hyperparameters.get(m, {})))
            for m in self.methods
            for p in ("tuned", *self.presets)
        }
        # a preset with the tuned settings is the tuned run: one run, one record, whichever preset asked for it
        distinct = list(
            dict.fromkeys(
                (m, p if configs[m, p] != configs[m, "tuned"] else "tuned") for m in self.methods for p in self.presets
            )
        )
        sources = {source.name: source for source in self.prompts}
        return [
            RunSpec(task, graph, method, ablation, seed, configs[method, preset], preset, sources.get(task))
            for task in self.tasks
            for graph in self.graphs
            for ablation in self.ablations
            for method, preset in distinct
            for seed in self.seeds
        ]

    def _check(self) -> None:
        for name, values in (
            ("tasks", self.tasks),
            ("methods", self.methods),
            ("ablations", self.ablations),
            ("graphs", self.graphs),
            ("seeds", self.seeds),
            ("presets", self.presets),
        ):
            if not values:
                raise InvalidSweepError(f"the sweep lists no {name}; give at least one")
        names = [*task_names(), *(source.name for source in self.prompts)]
        unknown = [t for t in self.tasks if t not in names]
        if unknown:
            raise UnknownTaskError.for_name(unknown[0], names)
        for ablation in self.ablations:
            Ablation.parse(ablation)
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise InvalidSweepError(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
        for kind in self.graphs:
            graph_kind(kind)
        unknown = sorted(set(self.hyperparameters) - set(self.methods))
        if unknown:
            raise InvalidSweepError(
                f"hyperparameters are set for {unknown[0]!r}, which the sweep does not run; add it "
                f"to the methods ({', '.join(self.methods)}) or drop its settings"
            )


def quick_sweep() -> Sweep:
    """Returns the quick sweep, well under a minute on one CPU thread: three small tracr tasks, a method of each
    family plus the random baseline, resample ablation, plain graphs, one seed.

    Returns:
        The sweep.
    """
    methods = ("edge-sp", "acdc", "eap", "eap-ig-inputs", "random")
    return Sweep(("tracr-reverse", "tracr-proportion", "tracr-sort"), methods)


def full_sweep() -> Sweep:
    """Returns the full sweep: every task and method, plain and per-position graphs, resample, mean and zero
    ablation, seeds 0, 1 and 2 (deterministic methods repeat their result, at their small cost).

    Returns:
        The sweep.
    """
    return Sweep(tuple(ALL_TRACR_TASKS), tuple(method_names()), ("resample", "mean", "zero"), GRAPH_KINDS, (0, 1, 2))
