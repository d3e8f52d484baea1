"""What every later stage can store and send: the one check of event ``data``.

An accepted event is serialised again by the projector (orjson, into PostgreSQL ``jsonb``)
and by the dispatcher (JSON to every subscriber). Each stage has limits the JSON grammar
does not: orjson refuses integers outside the signed/unsigned 64-bit range, strings that
are not valid UTF-8 (lone surrogates) and nesting beyond 254 levels; PostgreSQL's ``jsonb``
refuses U+0000 in any string or key; NaN and Infinity are not JSON at all (orjson would
silently write ``null``). :func:`data_problem` refuses all of these up front, so an event the
hub accepted can always be stored and delivered.

:data:`MAX_DATA_DEPTH` is a constant, not a setting: the limit is part of the hub's
contract with every subscriber, and every role must agree on it (a projector with a lower
limit would dead-letter what the API accepted). 64 levels is far beyond real documents
(the landscape objects nest 3 deep) and far below orjson's 254 and the standard library
parser's recursion limit (~990).

:data:`DEFAULT_MAX_EXTENSIONS` caps extension attributes per event: the CloudEvents
documented extensions number about a dozen and the hub adds ``organisatie``; 32 leaves
room while keeping a binary-mode delivery or Kafka record within the 100 headers that
common servers and proxies accept (Tomcat, nginx-ingress defaults).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["DEFAULT_MAX_EXTENSIONS", "MAX_DATA_DEPTH", "data_problem", "parsed_data_problem", "text_problem"]

MAX_DATA_DEPTH = 64
DEFAULT_MAX_EXTENSIONS = 32

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# A path is a linked list (parent, key) built only for containers, turned into text on failure.
_Path = tuple[Any, str | int] | None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored and sent as JSON text, or None."""
    if "\x00" not in text and (text.isascii() or _BAD_CHAR.search(text) is None):
        return None
    if "\x00" in text:
        return (
            "contains U+0000, which PostgreSQL cannot store; remove it, or send the payload "
            "as data_base64 (binary mode with a non-JSON content type)"
        )
    return "contains a lone UTF-16 surrogate, which is not valid Unicode"


def _scalar_problem(value: Any) -> str | None:
    """Why a non-container value is not storable JSON, or None."""
    kind = type(value)
    if kind is str:
        return text_problem(value)
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return (
            f"integer {_short(value)} is outside the 64-bit range this hub stores "
            f"({_INT_MIN} to {_INT_MAX}); send it as a string"
        )
    if kind is float:
        return None if math.isfinite(value) else "is not a finite number (NaN and Infinity are not JSON)"
    if value is None or kind is bool:
        return None
    # Subclasses (str enums, IntEnum) are checked as their JSON base type.
    for base in (str, int, float):
        if isinstance(value, base):
            return _scalar_problem(base(value))
    return f"a {kind.__name__} is not a JSON value"


def data_problem(value: Any, root: str = "data") -> tuple[str, str] | None:
    """The first value in ``value`` that a later stage cannot store or send, as
    ``(path, reason)`` (e.g. ``("data.a.b[3]", "integer … is outside …")``), or None.

    One iterative walk (no recursion, so no depth can overflow the stack); containers are
    ``dict`` with string keys, ``list`` and ``tuple``; scalars string, integer, float,
    boolean or None. Paths are built only for containers and rendered only on failure."""
    if type(value) not in (dict, list, tuple):
        problem = _scalar_problem(value)
        return None if problem is None else (root, problem)
    stack: list[tuple[Any, int, _Path]] = [(value, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DATA_DEPTH:
            return _render(root, path), f"nests deeper than {MAX_DATA_DEPTH} levels, the hub's limit"
        if type(node) is dict:
            try:  # one C-speed look at all keys; the loop below only when one may be bad
                keys = "".join(node)
            except TypeError:
                keys = "\x00"
            for key in node if "\x00" in keys or not keys.isascii() else ():
                if type(key) is not str:
                    if not isinstance(key, str):
                        return _render(root, path), f"object keys must be strings, not {type(key).__name__}"
                    key = str(key)
                if "\x00" in key or not key.isascii():
                    problem = text_problem(key)
                    if problem is not None:
                        return _render(root, (path, key)), f"the key {problem}"
            items: Any = node.items()
        else:
            items = enumerate(node)
        for key, item in items:
            # The common cases inline (ASCII text, 64-bit integers, finite floats, booleans,
            # null); everything else, good or bad, goes to _scalar_problem.
            kind = type(item)
            if kind is str:
                if "\x00" not in item and item.isascii():
                    continue
            elif kind is dict or kind is list or kind is tuple:
                stack.append((item, depth + 1, (path, key)))
                continue
            elif kind is int:
                if _INT_MIN <= item <= _INT_MAX:
                    continue
            elif kind is float:
                if item - item == 0.0:  # false for NaN and the infinities
                    continue
            elif item is None or kind is bool:
                continue
            problem = _scalar_problem(item)
            if problem is not None:
                return _render(root, (path, key)), problem
    return None


def parsed_data_problem(value: Any, root: str = "data") -> tuple[str, str] | None:
    """:func:`data_problem` of ``value`` made by a JSON parser that refuses NaN and the
    infinities (orjson, PostgreSQL's JSONB), with strings, integers, booleans and None added
    by code (:attr:`connectors.base.Connector.parsed_data`): the same answer, for a fifth of
    the CPU on a Signalen melding (2.1 against 7.0 us, ``time.process_time``, loaded machine).

    Such a value holds only plain JSON types and finite floats, so orjson's encoder (C)
    checks the rest of the rule: it refuses lone surrogates, integers outside the same 64-bit
    range, non-string keys and nesting past 254 levels. What it writes is then searched for
    the two things it lets through: U+0000 (written ``\\u0000``) and nesting past
    :data:`MAX_DATA_DEPTH`, which needs at least that many ``{`` or ``[``. Anything found or
    refused (a false alarm too: the text ``\\u0000``, brackets in strings) goes to
    :func:`data_problem` for the verdict and its path."""
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return data_problem(value, root)
    if b"\\u0000" in raw or raw.count(b"{") + raw.count(b"[") > MAX_DATA_DEPTH:
        return data_problem(value, root)
    return None


def _short(value: int) -> str:
    text = str(value) if value.bit_length() < 300 else f"of {value.bit_length()} bits"
    return text if len(text) <= 40 else text[:37] + "..."


def _render(root: str, path: _Path) -> str:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    parts = [root]
    for key in reversed(keys):
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _NAME.fullmatch(key):
            parts.append(f".{key}")
        else:
            shown = json.dumps(key if len(key) <= 40 else key[:37] + "...", ensure_ascii=True)
            parts.append(f"[{shown}]")
    return "".join(parts)
