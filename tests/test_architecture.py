"""The folder layout is the architecture: api/ is a thin HTTP adapter with no SQL and no DuckDB."""

import ast
import re
from pathlib import Path

API = Path(__file__).resolve().parents[1] / "api"
# statements, not the word: the SQL console's docs may say "one SELECT over the export"
SQL = re.compile(r"\b(SELECT\b[^\n]*\bFROM|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE TABLE)\b")


def test_api_has_no_duckdb_and_no_sql() -> None:
    offenders = []
    for path in API.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import duckdb|from duckdb)", text, re.M) or SQL.search(text):
            offenders.append(path.name)
    assert offenders == []


# -- thin routes (issue 11) ----------------------------------------------------------------------
# A route parses its input, makes one library call and returns the response model. Access checks,
# limits and error statuses live in analytics (its typed errors map to codes once, in api/errors.py).

ROUTES = API / "routes"
# Being made thin on another branch (issue 11, exports/jobs/retention): drop each name when it lands.
NOT_YET_THIN = {"exports.py", "jobs.py", "retention.py"}
# Hand-written answer converters kept on purpose, each with its measured reason in a comment.
KEPT_CONVERTERS = {"rule_out"}  # joins a rule with the states of its own query (api/schemas/alerts.py)


def _route_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions decorated with `@router.<method>(...)`."""

    def is_route(d: ast.expr) -> bool:
        target = d.func if isinstance(d, ast.Call) else d
        return (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "router"
        )

    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(map(is_route, node.decorator_list))
    ]


def _thin_route_offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "analytics.access.permissions"
        ):
            found.append(f"{path.name}:{node.lineno} imports analytics.access.permissions")
    for fn in _route_functions(tree):
        for node in ast.walk(ast.Module(body=fn.body, type_ignores=[])):
            where = f"{path.name}:{getattr(node, 'lineno', fn.lineno)} in {fn.name}"
            if isinstance(node, ast.Name) and node.id in {"HTTPException", "JSONResponse"}:
                found.append(f"{where}: {node.id}")
            if isinstance(node, ast.keyword) and node.arg == "status_code":
                found.append(f"{where}: status_code=")
            if isinstance(node, ast.Attribute) and node.attr == "status_code":
                found.append(f"{where}: .status_code")
            if isinstance(node, ast.Call):
                callee = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if callee.startswith("require_"):
                    found.append(f"{where}: access check {callee}()")
    return found


def test_routes_are_thin() -> None:
    offences = [
        o for p in sorted(ROUTES.glob("*.py")) if p.name not in NOT_YET_THIN for o in _thin_route_offences(p)
    ]
    assert offences == []


def test_the_thin_route_check_sees_offences(tmp_path: Path) -> None:
    """The check above is only worth something if it catches each kind of offence."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from analytics.access.permissions import require_flow_access\n"
        "from fastapi import HTTPException\n"
        "@router.get('/x')\n"
        "def x(ctx, viewer, response):\n"
        "    require_flow_access(ctx.directory, viewer, 'f')\n"
        "    response.status_code = 202\n"
        "    raise HTTPException(status_code=409)\n"
    )
    found = " ".join(_thin_route_offences(bad))
    for offence in (
        "imports analytics.access.permissions",
        "require_flow_access",
        ".status_code",
        "HTTPException",
        "status_code=",
    ):
        assert offence in found


def test_answers_are_read_by_models_not_converters() -> None:
    """No hand-written `*_dict` / `*_out` converters: response models read the library's objects."""
    converters = re.compile(r"^\s*def (\w+_(?:dict|out))\(", re.M)
    found = {name for path in API.rglob("*.py") for name in converters.findall(path.read_text())}
    assert found <= KEPT_CONVERTERS, found - KEPT_CONVERTERS


def test_no_result_is_left_half_read() -> None:
    """DuckDB leaves a result `fetchone()` read unfinished, and the connection's next relation
    query fails: on a kept read cursor, an export status made the next metrics request a 500.
    `analytics.core.store.one_row` reads the first row and the rest."""
    root = API.parent / "analytics"
    offenders = [
        str(path.relative_to(API.parent))
        for folder in (API, root)
        for path in folder.rglob("*.py")
        if re.search(r"\.fetchone\(\)", path.read_text())
    ]
    assert offenders == []
