"""Each rule's library inputs come from its script's imports (``deepser.workflow.code``): module
and function level, transitively, with the packages a module lives in; and a job can tell which
library modules it loaded that its rule does not track."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from deepser.workflow.code import (
    STAMP_SUFFIX,
    code_files,
    library_modules,
    stamped_files,
    untracked_modules,
    write_code_stamp,
)

from ..helpers import REPO

PACKAGE = REPO / "src" / "deepser"
SCRIPTS = REPO / "scripts"


def relative(paths: list[Path]) -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in paths}


def test_a_script_depends_on_what_it_can_run() -> None:
    train_fold = relative(library_modules(SCRIPTS / "train_fold.py", PACKAGE))
    # the script's imports, their packages, and what they import at any depth ...
    assert {"__init__.py", "training/__init__.py", "training/train.py"} <= train_fold
    assert {"database/store.py", "features/augment.py", "workflow/rulelog.py"} <= train_fold
    # ... including imports inside functions (the model zoo loads after the backend set-up)
    assert {"models/registry.py", "models/zoo.py", "models/custom_layers.py"} <= train_fold
    assert "training/losses.py" in train_fold  # lazily, through the fit loop
    # and nothing it cannot reach
    assert not {"recognizer/engine.py", "cli/__init__.py", "legacy/keras2.py"} & train_fold
    evaluate = relative(library_modules(SCRIPTS / "evaluate_fold.py", PACKAGE))
    assert {"models/saving.py", "models/custom_layers.py", "training/record.py"} <= evaluate
    assert "training/train.py" not in evaluate  # evaluation does not run the trainer


def test_relative_imports_and_submodules_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "deepser"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from . import b\n")
    (root / "sub" / "a.py").write_text("def f():\n    from .c import x\n")
    (root / "sub" / "b.py").write_text("")
    (root / "sub" / "c.py").write_text("x = 1\n")
    (root / "unused.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("from deepser.sub import a\n")
    found = {p.relative_to(root).as_posix() for p in library_modules(script, root)}
    assert found == {"__init__.py", "sub/__init__.py", "sub/a.py", "sub/b.py", "sub/c.py"}


def test_untracked_modules_names_what_a_job_loaded_beyond_its_inputs(monkeypatch) -> None:
    tracked = library_modules(SCRIPTS / "merge_gain.py", PACKAGE)
    loaded = {
        "deepser.fake_a": PACKAGE / "corpus" / "gain.py",
        "deepser.fake_b": PACKAGE / "evaluation" / "report.py",
    }
    for name, path in loaded.items():
        module = types.ModuleType(name)
        module.__file__ = str(path)
        monkeypatch.setitem(sys.modules, name, module)
    missing = untracked_modules(PACKAGE, tracked)
    assert "evaluation/report.py" in missing and "corpus/gain.py" not in missing


def test_a_code_stamp_changes_exactly_with_its_files(tmp_path: Path) -> None:
    root = tmp_path / "lib" / "deepser"
    (root / "sub").mkdir(parents=True)
    module, script = root / "sub" / "m.py", tmp_path / "scripts" / "run.py"
    script.parent.mkdir()
    module.write_text("X = 1\n")
    script.write_text("import deepser.sub.m\n")
    stamp = tmp_path / "results" / "code" / f"run.py{STAMP_SUFFIX}"
    write_code_stamp([script, module], stamp, root)
    first = stamp.read_text()
    assert [line.split("  ")[1] for line in first.splitlines()] == ["run.py", "deepser/sub/m.py"]
    # the library modules a stamp lists, for the job's check of what it ran
    assert stamped_files(stamp, root) == [root / "sub" / "m.py"]
    assert code_files([stamp, script], root) == [root / "sub" / "m.py", script]
    module.touch()
    write_code_stamp([script, module], stamp, root)
    assert stamp.read_text() == first  # a touch: the same stamp
    module.write_text("X = 2\n")
    write_code_stamp([script, module], stamp, root)
    assert stamp.read_text() != first  # an edit: another stamp
    assert not list(stamp.parent.glob(".*"))  # written whole, no temporary left
