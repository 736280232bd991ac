"""The simulator is its own layer: its modules import nothing of the project outside ``crypto_assets.simulator``
(not the client, the lake, ingest, defs, settings or any shared module), and no Dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import crypto_assets.simulator

PACKAGE = "crypto_assets.simulator"
FOLDER = Path(crypto_assets.simulator.__file__).parent
MODULES = sorted(FOLDER.rglob("*.py"))


def imported(source: str, package: str) -> set[str]:
    """The absolute names of the modules ``source`` (a module of ``package``) imports, relative imports resolved."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names.add(".".join(part for part in (base, node.module) if part))
    return names


def outside_the_simulator(names: set[str]) -> set[str]:
    return {name for name in names
            if (name.split(".")[0] == "crypto_assets" and name != PACKAGE and not name.startswith(PACKAGE + "."))
            or name.split(".")[0].startswith("dagster")}


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(FOLDER)) for p in MODULES])
def test_a_simulator_module_imports_nothing_of_the_project_outside_the_simulator(path):
    package = ".".join((PACKAGE, *path.relative_to(FOLDER).parent.parts))
    assert outside_the_simulator(imported(path.read_text(), package)) == set()


def test_the_check_sees_every_form_of_import():
    source = ("from crypto_assets.exchange import endpoints\nimport crypto_assets.lake.store\nfrom .. import settings\n"
              "from . import wire\nfrom .market import Market\nimport dagster\nimport json\n")
    names = imported(source, PACKAGE)
    assert names == {"crypto_assets.exchange", "crypto_assets.lake.store", "crypto_assets", PACKAGE,
                     f"{PACKAGE}.market", "dagster", "json"}
    assert outside_the_simulator(names) == {"crypto_assets.exchange", "crypto_assets.lake.store", "crypto_assets",
                                            "dagster"}
    assert {p.name for p in MODULES} >= {"__init__.py", "__main__.py", "endpoints.py", "rest_api.py", "streams.py"}
