"""Dependencies point down: the plain functions of ``services/`` import neither the web layer
(FastAPI, ``gateway_api``) nor the Celery task modules (``tasks``) nor the CLI. Checked on the
syntax tree of every module, imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.celery_workers import REPO_ROOT

FORBIDDEN = ("fastapi", "starlette", "tasks", "gateway_api", "cli")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in FORBIDDEN)


def test_services_import_neither_fastapi_nor_tasks() -> None:
    upward: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "services").rglob("*.py")):
        found = {module for module in imported_modules(path) if is_forbidden(module)}
        if found:
            upward[str(path.relative_to(REPO_ROOT))] = found
    assert upward == {}


def test_routes_and_the_cli_publish_through_services_not_task_modules() -> None:
    """``tasks/`` holds the Celery task wrappers only: the API and the CLI reach the broker
    through ``services`` (the broker client, the ingest result messages)."""
    task_imports: dict[str, set[str]] = {}
    for package in ("gateway_api", "cli"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found = {m for m in imported_modules(path) if m == "tasks" or m.startswith("tasks.")}
            if found:
                task_imports[str(path.relative_to(REPO_ROOT))] = found
    assert task_imports == {}


def test_the_check_sees_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text("def publish():\n    from tasks.ingest import publish_result_chunks\n")
    assert {m for m in imported_modules(module) if is_forbidden(m)} == {"tasks.ingest"}
