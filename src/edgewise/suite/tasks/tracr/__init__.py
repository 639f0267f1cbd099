"""tracr tasks: RASP programs compiled to transformer weights, with ground truths read off the compiler. The spec
list loads without tracr; compiling (and jax) waits for the first task built."""

from edgewise.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["TRACR_TASKS", "TracrSpec", "task_names"], "specs"),
    **dict.fromkeys(["get_task", "tracr_task", "compile_spec"], "suite"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
