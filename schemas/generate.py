"""Write the JSON Schema files in ``schemas/json/`` from the pydantic models.

    python -m schemas.generate           # (re)write every registered schema
    python -m schemas.generate --check   # exit 1 if a file is stale, missing or orphaned

Add a model to :data:`REGISTRY` to publish its schema as ``json/<name>.schema.json``; the
AsyncAPI document of the catalogue (``json/asyncapi.json``) is written and checked alongside.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from schemas.asyncapi import asyncapi_document
from schemas.envelope import CloudEvent
from schemas.landscape import OBJECT_TYPES, GebruikVoorstel, Ingetrokken

__all__ = ["JSON_DIR", "REGISTRY", "main", "render", "stale_files", "write_all"]

JSON_DIR = Path(__file__).parent / "json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

REGISTRY: dict[str, type[BaseModel]] = {
    "cloudevent": CloudEvent,
    **OBJECT_TYPES,  # organisatie.schema.json, …: the data of each vastgelegd event
    "ingetrokken": Ingetrokken,  # the data of every ingetrokken event
    "gebruikvoorstel": GebruikVoorstel,  # the data of nl.softwarecatalogus.gebruik.voorgesteld.v1
}


def render(model: type[BaseModel]) -> str:
    """The schema file text for ``model``: sorted keys, indent 2, trailing newline."""
    schema = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


#: The AsyncAPI 3.0 document of the event catalogue (:mod:`schemas.asyncapi`), beside the schemas.
ASYNCAPI_FILE = "asyncapi.json"


def _expected(registry: Mapping[str, type[BaseModel]]) -> dict[str, str]:
    files = {f"{name}.schema.json": render(model) for name, model in registry.items()}
    if registry is REGISTRY:  # the catalogue's document describes the hub's own registry only
        files[ASYNCAPI_FILE] = json.dumps(asyncapi_document(), indent=2, ensure_ascii=False) + "\n"
    return files


def write_all(directory: Path = JSON_DIR, registry: Mapping[str, type[BaseModel]] = REGISTRY) -> list[Path]:
    """Write every registered schema into ``directory``; return the files changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for filename, text in _expected(registry).items():
        path = directory / filename
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale_files(directory: Path = JSON_DIR, registry: Mapping[str, type[BaseModel]] = REGISTRY) -> list[str]:
    """Describe every schema file that differs from, lacks or has no registered model."""
    expected = _expected(registry)
    problems = []
    for filename, text in expected.items():
        path = directory / filename
        if not path.exists():
            problems.append(f"{filename}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{filename}: stale")
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path.name}: no model in schemas.generate.REGISTRY")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if any file is stale")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m schemas.generate", file=sys.stderr)
            return 1
        return 0
    for path in write_all(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
