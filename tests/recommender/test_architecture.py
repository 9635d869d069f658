"""The recommender's import rules, checked by walking imports with `ast`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("loyalty", "hooks", "plugin", "recommender")
RECOMMENDER_MAY_IMPORT = {
    "numpy",
    "scipy",
    "lightfm",
    "asyncpg",
    "redis",
    "threadpoolctl",
    "aiodataloader",
    "recommender",
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_only_recommender_model_imports_lightfm() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in _modules(package)
        if any(name.split(".")[0] == "lightfm" for name in _imports(path))
    }
    assert importers == {"recommender/model.py"}


def test_recommender_imports_only_its_allowed_libraries() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in _modules("recommender"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in stdlib or top in RECOMMENDER_MAY_IMPORT, f"{path.name} imports {name}"


def test_sql_lives_in_the_repository() -> None:
    for path in _modules("recommender"):
        if path.name == "repository.py":
            continue
        assert "asyncpg" not in {n.split(".")[0] for n in _imports(path)}, path.name
        text = path.read_text()
        for keyword in ("SELECT ", "INSERT INTO", "DELETE FROM", "UPDATE "):
            assert keyword not in text, f"{path.name} holds SQL ({keyword.strip()})"


def test_the_api_process_does_not_import_lightfm() -> None:
    """Serving reads Redis; the app must not even import the library that trains models."""
    code = "import sys, plugin.app, plugin.cli; assert 'lightfm' not in sys.modules, 'lightfm was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # noqa: S603
