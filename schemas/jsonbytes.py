"""Compact JSON bytes as the standard library writes them, at orjson's speed where they agree.

The envelope's encoder (``json`` with ``separators=(",", ":")``, ``ensure_ascii=False``,
``allow_nan=False``) was a third of a Signalen sync's CPU. orjson writes the same text for
plain JSON data (str-keyed dicts, lists, tuples, strings, 64-bit integers, finite floats,
booleans, null; the same escapes, UTF-8 as it is), and these functions check where it could
differ, so the bytes stay those of the standard library and every stored fingerprint, body
and signature stays valid:

- what orjson refuses (integers beyond 64 bits, non-string keys, subclasses, datetimes,
  dataclasses, lone surrogates, nesting deeper than 255, cycles): the standard library
  decides, and writes or raises what it always did;
- NaN and the infinities, which orjson writes as ``null`` (the standard library raises), any
  value that is not a plain JSON type (orjson writes a UUID or an Enum; the standard library
  raises), and a float outside ``[1e-4, 1e16)`` (other than 0), where Python's ``repr`` turns
  to exponent form and orjson's form differs (``1e-7`` against ``1e-07``, ``0.000015``
  against ``1.5e-05``): found by :func:`orjson_agrees`, then the standard library decides.

:func:`dumps_parsed` is :func:`dumps_compact` for data a JSON parser made (a page of a source,
a JSONB column), where NaN, the infinities and non-JSON types cannot occur: there only the
floats can differ, and a look at orjson's output finds those (:func:`number_differs`), so the
walk of every container is skipped.

:func:`loads_strict` and :func:`json_size` are the other direction and the size limit of
incoming event JSON (:mod:`schemas.envelope`, :mod:`schemas.bindings`, the connectors).
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import orjson

from schemas.limits import MAX_DATA_DEPTH

__all__ = ["dumps_compact", "dumps_parsed", "json_size", "loads_strict", "number_differs", "orjson_agrees"]

# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: Types orjson would write its own way instead of refusing: left to ``default``, which refuses.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SCALARS = frozenset({str, int, bool, type(None)})

#: Where orjson may have written an exponent (``1e-7``); most hits are text or ids, which
#: :func:`number_differs` tells apart. A literal-first pattern: a tenth of the cost of one that
#: starts with a character class (or an alternation).
_EXPONENT = re.compile(rb"e-?[0-9]")
_DIGITS = frozenset(b"0123456789.")


def _opens_number(raw: bytes, i: int) -> bool:
    """True when ``raw[i + 1]`` starts a JSON value: a minus sign allowed, then ``:``, ``[``,
    ``,`` or the start of the text."""
    if i >= 0 and raw[i] == 0x2D:  # "-"
        i -= 1
    return i < 0 or raw[i] in b":[,"


def number_differs(raw: bytes) -> bool:
    """True when orjson's output ``raw`` may hold a float that ``repr`` writes otherwise: a
    number in exponent form (``1e-7`` against ``1e-07``), or one that starts ``0.0000``
    (``0.000015`` against ``1.5e-05``). Only for data a JSON parser made (no NaN, no non-JSON
    types: :func:`orjson_agrees` checks those); a cheap look at the output, not a walk."""
    for hit in _EXPONENT.finditer(raw):
        i = hit.start() - 1
        if i < 0 or raw[i] not in _DIGITS:
            continue
        while i >= 0 and raw[i] in _DIGITS:
            i -= 1
        if _opens_number(raw, i):
            return True
    at = raw.find(b"0.0000")
    while at >= 0:
        if _opens_number(raw, at - 1):
            return True
        at = raw.find(b"0.0000", at + 1)
    return False


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def orjson_agrees(value: Any) -> bool:
    """True when ``value`` holds only plain JSON types, and floats that ``repr`` writes in
    positional form (0, or a magnitude in ``[1e-4, 1e16)``: orjson writes those the same way;
    NaN and the infinities fail the range too). One ``set(map(type, ...))`` per container (C
    speed); items are looked at one by one only in a container that holds a float, a container
    or something else. ``value`` must be free of cycles (orjson refused those first)."""
    stack: list[Any] = [(value,)]
    while stack:
        node = stack.pop()
        items = node.values() if type(node) is dict else node
        if set(map(type, items)) <= _SCALARS:
            continue
        for item in items:
            kind = type(item)
            if kind is dict or kind is list or kind is tuple:
                stack.append(item)
            elif kind is float:
                if not 1e-4 <= abs(item) < 1e16 and item != 0.0:
                    return False
            elif kind not in _SCALARS:
                return False
    return True


def dumps_compact(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` as
    UTF-8 bytes, with the same result or exception for every input (see the module)."""
    try:
        raw = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        return _ENCODER.encode(value).encode()
    if not orjson_agrees(value):
        return _ENCODER.encode(value).encode()
    return raw


def dumps_parsed(value: Any) -> bytes:
    """:func:`dumps_compact` of ``value`` made by a JSON parser that refuses NaN and the
    infinities (orjson, PostgreSQL's JSONB; not the stdlib's ``json.loads``), with strings,
    integers, booleans and None added by code: the same bytes, 3.9 against 6.7 us for a melding
    of the Signalen fake (whose coordinates made :func:`orjson_agrees` walk every item).

    Such a value holds only plain JSON types and finite floats, so the only difference left
    is a float's form, which :func:`number_differs` finds in orjson's output; then, as for
    what orjson refuses (integers beyond 64 bits from a JSONB column), the standard library
    writes it. For anything else use :func:`dumps_compact`."""
    try:
        raw = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:
        return _ENCODER.encode(value).encode()
    if number_differs(raw):
        return _ENCODER.encode(value).encode()
    return raw


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads/json.dumps with options build a new coder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def loads_strict(body: bytes) -> Any:
    """Decode JSON text, which must be UTF-8 (RFC 8259); NaN and Infinity are refused.

    Every failure is a ValueError, nesting too deep for the parser's recursion included.
    (The standard library parser, not orjson: orjson turns integers beyond 64 bits into
    floats silently, so such a value could not be refused with its path.)"""
    try:
        return _DECODER.decode(body.decode())
    except RecursionError as e:
        raise ValueError(f"nests too deep to parse (event data may nest {MAX_DATA_DEPTH} levels)") from e


def json_size(value: Any) -> int:
    """Bytes of the compact JSON form of decoded input, for the size limit. Tolerant: NaN,
    Infinity and lone surrogates are counted here and refused by validation afterwards.

    orjson first (a seventh of the standard library's time; it was a tenth of a batch
    publish's CPU). It writes the same bytes but for one float form (``1e-7`` where the
    standard library writes ``1e-07``), a byte less per such number. What it refuses (an
    integer beyond 64 bits, a lone surrogate, nesting past 254 levels) is measured by the
    standard library, as before."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        pass
    try:
        return len(_SIZE_ENCODER.encode(value).encode("utf-8", "surrogatepass"))
    except RecursionError as e:
        raise ValueError("JSON nests too deep to measure") from e
