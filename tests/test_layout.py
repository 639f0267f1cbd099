"""The package follows the data path: each stage imports only the stages before it, so `edgewise discover` can be
read from the command line to the printed circuit without turning back (STYLE.md, "The shape of the library")."""

import ast
from pathlib import Path

STAGES = ["graph", "models", "adapters", "tasks", "patching", "methods", "evaluate", "diagnostics", "interventions",
          "bench", "report", "interop", "cli"]
SHARED = {"errors", "lazy", "cache"}  # used by every stage, importing none
# The one documented exception: `Graph.from_model(model)`, EAP-IG's convenience constructor for users, asks the
# adapters for the model's hook groups inside the function; the library itself builds graphs from adapter groups.
ALLOWED = {("graph/graph.py", "adapters")}
ROOT = Path(__file__).resolve().parent.parent / "src" / "edgewise"


def _imported_stages(path: Path) -> set[str]:
    """Returns the top-level edgewise modules or packages that `path` imports (relative imports resolved)."""
    package = path.relative_to(ROOT).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = (*base, *(node.module.split(".") if node.module else []))
            names = [target[0]] if target else [alias.name for alias in node.names]
            found.update(names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgewise."):
            found.add(node.module.split(".")[1])
    return found


def test_every_stage_imports_only_earlier_stages():
    backwards = []
    for path in sorted(ROOT.rglob("*.py")):
        where = path.relative_to(ROOT)
        if len(where.parts) == 1:  # the package facade and the shared modules
            assert where.stem in SHARED | {"__init__"}, f"{where} is not in a stage package"
            continue
        own = STAGES.index(where.parts[0])
        for stage in _imported_stages(path) - SHARED:
            if stage in STAGES and STAGES.index(stage) > own and (where.as_posix(), stage) not in ALLOWED:
                backwards.append(f"{where} imports {stage}")
    assert backwards == []


def test_shared_modules_import_no_stage():
    for name in SHARED:
        assert not (_imported_stages(ROOT / f"{name}.py") & set(STAGES)), name
