"""The package's layering, read from the source (module-level and function-level imports):

- no import cycle;
- the workflow stages depend only on earlier stages: corpus <- features <- database <- training
  <- evaluation; the shared base modules depend on no stage;
- models depend on Keras and the base only; the bundle on neither training nor legacy; the
  recogniser on no training, evaluation or legacy code; feature and corpus code never loads Keras;
- nothing imports the command line (``cli``) or the Snakemake glue (``workflow``);
- an import inside a function is there to defer Keras (the imported module loads it) or, in the
  command line, to answer ``--help`` fast: never to hide a cycle.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from ..helpers import REPO

PACKAGE = REPO / "src" / "deepser"
STAGES = ("corpus", "features", "database", "training", "evaluation")
BASE = ("errors", "files", "hdf5", "stats", "runtime", "metrics", "tasks", "late_fusion")
KERAS = ("keras", "tensorflow", "jax", "torch")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """A dotted name -> the deepser module it is (or whose attribute it is)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports(module: str) -> tuple[tuple[str, bool], ...]:
    """(imported name, at module level) for every import statement of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}: relative import"
            base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full if full in MODULES else base, id(node) in top))
    return tuple(out)


def edges(module: str, module_level_only: bool = False) -> set[str]:
    """The deepser modules ``module`` imports (explicitly; not the parent packages)."""
    found = set()
    for name, top in imports(module):
        target = resolve(name) if name.startswith("deepser") else None
        if target and target != module and (top or not module_level_only):
            found.add(target)
    return found


def closure(module: str, module_level_only: bool = False) -> set[str]:
    """Every deepser module that loading ``module`` can load (with parent packages)."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        for parent in (".".join(parts[: i + 1]) for i in range(len(parts))):
            if parent in MODULES and parent not in seen:
                seen.add(parent)
                todo += edges(parent, module_level_only)
    return seen


def third_party(modules: set[str], module_level_only: bool = False) -> set[str]:
    return {
        name.split(".")[0]
        for m in modules
        for name, top in imports(m)
        if not name.startswith("deepser") and (top or not module_level_only)
    }


def area(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "deepser"


def test_the_graph_is_read() -> None:
    assert len(MODULES) > 50
    assert "deepser.features.spectral" in edges("deepser.features.registry")
    assert "deepser.models.registry" in edges("deepser.training.train")  # function level


def test_no_import_cycle() -> None:
    graph = {m: edges(m) for m in MODULES}
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_stages_depend_only_on_earlier_stages_and_the_base(module: str) -> None:
    mine = area(module)
    for target in edges(module):
        theirs = area(target)
        if mine in STAGES and theirs in STAGES:
            assert STAGES.index(theirs) <= STAGES.index(mine), f"{module} imports {target}"
        if mine in BASE:
            assert theirs in BASE or theirs == "deepser", f"base {module} imports {target}"
        if mine in STAGES:
            assert theirs in (*STAGES, *BASE, "deepser", "models", "bundle"), (
                f"{module} imports {target}"
            )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_the_command_line_or_the_workflow_glue(module: str) -> None:
    for target in edges(module):
        for outer in ("cli", "workflow"):
            if area(target) == outer:
                assert area(module) == outer, f"{module} imports {target}"


def test_models_depend_on_keras_and_the_base_only() -> None:
    for module in (m for m in MODULES if area(m) == "models"):
        assert {area(t) for t in edges(module)} <= {"models", *BASE}, module


def test_the_bundle_depends_on_neither_training_nor_legacy() -> None:
    areas = {area(m) for m in closure("deepser.bundle")}
    assert not areas & {"training", "legacy", "evaluation", "recognizer"}, areas


def test_the_recogniser_imports_no_training_code() -> None:
    for module in (m for m in MODULES if area(m) == "recognizer"):
        areas = {area(m) for m in closure(module)}
        assert not areas & {"training", "evaluation", "legacy", "workflow", "cli"}, module


def test_feature_and_corpus_code_never_loads_keras() -> None:
    for module in (m for m in MODULES if area(m) in ("corpus", "features")):
        loaded = third_party(closure(module))
        assert not loaded & set(KERAS), f"{module} can load {loaded & set(KERAS)}"


def test_imports_inside_functions_defer_keras_or_serve_the_command_line() -> None:
    for module in MODULES:
        for name, top in imports(module):
            target = resolve(name) if name.startswith("deepser") else None
            if top or target is None or area(module) == "cli":
                continue
            loads = third_party(closure(target, module_level_only=True), module_level_only=True)
            assert loads & set(KERAS), (
                f"{module} imports {target} inside a function, but importing it at the top "
                "would not load Keras: import it at the top"
            )


def test_no_script_shadows_a_standard_library_module():
    """scripts/ is on sys.path when Snakemake runs a script (and in the live tests): a script
    named like a standard module (select.py) breaks every import of that module."""
    import sys

    scripts = REPO / "scripts"
    clashes = [p.name for p in scripts.glob("*.py") if p.stem in sys.stdlib_module_names]
    assert not clashes
