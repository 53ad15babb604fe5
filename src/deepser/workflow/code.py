"""The library code a rule's script runs, derived from its imports (not listed by hand).

Each rule takes its script and every ``deepser`` module the script can import as inputs, so an
edit to any of them re-runs the rule (Snakemake compares content checksums: a mere ``touch``
re-runs nothing). The modules are found by walking the imports with :mod:`ast`: module-level
and function-level ones, transitively, with the packages a module lives in (importing
``deepser.a.b`` runs ``deepser/__init__.py`` and ``deepser/a/__init__.py`` too).
:func:`untracked_modules` checks the result at run time against what a job really imported.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "deepser"


def module_file(root: Path, module: str) -> Path | None:
    """The source file of ``module`` (dotted name) under the package folder ``root``."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _packages(module: str) -> list[str]:
    """``deepser.a.b`` -> ``deepser``, ``deepser.a``, ``deepser.a.b``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _statements(tree: ast.Module) -> Iterable[ast.AST]:
    """Every statement of a module, nested ones included (an import is a statement, and
    statements nest only in the bodies of other statements, never in expressions): a tenth
    of the nodes :func:`ast.walk` visits."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                todo.extend(children)


@cache
def _imports(path: Path, module: str | None, mtime_ns: int) -> tuple[str, ...]:
    """Every module name imported anywhere in ``path`` (``module``: its dotted name, for
    relative imports; None for a script). ``mtime_ns`` keys the cache."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if module is None:
                    continue
                parent = module.split(".")
                parent = parent if is_package else parent[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            names.append(base)
            # "from package import submodule" imports the submodule too
            names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return tuple(names)


def library_modules(script: str | Path, root: str | Path) -> list[Path]:
    """The ``deepser`` source files (under the package folder ``root``) that ``script`` can run,
    sorted."""
    root = Path(root)
    seen: dict[str, Path] = {}
    script = Path(script)
    todo = list(_imports(script, None, script.stat().st_mtime_ns))
    while todo:
        name = todo.pop()
        for package in _packages(name):
            if package in seen:
                continue
            path = module_file(root, package)
            if path is None:
                continue
            seen[package] = path
            todo += _imports(path, package, path.stat().st_mtime_ns)
    return sorted(set(seen.values()))


def loaded_modules(root: str | Path, modules: Iterable[object] | None = None) -> set[Path]:
    """Source files under ``root`` of the modules loaded in this process."""
    root = Path(root).resolve()
    found = set()
    for module in list(sys.modules.values()) if modules is None else modules:
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root):
            found.add(Path(path).resolve())
    return found


def untracked_modules(root: str | Path, tracked: Iterable[str | Path]) -> list[str]:
    """Library files this process has loaded that are not among ``tracked`` (the rule's code
    inputs), relative to ``root``: code a job ran but whose edits would not re-run it."""
    tracked_files = {Path(p).resolve() for p in tracked}
    root = Path(root).resolve()
    return sorted(p.relative_to(root).as_posix() for p in loaded_modules(root) - tracked_files)


STAMP_SUFFIX = ".sha256"


def write_code_stamp(files: Iterable[str | Path], out: str | Path, root: str | Path) -> None:
    """Write the code stamp ``out``: one line ``<sha256>  <name>`` per file (a script by its
    file name, a library module as ``deepser/<path under root>``), so a rule needs one code
    input instead of its script and every module (far fewer files for Snakemake to check on
    every run), and the stamp's content changes exactly when one of them does."""
    root = Path(root).resolve()
    lines = []
    for file in files:
        path = Path(file).resolve()
        name = (
            f"{PACKAGE}/{path.relative_to(root).as_posix()}"
            if path.is_relative_to(root)
            else path.name
        )
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(out)


def stamped_files(stamp: str | Path, root: str | Path) -> list[Path]:
    """The library modules a code stamp lists, as files under the package folder ``root``."""
    prefix = f"{PACKAGE}/"
    names = [line.split("  ", 1)[1] for line in Path(stamp).read_text().splitlines() if line]
    return [Path(root).joinpath(n[len(prefix) :]) for n in names if n.startswith(prefix)]


def code_files(code: Iterable[str | Path], root: str | Path) -> list[Path]:
    """A rule's code inputs as files: each code stamp replaced by the modules it lists."""
    files: list[Path] = []
    for entry in code:
        path = Path(entry)
        files += stamped_files(path, root) if path.name.endswith(STAMP_SUFFIX) else [path]
    return files
