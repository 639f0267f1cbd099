"""The benchmark's tasks: every built-in task by name (`get_task`, `task_names`), their task cards (sizes listed
without loading a model), and the families: tracr/ (compiled programs, ground truth by construction), trained/
(induction, SIIT, multitask), lm/ (SmolLM2 prompts), game/ (tic-tac-toe). Names load on first use."""

from edgewise.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "GAME_TASKS",
            "LM_TASKS",
            "TRAINED_TASKS",
            "get_task",
            "held_out_size",
            "task_names",
            "task_split",
            "user_task",
        ],
        "registry",
    ),
    **dict.fromkeys(["TaskCard", "card_for", "task_cards"], "cards"),
    **dict.fromkeys(["ALL_TRACR_TASKS", "TRACR_TASKS", "TracrSpec"], "tracr.specs"),
    **dict.fromkeys(["TracrData", "compile_spec", "tracr_task"], "tracr.suite"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
