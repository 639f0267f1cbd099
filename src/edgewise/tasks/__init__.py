"""The task stage: Task (a model, clean and corrupted inputs, a metric, the ground truth when known), metrics, every
built-in task by name, and task cards (their sizes, listed without loading any model). Names load on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["METRICS", "Metric"], "metrics"),
    **dict.fromkeys(["get_task", "task_names"], "registry"),
    "Task": "task",
    **dict.fromkeys(["TaskCard", "task_cards"], "cards"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
