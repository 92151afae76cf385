"""The package's layout keeps the one-way flow meters -> ledger -> model -> report and budget:
each package imports only what its ``__init__`` docstring says it may, and nothing in the core
imports a framework when it is loaded."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "auditor"
PLUGINS = ROOT / "integrations"
FRAMEWORKS = ("optuna", "ray")

# What each part of the core may import of the auditor ("auditor" alone: the package's
# ``__version__``). Each package's __init__ docstring says the same in words.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "data": set(),
    "model": {"errors", "data"},
    "live": {"errors", "model", "data"},  # the only network client; connects only when called
    "meters": {"errors", "model"},
    "ledger": {"auditor", "errors", "meters"},
    "budget": {"errors", "model", "ledger"},
    "report": {"auditor", "errors", "model", "ledger"},
    "imports": {"errors", "model", "ledger"},
    "search": {"errors", "model", "meters", "ledger", "budget"},
    "config": {"errors", "model", "budget", "live"},
    "tracking": {"config", "errors", "ledger", "meters", "search"},
    "cli": {"auditor", "config", "errors", "model", "live", "meters", "ledger", "budget", "report", "imports", "search",
            "tracking", "integrations"},
    "__init__": set(),
}
# Only these read or run a framework, and only inside the function that needs it: the
# importers read a study, the CLI checks what a command needs and runs the demo.
LAZY_FRAMEWORK_IMPORTS = {"imports", "cli"}


def _part(path: Path) -> str:
    relative = path.relative_to(CORE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, and whether at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level))
    return found


def _auditor_part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "auditor":
        return None
    return parts[1] if len(parts) > 1 else "auditor"


MODULES = sorted(CORE.rglob("*.py"))  # the core (the plugins are in integrations/)


def test_every_part_of_the_core_has_its_rule() -> None:
    assert {_part(path) for path in MODULES} == set(MAY_IMPORT)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_flow(path: Path) -> None:
    part = _part(path)
    allowed = MAY_IMPORT[part] | {part}
    wrong = sorted({module for module, _ in _imports(path) if (_auditor_part(module) or part) not in allowed})
    assert not wrong, f"{part} may import only {sorted(allowed)}; {path.name} imports {wrong}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_framework_in_the_core(path: Path) -> None:
    framework_imports = [(m, top) for m, top in _imports(path) if m.split(".")[0] in FRAMEWORKS]
    if _part(path) in LAZY_FRAMEWORK_IMPORTS:
        assert not [m for m, top in framework_imports if top], f"{path.name} imports a framework when loaded"
    else:
        assert not framework_imports, f"{path.name} imports {framework_imports}"


def test_the_rules_catch_a_wrong_import(tmp_path: Path) -> None:
    """The checks above can fail: a model module importing the ledger, and one importing optuna."""
    module = tmp_path / "bad.py"
    module.write_text("import optuna\nfrom auditor.ledger import Ledger\n\ndef f():\n    import ray\n")
    imported = _imports(module)
    assert ("optuna", True) in imported and ("ray", False) in imported
    assert _auditor_part("auditor.ledger") not in MAY_IMPORT["model"]


@pytest.mark.parametrize("plugin", ["optuna.py", "ray_tune.py", "ray_tune_worker.py"])
def test_plugins_are_thin_adapters(plugin: str) -> None:
    """Each plugin file turns its framework's events into the core's calls: under 300 lines."""
    lines = (PLUGINS / plugin).read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"integrations/{plugin} has {lines} lines"


def test_each_package_says_what_it_may_import() -> None:
    for package in ("model", "meters", "ledger", "budget", "search", "report", "imports", "live"):
        doc = ast.get_docstring(ast.parse((CORE / package / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"auditor/{package}/__init__.py should say what it may import"
