"""The task stage: Task (a model, clean and corrupted inputs, a metric, the ground truth when known) and the metrics
that compare a circuit's outputs with the model's; `prompt_task` builds one from a language model and a file of prompt
pairs. Built-in tasks live in the benchmark suite (`edgewise.suite.tasks`). Names load on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["METRICS", "Metric", "kl_divergence", "l2_distance", "mean_squared_error"], "metrics"),
    **dict.fromkeys(["METRIC_ZERO_TOLERANCE", "Task"], "task"),
    **dict.fromkeys(
        [
            "PROMPT_METRICS",
            "PromptColumns",
            "PromptPairs",
            "PromptRow",
            "PromptTasks",
            "answer_logit_difference",
            "answer_probability_lost",
            "logit_difference_lost",
            "prompt_task",
            "prompt_tasks",
            "read_prompt_rows",
        ],
        "prompts",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
