"""The package follows the data path in two wings (STYLE.md, "The shape of the library"): the library, whose stages
each import only the stages before them, and the benchmark suite above it, which nothing in the library imports. A
stage reaches another only through its package face (the names in its `__init__`'s `__all__`), so a module can move
inside its stage without breaking anyone. `edgewise discover` reads from the command line to the printed circuit
without turning back."""

import ast
from pathlib import Path

LIBRARY = [
    "graph",
    "models",
    "adapters",
    "tasks",
    "features",
    "patching",
    "methods",
    "evaluate",
    "diagnostics",
    "interventions",
    "report",
    "interop",
]
SUITE = ["suite.models", "suite.tasks", "suite.bench"]
STAGES = LIBRARY + SUITE + ["cli"]  # the command line sits above both wings: it runs the suite's tasks and sweeps
SHARED = {"errors", "lazy", "cache", "outputs"}  # used by every stage, importing none
# Every import that breaks a rule, with its reason. (importing file, imported module) -> why.
EXCEPTIONS = {
    ("graph/graph.py", "adapters"): "`Graph.from_model(model)`, EAP-IG's convenience constructor for users, asks the "
    "adapters for the model's hook groups inside the call; the library itself builds "
    "graphs from adapter groups",
}
ROOT = Path(__file__).resolve().parent.parent / "src" / "edgewise"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Returns the edgewise modules that `path` imports, absolute and without the `edgewise.` prefix, each with the
    names taken from it (relative imports resolved; `from . import x` yields module `x` of the package)."""
    package = list(path.relative_to(ROOT).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [alias.name for alias in node.names]
            if node.module:
                found.append((".".join([*base, node.module]), names))
            elif not base:  # from the top package: its names
                found.append(("", names))
            else:
                found += [(".".join([*base, name]), []) for name in names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgewise."):
            found.append((node.module.removeprefix("edgewise."), [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name.removeprefix("edgewise."), []) for a in node.names if a.name.startswith("edgewise.")]
    return found


def _stage(module: str) -> str | None:
    """Returns the stage a module (dotted, under edgewise) belongs to, or None for the top package."""
    parts = module.split(".")
    if parts[0] == "suite":
        return ".".join(parts[:2]) if len(parts) > 1 else None
    return parts[0] if parts[0] else None


def _face(stage: str) -> set[str]:
    """Returns the names a stage's package face exports: `__all__` of its `__init__` (lazy faces list them there)."""
    tree = ast.parse((ROOT / stage.replace(".", "/") / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            if isinstance(node.value, ast.List):
                return {ast.literal_eval(e) for e in node.value.elts}
            return _lazy_names(tree)
    return set()


def _lazy_names(tree: ast.Module) -> set[str]:
    """Returns the keys of a lazy face's `_EXPORTS` dict (names given literally or through dict.fromkeys)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            names = set()
            for key, value in zip(node.value.keys, node.value.values):
                if key is None:  # **dict.fromkeys([...], module)
                    names |= {ast.literal_eval(e) for e in value.args[0].elts}
                else:
                    names.add(ast.literal_eval(key))
            return names
    raise AssertionError("a face with a computed __all__ must define _EXPORTS")


def _modules() -> list[tuple[Path, str]]:
    """Returns every module of the package with its stage (None: the top package and the shared modules)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        where = path.relative_to(ROOT)
        if len(where.parts) == 1 or where.as_posix() == "suite/__init__.py":  # the two wings' faces
            assert where.stem in SHARED | {"__init__"}, f"{where} is not in a stage package"
            found.append((path, None))
        else:
            stage = _stage(".".join(where.with_suffix("").parts))
            assert stage in STAGES, f"{where} is in no stage; add its package to STAGES in the right place"
            found.append((path, stage))
    return found


def _violations(rule) -> list[str]:
    broken = []
    for path, own in _modules():
        if own is None:
            continue
        where = path.relative_to(ROOT).as_posix()
        for module, names in _imports(path):
            stage = _stage(module)
            if stage is None or stage == own or stage in SHARED or module.split(".")[0] in SHARED:
                continue
            problem = rule(own, stage, module, names)
            if problem and (where, stage) not in EXCEPTIONS and (where, module) not in EXCEPTIONS:
                broken.append(f"{where}: {problem}")
    return broken


def test_every_stage_imports_only_earlier_stages():
    def backwards(own, stage, module, names):
        return f"imports {module}, a later stage" if STAGES.index(stage) > STAGES.index(own) else None

    assert _violations(backwards) == []


def test_nothing_in_the_library_imports_the_suite():
    def suite(own, stage, module, names):
        return f"imports {module} of the suite" if own in LIBRARY and stage in SUITE else None

    assert _violations(suite) == []


def test_stages_meet_only_through_package_faces():
    def behind_face(own, stage, module, names):
        if module != stage:
            return f"imports {module}: import from the face `{stage}` instead"
        hidden = sorted(set(names) - _face(stage))
        return f"takes {hidden} from {stage}, which its face does not export" if hidden else None

    assert _violations(behind_face) == []


def test_every_exception_is_still_needed():
    used = set()
    for path, own in _modules():
        where = path.relative_to(ROOT).as_posix()
        for module, _ in _imports(path):
            used |= {(where, module), (where, _stage(module))}
    assert sorted(set(EXCEPTIONS) - used) == []


def test_faces_export_only_what_they_hold():
    for stage in STAGES:
        package = __import__(f"edgewise.{stage}", fromlist=["__all__"])
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == [], f"edgewise.{stage} exports {missing}, which it does not define"


def test_shared_modules_import_no_stage():
    for name in SHARED:
        stages = {_stage(m) for m, _ in _imports(ROOT / f"{name}.py")}
        assert not stages & set(STAGES), name
