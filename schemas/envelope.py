"""The CloudEvents 1.0 envelope under the NL GOV profile (Logius v1.1).

Enforced beyond the spec: attribute names ``^[a-z0-9]{1,20}$``; ``type`` reverse-DNS
(2+ dot-separated segments of lowercase letters, digits, inner hyphens); ``source`` and
``dataref`` RFC 3986 URI-references, ``dataschema`` absolute; ``time`` RFC 3339 with a
timezone (stored in UTC, written with ``Z``); strings non-empty without control
characters; extension values a string, 32-bit integer or boolean. ``data`` is any JSON
value that every later stage can store and send (:func:`schemas.limits.data_problem`:
nesting depth, 64-bit integers, no U+0000, no lone surrogates, finite numbers), refused
with the path of the offending value; binary data is ``data_base64`` (empty = no data).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.extension_values import ExtensionValue, extension_problem
from schemas.jsonbytes import dumps_compact
from schemas.limits import data_problem
from schemas.uris import find_uri_problem, known_uri_problem
from schemas.uris import show as _show

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "CloudEvent",
    "EnvelopeError",
    "EventTooLarge",
    "Problem",
    "format_time",
    "is_json_content_type",
    "validate_event",
]

DEFAULT_MAX_EVENT_BYTES = 1_048_576

_NAME_RE = re.compile(r"[a-z0-9]{1,20}")
_TYPE_PATTERN = r"^[a-z0-9]+(?:-+[a-z0-9]+)*(?:\.[a-z0-9]+(?:-+[a-z0-9]+)*)+$"
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_JSON_CT_RE = re.compile(r"\s*[a-z0-9!#$&^_.+-]+/(?:json|[a-z0-9!#$&^_.+-]+\+json)\s*(?:;.*)?", re.IGNORECASE)
_ATTRIBUTE_FIELDS = (
    "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
    "dataschema", "dataref", "sequence", "partitionkey",
)  # fmt: skip
#: Names that need no name check: the attributes and, among extensions, the distributed-tracing
#: extension's (valid names), which every event the hub publishes carries: checked each time,
#: it took an event off the one-set-comparison path (a regex per name, in every decode).
_KNOWN = frozenset({*_ATTRIBUTE_FIELDS, "data", "data_base64", "traceparent", "tracestate"})
_PRECHECKED: dict[str, bool] = {"prechecked": True}
_TYPE_HINT = (
    "use two or more dot-separated segments of lowercase letters, digits and hyphens, "
    "e.g. 'nl.softwarecatalogus.gebruik.gewijzigd.v1'"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an event was rejected: batch ``index`` (None for a single event),
    attribute ``field`` (``""`` = the whole event), ``message`` for the publisher."""

    index: int | None
    field: str
    message: str


class EnvelopeError(ValueError):
    """Input is not a valid CloudEvent; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(_describe(p) for p in problems) or "invalid CloudEvent")


class EventTooLarge(EnvelopeError):
    """An event exceeds the size limit (the HTTP API answers 413)."""


def _describe(p: Problem) -> str:
    where = f"event[{p.index}]" if p.index is not None else "event"
    return f"{where}.{p.field}: {p.message}" if p.field else f"{where}: {p.message}"


def _fail(reason: str, field: str = "") -> NoReturn:
    # The reason goes through ctx so braces in user input are never format fields.
    raise PydanticCustomError("cloudevent", "{reason}", {"reason": reason, "field": field})


def _uri_problem(value: str, *, absolute: bool) -> str | None:
    """Why ``value`` is not an RFC 3986 URI(-reference), or None; the answers for values of an
    attribute's length (:data:`MAX_ATTRIBUTE_LENGTH`) are kept (:mod:`schemas.uris`)."""
    if len(value) <= MAX_ATTRIBUTE_LENGTH:
        return known_uri_problem(value, absolute)
    return find_uri_problem(value, absolute)


def format_time(value: datetime) -> str:
    """``time`` as the envelope writes it: RFC 3339, UTC as ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# Checked in pydantic-core (Rust): non-empty, no control characters.
#: Longest id, source, subject, partitionkey and sequence. They identify and order events and are
#: indexed (the dedupe key is ``source`` + ``id``; PostgreSQL refuses an index entry beyond
#: about 2,700 bytes), so a longer one would be accepted and then never stored.
MAX_ATTRIBUTE_LENGTH = 512
_MAX = MAX_ATTRIBUTE_LENGTH

_URI_REF = {"format": "uri-reference"}
_Text = Annotated[str, Field(min_length=1, max_length=_MAX, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]


def _envelope_problems(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Checks pydantic cannot express per field: names and data exclusivity."""
    found = (
        []  # the common case, no extension: one set comparison instead of a look per name
        if raw.keys() <= _KNOWN
        else [
            (name, f"attribute names must be 1-20 lowercase letters or digits, got {_show(name)}")
            for name in raw
            if name not in _KNOWN and not (isinstance(name, str) and _NAME_RE.fullmatch(name))
        ]
    )
    if raw.get("data") is not None and raw.get("data_base64") is not None:
        found.append(("data", "an event carries either data or data_base64, not both"))
    return found


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event under the NL GOV profile; extensions are extra attributes."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        strict=True,
        json_schema_extra={
            "propertyNames": {"pattern": "^(?:[a-z0-9]{1,20}|data_base64)$"},
            "not": {"required": ["data", "data_base64"]},
        },
    )
    __pydantic_extra__: dict[str, ExtensionValue] = Field(init=False)

    specversion: Literal["1.0"]
    id: _Text
    source: Annotated[str, Field(min_length=1, max_length=_MAX, json_schema_extra=_URI_REF)]
    type: Annotated[str, Field(pattern=_TYPE_PATTERN)]
    subject: _Text | None = None
    time: datetime | None = None
    datacontenttype: _Text | None = None
    dataschema: Annotated[str, Field(json_schema_extra={"format": "uri"})] | None = None
    dataref: Annotated[str, Field(json_schema_extra={"format": "uri-reference"})] | None = None
    sequence: _Text | None = None
    partitionkey: _Text | None = None
    data: Any = None
    data_base64: Annotated[str, Field(json_schema_extra={"contentEncoding": "base64"})] | None = None

    @model_validator(mode="before")
    @classmethod
    def _check_envelope(cls, raw: Any, info: ValidationInfo) -> Any:
        # validate_event runs these checks itself, to report all problems at once.
        if isinstance(raw, Mapping) and info.context is not _PRECHECKED:
            found = _envelope_problems(raw)
            if found:
                _fail(found[0][1], found[0][0])
        return raw

    @field_validator("source", "dataref", "dataschema")
    @classmethod
    def _uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            problem = _uri_problem(value, absolute=info.field_name == "dataschema")
            if problem:
                _fail(problem)
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            if not _RFC3339_RE.fullmatch(value):
                _fail(
                    f"{_show(value)} is not an RFC 3339 timestamp with a timezone, "
                    "e.g. '2024-05-01T12:00:00Z' or '2024-05-01T14:00:00+02:00'"
                )
            try:
                value = datetime.fromisoformat(value.upper())
            except ValueError as e:
                _fail(f"{_show(value)} is not a valid date and time: {e}")
        if not isinstance(value, datetime):
            _fail("must be an RFC 3339 timestamp string")
        if value.tzinfo is None or value.utcoffset() is None:
            _fail("must include a timezone (e.g. 'Z' or '+02:00')")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00: before year 1 in UTC (not a ValueError)
            _fail(f"{_show(value.isoformat())} is out of range once in UTC (years 1 to 9999)")

    @field_validator("data")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if value is not None:
            problem = data_problem(value)
            if problem:
                _fail(problem[1], problem[0])
        return value

    @field_validator("data_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                _fail("is not valid base64 (RFC 4648, standard alphabet with padding)")
        return value or None

    @functools.cached_property
    def _cached_context(self) -> dict[str, Any]:
        """The context attributes (time as RFC 3339 text, extensions as given), computed once
        per event: the projector asks every event for :meth:`to_structured` (to archive it) and
        :meth:`attributes` (to match subscriptions), and building this dict was 14 % of its CPU
        (py-spy, benchmarks.projection), half of that for the second time. The event is frozen,
        so the dict stays true; :meth:`model_copy` drops it from a copy with changes (pydantic
        copies ``__dict__``, cached values included). Never handed out: callers get copies."""
        out = {n: v for n in _ATTRIBUTE_FIELDS if (v := getattr(self, n)) is not None}
        if self.time is not None:
            out["time"] = format_time(self.time)
        if self.__pydantic_extra__:
            out.update(self.__pydantic_extra__)
        return out

    def _context(self) -> dict[str, Any]:
        return self._cached_context.copy()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """pydantic's copy, without the cached context when ``update`` changes anything."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            copied.__dict__.pop("_cached_context", None)
        return copied

    def stamp(self, name: str, value: str) -> None:
        """Set extension attribute ``name`` (never a core attribute) to ``value`` in place,
        unless the event already has it.

        Only for an event nobody else has seen yet (the publish call's own, just parsed): a
        ``model_copy`` per event costs several µs on the publish path. Drops the cached context,
        so what was read before the stamp is not what is written after it."""
        extra = self.__pydantic_extra__
        if not extra.get(name):
            extra[name] = value
            self.__dict__.pop("_cached_context", None)

    def attributes(self) -> dict[str, str]:
        """Every context attribute, extensions included, as canonical strings."""
        out = self._context()
        for name, value in (self.__pydantic_extra__ or {}).items():
            if not isinstance(value, str):
                out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    def key(self) -> str | None:
        """The ordering key: the ``partitionkey`` extension, else ``subject``."""
        return self.partitionkey if self.partitionkey is not None else self.subject

    def to_structured(self) -> dict[str, Any]:
        """The JSON-ready structured-mode dict; absent attributes are omitted."""
        out = self._context()
        if self.data is not None:
            out["data"] = self.data
        elif self.data_base64 is not None:
            out["data_base64"] = self.data_base64
        return out

    def to_json_bytes(self) -> bytes:
        """Compact UTF-8 JSON of the structured form (``application/cloudevents+json``)."""
        return dumps_compact(self.to_structured())

    def data_bytes(self, *, json_type: bool | None = None) -> bytes | None:
        """The payload as bytes, as it goes in a binary-mode body or Kafka value.

        ``data_base64`` is decoded; a string under a non-JSON ``datacontenttype`` is
        its UTF-8 text; anything else is JSON-encoded (an absent content type means
        JSON, as in the CloudEvents JSON format). None when there is no data.
        ``json_type``: :func:`is_json_content_type` of the content type, when the caller knows.
        """
        if self.data_base64 is not None:
            return base64.b64decode(self.data_base64)
        if self.data is None:
            return None
        if json_type is None:
            json_type = is_json_content_type(self.datacontenttype)
        if isinstance(self.data, str) and not json_type:
            return self.data.encode()
        return dumps_compact(self.data)


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json``, any ``+json`` suffix, or no content type.

    Asked for every event written to or read from the log, about a handful of distinct
    values: the answers for values of an attribute's length are kept."""
    if content_type is None:
        return True
    if len(content_type) <= MAX_ATTRIBUTE_LENGTH:
        return _known_json_content_type(content_type)
    return _JSON_CT_RE.fullmatch(content_type) is not None


@functools.lru_cache(maxsize=256)
def _known_json_content_type(content_type: str) -> bool:
    return _JSON_CT_RE.fullmatch(content_type) is not None


_MESSAGES = {
    "missing": "required attribute is missing",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "literal_error": "must be '1.0' (this hub accepts CloudEvents 1.0)",
    "string_unicode": "contains a lone UTF-16 surrogate, which is not valid Unicode",
}


def _translate(exc: ValidationError, index: int | None) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        loc = err["loc"]
        # A check may name a path deeper than its field (``data.a[3]``) through ctx.
        field = str(ctx.get("field") or (loc[0] if loc else ""))
        if err["type"] == "cloudevent":
            message = str(ctx["reason"])
        elif err["type"] == "extension_value":
            message = extension_problem(err["input"])
        elif err["type"] == "string_pattern_mismatch":
            message = (
                f"{_show(err['input'])} is not a reverse-DNS event type: {_TYPE_HINT}"
                if field == "type"
                else "must not contain control characters"
            )
        else:
            message = _MESSAGES.get(err["type"], err["msg"])
        problems.append(Problem(index, field, message))
    return problems


def validate_event(raw: Mapping[str, Any], *, index: int | None = None) -> CloudEvent:
    """Validate one event given as a mapping, reporting every problem at once.

    Raises EnvelopeError whose problems carry ``index`` (pass the batch position).
    """
    found = _envelope_problems(raw)
    problems = [Problem(index, field, message) for field, message in found]
    if found:
        # Drop what was already reported so validation can report everything else.
        drop = {field if field != "data" else "data_base64" for field, _ in found}
        raw = {k: v for k, v in raw.items() if k not in drop}
    try:
        event = CloudEvent.model_validate(raw, context=_PRECHECKED)
    except ValidationError as e:
        problems += _translate(e, index)
    if problems:
        raise EnvelopeError(problems)
    return event
