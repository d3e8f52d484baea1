"""The CloudEvents extension value rule: a string, a 32-bit integer or a boolean; a string
without control characters or lone surrogates, so it can be stored and sent.

Checked by pydantic-core (:class:`_ExtensionValueSchema`), worded by :func:`extension_problem`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from schemas.limits import text_problem

__all__ = ["ExtensionValue", "extension_problem"]


def extension_problem(value: Any) -> str:
    """Why ``value`` is no extension value (the one owner of that rule's messages); asked only
    for a value :class:`_ExtensionValueSchema` refused."""
    if isinstance(value, bool):
        return "extension values must be a string, integer or boolean"  # not reached: bools pass
    if isinstance(value, int):
        return "extension integers must fit in 32 bits (CloudEvents Integer)"
    if isinstance(value, str):
        if _CONTROL.search(value):
            return "must not contain control characters"
        return text_problem(value) or "is not valid text"
    kind = "null" if value is None else type(value).__name__
    return f"extension values must be a string, integer or boolean, not {kind}"


class _ExtensionValueSchema:
    """An extension value checked in pydantic-core: a string matching :data:`_EXTENSION_TEXT`,
    a boolean, or an integer in the 32-bit range, tried in that order (strict, so no value is
    two of them; the string first, as nearly every extension value is one). A refused value is
    one ``extension_value`` error, worded by :func:`extension_problem`
    (:func:`schemas.envelope.validate_event` asks it).

    Why not a Python validator: every event the hub publishes carries ``traceparent``, so every
    decode of a Kafka record (and every publish whose events bring one) checked an extension,
    and a validator written in Python cost a call from pydantic-core per value. What carrying
    ``traceparent`` adds, process CPU per event (``benchmarks.carry``, old/new alternating in
    both orders, medians): ``from_kafka_record`` 1.28 -> 0.52 us, ``parse_batch`` 1.28 -> 0.45 us."""

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.str_schema(strict=True, pattern=_EXTENSION_TEXT),
                core_schema.bool_schema(strict=True),
                core_schema.int_schema(strict=True, ge=-(2**31), le=2**31 - 1),
            ],
            mode="left_to_right",
            custom_error_type="extension_value",
            custom_error_message="extension values must be a string without control characters, "
            "a 32-bit integer or a boolean",
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "boolean"}, {"type": "integer"}, {"type": "string"}]}


#: An extension's text: no control characters (U+0000 among them). Matching it makes
#: pydantic-core take the text as UTF-8, which refuses a lone surrogate (``string_unicode``);
#: tests/unit/test_extension_values.py holds it to that.
_EXTENSION_TEXT = r"^[^\x00-\x1f\x7f-\x9f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
ExtensionValue = Annotated[bool | int | str, _ExtensionValueSchema]
