"""The layers stay apart: each package of ``crypto_assets`` imports only what the README's architecture allows it,
and Dagster only in ``defs/`` and ``definitions.py``. The simulator imports nothing of the project outside itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import crypto_assets

ROOT = Path(crypto_assets.__file__).parent
# package -> the project modules it may import (itself always); everything else of crypto_assets, and dagster, is out
BASE = {"crypto_assets.minutes", "crypto_assets.backoff"}  # time and back-off: every layer's, each in one home
ALLOWED = {
    "crypto_assets.minutes": set(),
    "crypto_assets.backoff": set(),
    "crypto_assets.exchange": BASE,
    "crypto_assets.lake": BASE | {"crypto_assets.exchange"},
    "crypto_assets.ingest": BASE | {"crypto_assets.exchange", "crypto_assets.lake"},
    "crypto_assets.settings": {"crypto_assets.exchange", "crypto_assets.lake"},
    "crypto_assets.data": {"crypto_assets.lake", "crypto_assets.settings"},  # the data outside Dagster
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    return next((package for package in ALLOWED if module == package or module.startswith(package + ".")), None)


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


def forbidden(layer: str, names: set[str]) -> set[str]:
    """The names a module of ``layer`` must not import: Dagster, and the project outside what ``layer`` may use."""
    allowed = ALLOWED[layer] | {layer}
    return {
        name
        for name in names
        if name.split(".")[0].startswith("dagster")
        or (name.split(".")[0] == "crypto_assets" and not any(name == a or name.startswith(a + ".") for a in allowed))
    }


LAYERED = sorted(path for path in ROOT.rglob("*.py") if layer_of(module_name(path)))


SIMULATOR = Path(__file__).resolve().parents[1] / "binance_simulator"  # a package of its own, not in the image


@pytest.mark.parametrize("path", sorted(SIMULATOR.rglob("*.py")), ids=lambda p: p.name)
def test_the_simulator_imports_nothing_of_the_project_and_no_dagster(path):
    names = imported(path.read_text(), "binance_simulator")
    assert {n for n in names if n.split(".")[0] in ("crypto_assets", "dagster")} == set()


def test_the_production_image_leaves_the_simulator_out():
    dockerfile = (SIMULATOR.parent / "deploy" / "Dockerfile").read_text()
    assert "COPY crypto_assets ./crypto_assets" in dockerfile and "binance_simulator" not in dockerfile


@pytest.mark.parametrize("path", LAYERED, ids=[str(p.relative_to(ROOT)) for p in LAYERED])
def test_a_module_imports_only_what_its_layer_allows(path):
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    assert forbidden(layer_of(module), imported(path.read_text(), package)) == set()


def test_the_check_sees_every_form_of_import():
    package = "crypto_assets.minutes"
    source = (
        "from crypto_assets.exchange import endpoints\nimport crypto_assets.lake.store\nfrom .. import settings\n"
        "from . import wire\nfrom .market import Market\nimport dagster\nimport json\n"
    )
    names = imported(source, package)
    assert names == {
        "crypto_assets.exchange",
        "crypto_assets.lake.store",
        "crypto_assets",
        package,
        f"{package}.market",
        "dagster",
        "json",
    }
    assert forbidden(package, names) == {
        "crypto_assets.exchange",
        "crypto_assets.lake.store",
        "crypto_assets",
        "dagster",
    }
    assert forbidden(
        "crypto_assets.ingest", {"crypto_assets.lake.store", "crypto_assets.defs.names", "crypto_assets.settings"}
    ) == {"crypto_assets.defs.names", "crypto_assets.settings"}
    layers = {layer_of(module_name(p)) for p in LAYERED}
    assert layers == set(ALLOWED)
