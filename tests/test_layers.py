"""The layer rule, read from every module's imports (top level and inside functions alike): the core
imports nothing of the card, Airflow or UI code; the card code imports only the core; the UI imports
no operator module; nothing but the package root's lazy table imports the package root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_carbon"
AIRFLOW_LAYER = ("airflow", "fastapi", "starlette", "sqlalchemy", "jinja2")


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            names.add(n.module)
            names.update(f"{n.module}.{a.name}" for a in n.names if n.module == "airflow_carbon")
    return names


def _ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "airflow_carbon" or n.startswith("airflow_carbon.")}


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
def test_the_core_imports_only_the_core_and_no_airflow(path):
    names = _imports(path)
    assert _ours(names) <= {n for n in _ours(names) if n.startswith("airflow_carbon.core") or n == "airflow_carbon._version"}
    assert not {n for n in names if n.split(".")[0] in (*AIRFLOW_LAYER, "huggingface_hub")}


@pytest.mark.parametrize("path", _modules("card"), ids=lambda p: p.name)
def test_the_card_code_imports_only_the_core(path):
    names = _imports(path)
    assert all(n.startswith(("airflow_carbon.core", "airflow_carbon.card")) or n == "airflow_carbon._version" for n in _ours(names))
    assert not {n for n in names if n.split(".")[0] in AIRFLOW_LAYER}


@pytest.mark.parametrize("path", _modules("ui"), ids=lambda p: p.name)
def test_the_ui_imports_no_operator_module(path):
    assert not {n for n in _ours(_imports(path)) if n.startswith(("airflow_carbon.operators", "airflow_carbon.decorators"))}


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_the_package_root(path):
    root = {n for n in _imports(path) if n == "airflow_carbon" or (n.startswith("airflow_carbon.") and n.count(".") == 1 and n.split(".")[1] in {"__version__"})}
    assert not root, f"{path.name} imports the package root ({root}); import from airflow_carbon._version or the module itself"


def test_the_record_module_imports_nothing_from_the_package():
    assert not _ours(_imports(PACKAGE / "core" / "record.py"))
