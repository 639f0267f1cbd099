"""Exceptions raised by edgewise's public API; each message names the bad value and the fix."""

import sys
from typing import Callable


class EdgewiseError(Exception):
    """Base class of every error edgewise raises on purpose."""


class UnknownTaskError(EdgewiseError, KeyError):
    """A task name that is not in the registry."""

    @classmethod
    def for_name(cls, name: str, known: list[str]) -> "UnknownTaskError":
        """Returns the error for `name`, suggesting the closest known name and listing them all."""
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return cls(f"unknown task {name!r}.{hint} Known tasks: {', '.join(known)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class UnsupportedArchitectureError(EdgewiseError):
    """A model whose writers and readers the adapter cannot describe."""


class BridgeDisagreesError(UnsupportedArchitectureError):
    """A TransformerBridge whose forward differs from its plain Hugging Face model, or whose hooks do not fire as
    the edge graph places them (hooks that never fire, fire twice or out of order, readers that are not the sum of
    their writers): the bridge's fault, found when the adapter is built."""


class GraphMismatchError(EdgewiseError):
    """A mask, circuit or score list that does not fit the graph it is used with."""


class BatchShapeError(EdgewiseError):
    """Clean and corrupted (or reference) batches that cannot be paired."""


class InvalidTokensError(EdgewiseError, ValueError):
    """Token ids a model cannot take: not [batch, pos], out of the vocabulary, or longer than its context."""


class InvalidMaskError(EdgewiseError, ValueError):
    """A mask with values that are not finite numbers."""


class UnknownAblationError(EdgewiseError, ValueError):
    """An ablation name that edgewise does not implement."""


class CompileError(EdgewiseError):
    """A RASP program that tracr cannot compile, or whose conversion is not exact."""


class PretrainedModelMissingError(EdgewiseError):
    """A pretrained model whose weights package (or the `gguf` reader) is not installed."""


class InvalidHyperparameterError(EdgewiseError, ValueError):
    """A method hyperparameter outside its valid range (a count below 1, an unknown objective, a bad fraction)."""


class DegenerateGroundTruthError(EdgewiseError, ValueError):
    """A ground truth that holds every edge (or node) of a graph, or none, so a ROC curve is undefined."""


class InvalidSweepError(EdgewiseError, ValueError):
    """A benchmark sweep that names an unknown graph kind, lists nothing to run, or sets hyperparameters of a method
    it does not run."""


class CircuitFileError(EdgewiseError, ValueError):
    """A circuit file that is missing, not JSON, or not in Circuit.save's format."""


class ScoresFileError(EdgewiseError, ValueError):
    """An edge-scores file that is missing, not JSON, or not in EdgeScores.save's format."""


class UsageError(EdgewiseError, ValueError):
    """A command-line argument that is malformed (e.g. `--set` without `=`)."""


class OutputPathError(EdgewiseError, ValueError):
    """An output path that is a directory where a file is wanted (or a file where a folder is), or not writable."""


class EmptyInputsError(BatchShapeError):
    """A task whose batches hold no rows, or no position the metric scores, so every metric would be 0 / 0."""


class NonFiniteMetricError(EdgewiseError, ValueError):
    """A task metric that returns NaN or infinity on the full or the ablated model."""


class InvalidMetricError(EdgewiseError, TypeError):
    """A task metric (or objective) that is not an `edgewise.tasks.Metric`, e.g. a plain function."""


class UnknownMetricError(EdgewiseError, KeyError):
    """A metric name that is not in `edgewise.tasks.METRICS`; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MetricNotZeroError(EdgewiseError, ValueError):
    """A task metric that is not 0 on the full model's own outputs: it is then no distance from the full model, and
    every faithfulness value measured with it would be off by that amount."""


class NonFiniteScoresError(EdgewiseError, ValueError):
    """A method that returned NaN or infinite edge scores."""


class BenchFolderBusyError(EdgewiseError):
    """A bench results folder that another running bench holds."""


class StaleBenchLockWarning(UserWarning):
    """A bench results folder's lock whose holder died while a process it started still held it; the bench takes the
    folder over."""


class RunFileError(EdgewiseError, ValueError):
    """A bench run file (`runs/KEY.json`) that cannot be read, is not JSON, or is not the record of the run its name
    says (a missing or wrongly typed field)."""


class BenchFileWarning(UserWarning):
    """A bench folder's run file that is damaged: it is set aside (KEY.json.damaged) and its run is done again."""


class BenchRunsFailedError(EdgewiseError):
    """Bench runs that raised: each is recorded in DIR/failed/KEY.json with its error, the others ran on, and a
    re-run into the folder does the failed runs again."""


class ExecutorConflictError(EdgewiseError, ValueError):
    """A bench given both worker processes on this machine (`jobs`, `--jobs`) and another executor (`--ray`)."""


class RayNotInstalledError(EdgewiseError, ImportError):
    """A bench on Ray where Ray is not installed: `pip install edgewise[ray]`."""


class ClusterUnreachableError(EdgewiseError, ConnectionError):
    """A Ray cluster address that nothing answers at, where Ray does not accept the bench, or a local Ray cluster that
    does not start."""


class ClusterVersionError(EdgewiseError):
    """A Ray cluster whose Ray, Python or edgewise differs from the driver's, or whose workers lack edgewise."""


class ClusterResourcesError(EdgewiseError):
    """A Ray cluster without what a bench's runs ask for: no GPU for `--device cuda`."""


class CacheWarning(UserWarning):
    """A cache entry that could not be used (damaged, of another program, or not writable); edgewise recomputes."""


class InvalidActivationsError(EdgewiseError, ValueError):
    """Activations an SAE cannot be trained on or measured with: not [n_rows, d_in], empty, NaN or infinite, or of
    another width than the SAE's."""


class InvalidDirectionsError(EdgewiseError, ValueError):
    """Decoder rows or target directions that cannot be compared: not non-empty [n, d] matrices of one width, or a
    target direction that is zero or not finite."""


class SAEFormatError(EdgewiseError, ValueError):
    """An SAE folder that is not in SAELens's format, or uses a SAELens setting edgewise does not implement; the message
    names the folder, the field and what is supported."""


class SAEConfigError(SAEFormatError):
    """An SAE folder's cfg.json field of the wrong type or out of range (d_in, d_sae, dtype, architecture, metadata,
    hook_name, hook_head_index)."""


class NonFiniteSAEWeightsError(SAEFormatError):
    """An SAE folder whose weights hold NaN or infinite entries; the message names each tensor and how many."""


class SAEHookError(SAEFormatError):
    """An SAE that does not fit the writer its cfg names: a hook that is no writer of the model, a head index missing
    or beyond the hook's heads, or a width other than the writer's."""


class DuplicateSAEError(SAEHookError):
    """Two SAE folders that split the same writer; the message names both folders."""


class DeclarationError(EdgewiseError, ValueError):
    """A declared model's writers and readers that do not describe it: an unknown or silent hook point, or a reader
    whose input is not the sum of its declared writers."""


class UnknownObjectiveError(EdgewiseError, ValueError):
    """An objective a task does not have, or one given to a method that only minimises faithfulness."""


class TrainedWeightsMissingError(PretrainedModelMissingError):
    """A project-trained model whose committed weights file is missing; the message names the script that writes it."""


class UnknownMethodError(EdgewiseError, ValueError):
    """A method name, a preset, or a hyperparameter that the method registry does not know."""


class UnknownGraphKindError(EdgewiseError, ValueError):
    """A graph kind that is not `plain` or `per-position` (optionally `/` and a known feature set)."""


class InsufficientMemoryError(EdgewiseError, MemoryError):
    """A run whose buffers, estimated before any work, would not fit in the memory available."""


class UserTaskError(EdgewiseError):
    """A user's task file (`FILE.py:FUNCTION`) that cannot be imported, whose function raises, or that returns
    something other than a Task; `user_traceback` holds the user's own traceback frames (edgewise's left out)."""

    def __init__(self, message: str, user_traceback: str = ""):
        super().__init__(message)
        self.user_traceback = user_traceback


class ModelFolderError(EdgewiseError, ValueError):
    """A model path that is not a Hugging Face model: no such folder, no config.json, no weights or no tokenizer
    beside them, or a hub name that neither the hub nor its local cache knows."""


class PromptDataError(EdgewiseError, ValueError):
    """A prompt-pairs file (CSV or JSON lines) that cannot be read into a task: missing, of another format, empty,
    without a needed column, or with a bad row; the message names the file, the line and the fix."""


class PromptTokensError(PromptDataError):
    """A prompt pair that does not tokenise into a task: an answer of several tokens, a clean and a corrupted prompt of
    different lengths, or a prompt longer than the model's context; the message names the file and the line."""


def one_line_warnings(other: Callable[..., None]) -> Callable[..., None]:
    """Returns a `warnings.showwarning` that prints edgewise's own warnings (`edgewise.errors`: BenchFileWarning,
    CacheWarning, StaleBenchLockWarning, ...) as one line, `edgewise: warning: MESSAGE`, the way errors print, and
    passes any other library's to `other`: their source line helps those libraries' authors, not our users. The
    command line installs it; so do the bench's worker processes.

    Args:
        other: the printer for other libraries' warnings (the `warnings.showwarning` it replaces).

    Returns:
        The printer to install as `warnings.showwarning`.
    """

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not category.__module__.startswith("edgewise."):
            other(message, category, filename, lineno, file, line)
            return
        try:
            print(f"edgewise: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)
        except OSError:  # a closed stderr must not turn a warning into a failure (Python's own printer's rule)
            pass

    return show
