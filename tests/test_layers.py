"""The rooms of analytics/ are layered: a room imports only rooms below it, and no module circles.

The order is the one docs/architecture.md draws. Imports under `if TYPE_CHECKING:` count too: the
type checker follows them, and a circle there is a circle in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANALYTICS = ROOT / "analytics"

# bottom to top
LAYERS = [
    "core",
    "access",
    "history",
    "flows",
    "openwebui",
    "trends",
    "cost",
    "insights",
    "exports",
    "retention",
    "alerts",
    "jobs",
]
# the data plane's composition root: it bundles the state classes of the rooms above it (each of
# which imports only core), so it alone may look up
COMPOSITION_ROOT = "analytics.core.context"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("analytics"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    yield full if _is_module(full) else node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("analytics"):
                    yield alias.name


def _is_module(dotted: str) -> bool:
    p = ROOT.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ANALYTICS.rglob("*.py"):
        graph[_module_name(path)] = {m for m in _imports(path) if m != "analytics"}
    return graph


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_room_is_in_the_layer_order() -> None:
    rooms = {p.name for p in ANALYTICS.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(LAYERS)
    loose = [p.name for p in ANALYTICS.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "every module lives in a room"


def test_rooms_import_only_rooms_below_them() -> None:
    upward = []
    for module, imported in _graph().items():
        room = _room(module)
        if room is None or module == COMPOSITION_ROOT:
            continue
        for target in imported:
            other = _room(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(room):
                upward.append(f"{module} -> {target}")
    assert sorted(upward) == []


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_every_room_says_what_it_owns_and_may_import() -> None:
    for room in LAYERS:
        doc = ast.get_docstring(ast.parse((ANALYTICS / room / "__init__.py").read_text())) or ""
        assert "Imports:" in doc, f"analytics/{room}/__init__.py must say what it may import"
