"""The layout's arrows, checked on the source: which package may import which.

``schemas`` imports nothing of ours; ``subscriptions`` and ``connectors`` only ``schemas``;
``hub/services`` and ``hub/api`` depend on ports, never on an adapter or a driver; only
``hub/bootstrap/`` (the composition root) wires adapters in. Each rule is a test, so a
change that bends an arrow names the file and the import that bent it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = frozenset({"schemas", "subscriptions", "connectors", "hub"})
#: Driver and client libraries that belong in adapters (and the webhook sender).
DRIVERS = frozenset({"aiokafka", "sqlalchemy", "psycopg", "aiohttp", "alembic", "pgserver"})


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offenders(files: Iterable[Path], forbidden: set[str] | frozenset[str]) -> dict[str, list[str]]:
    """File → the imports of ``forbidden`` top-level packages or dotted prefixes it makes."""
    found: dict[str, list[str]] = {}
    for path in files:
        bad = sorted(
            m
            for m in imported_modules(path)
            if m.split(".")[0] in forbidden or any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "allowed"),
    [("schemas", set()), ("subscriptions", {"schemas"}), ("connectors", {"schemas"})],
)
def test_pure_packages_import_only_what_lies_below_them(package: str, allowed: set[str]) -> None:
    assert offenders(sources(package), OURS - allowed - {package}) == {}


def test_connectors_and_schemas_use_no_driver() -> None:
    assert offenders([*sources("connectors"), *sources("schemas")], DRIVERS) == {}


@pytest.mark.parametrize("layer", ["hub/services", "hub/api", "hub/ports"])
def test_services_api_and_ports_import_no_adapter_and_no_driver(layer: str) -> None:
    assert offenders(sources(layer), DRIVERS | {"hub.adapters", "hub.bootstrap"}) == {}


#: Besides the adapters themselves, only these may import ``hub.adapters``: the composition root,
#: and the alembic environment, which is the PostgreSQL adapter's own (it reads the adapter's
#: table metadata and is run only by the adapter's ``migrate``), kept in ``hub/migrations/``
#: because alembic's layout wants it there.
MAY_WIRE = (ROOT / "hub" / "adapters", ROOT / "hub" / "bootstrap", ROOT / "hub" / "migrations")


def test_only_the_composition_root_wires_adapters() -> None:
    outside = [p for p in sources("hub") if not any(p == m or p.is_relative_to(m) for m in MAY_WIRE)]
    assert offenders(outside, {"hub.adapters"}) == {}


def test_adapters_never_import_services_or_the_api() -> None:
    upper = {"hub.services", "hub.api", "hub.bootstrap", "hub.cli", "hub.serve"}
    assert offenders(sources("hub/adapters"), upper) == {}


def test_the_rules_can_fail() -> None:
    """The checker itself: a file that imports an adapter is named."""
    here = Path(__file__)
    assert offenders([here], {"pytest"}) == {str(here.relative_to(ROOT)): ["pytest"]}
