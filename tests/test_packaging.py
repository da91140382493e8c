"""`make run` installs `-e .` alone, without the test and bench extras: every third-party module
the server and the CLI import (analytics/, api/) must be a dependency of the package itself."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> dict[str, str]:
    """Every top-level module imported anywhere in analytics/ and api/ (lazy imports too),
    with one place that imports it."""
    found: dict[str, str] = {}
    for path in sorted([*ROOT.glob("analytics/**/*.py"), *ROOT.glob("api/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed_with(requirements: list[str]) -> set[str]:
    """The distributions installing `requirements` brings (their own dependencies, and those
    of the extras asked for, as `uvicorn[standard]` does), by normalized name."""
    closure: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = _normal(req.name)
        if name in closure:
            continue
        closure.add(name)
        for wanted in ("", *req.extras):
            todo += [(Requirement(r), wanted) for r in requires(req.name) or []]
    return closure


def test_what_the_server_imports_is_a_dependency_not_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _installed_with(project["dependencies"])
    distributions = packages_distributions()
    missing = []
    for module, where in _imported_top_level_modules().items():
        if module in {"analytics", "api", "__future__"} or module in sys.stdlib_module_names:
            continue
        dists = {_normal(d) for d in distributions.get(module, [])}
        if not dists & installed:
            missing.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'}), imported at {where}")
    assert not missing, "imported by the server or the CLI but not a dependency:\n" + "\n".join(missing)
