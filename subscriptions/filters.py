"""CloudEvents Subscriptions API filter dialects (CNCF spec, section 3.2.4).

A filter is a JSON object with exactly one dialect key, written exactly as the spec does::

    {"exact": {"type": "nl.softwarecatalogus.gebruik.gewijzigd.v1"}}
    {"prefix": {"type": "nl.softwarecatalogus."}}
    {"suffix": {"subject": "-0001"}}
    {"all": [<filter>, ...]}      # every nested filter holds (at least one)
    {"any": [<filter>, ...]}      # at least one nested filter holds (at least one)
    {"not": <filter>}             # the nested filter does not hold

``exact``/``prefix``/``suffix`` map attribute names to strings; every pair must hold.
Attribute names compare case-insensitively, values case-sensitively, and an attribute
the event does not carry makes the pair false. Matching works on the event's context
attributes (extensions included) as strings; the data is never looked at, so a filter
cannot leak or depend on payload contents.

Anything else (an unknown or optional dialect such as ``sql``, two dialect keys, an
empty ``all``/``any``, a non-string value) is rejected at parse time with a message
naming the dialect; the API turns that into a 400, as the spec requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    field_validator,
)

__all__ = [
    "DIALECTS",
    "AllFilter",
    "AnyFilter",
    "ExactFilter",
    "Filter",
    "NotFilter",
    "PrefixFilter",
    "SuffixFilter",
    "dump_filters",
    "matches_all",
    "normalize_attributes",
    "parse_filters",
]

DIALECTS: tuple[str, ...] = ("exact", "prefix", "suffix", "all", "any", "not")
_SUPPORTED = ", ".join(DIALECTS)


class _FilterBase(BaseModel):
    """Common configuration: immutable, no stray keys, dumps in the spec's JSON shape."""

    # serialize_by_alias: ``not`` is a Python keyword, so the field is ``not_`` with
    # alias "not"; model_dump() must still produce the spec's key for storage.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        serialize_by_alias=True,
        validate_by_alias=True,
        validate_by_name=True,
    )

    dialect: ClassVar[str]

    def _holds(self, attrs: Mapping[str, str]) -> bool:
        """Evaluate against attributes whose names are already lower-cased."""
        raise NotImplementedError


def _attribute_map(dialect: str, value: Any) -> dict[str, str]:
    """Validate an exact/prefix/suffix map with messages that name the dialect."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"filter dialect {dialect!r} takes an object of attribute name to string, "
            f"got {type(value).__name__}"
        )
    if not value:
        raise ValueError(f"filter dialect {dialect!r} needs at least one attribute")
    result: dict[str, str] = {}
    for name, expected in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"filter dialect {dialect!r}: attribute names must be non-empty")
        if not isinstance(expected, str):
            raise ValueError(
                f"filter dialect {dialect!r}: value of attribute {name!r} must be a string, "
                f"got {type(expected).__name__}"
            )
        if not expected:
            # The spec forbids empty values; an empty prefix/suffix would match anything
            # and an empty exact value nothing, neither of which a subscriber means.
            raise ValueError(f"filter dialect {dialect!r}: value of attribute {name!r} is empty")
        result[name] = expected
    return result


class _AttributeFilter(_FilterBase):
    """exact / prefix / suffix: a map of attribute name to string, every pair must hold."""

    # Lower-cased once at construction so matching an event costs no string folding
    # on the filter side.
    _pairs: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    def _attribute_values(self) -> dict[str, str]:
        raise NotImplementedError

    def model_post_init(self, context: Any, /) -> None:
        self._pairs = tuple((name.lower(), value) for name, value in self._attribute_values().items())

    @staticmethod
    def _compare(actual: str, expected: str) -> bool:
        raise NotImplementedError

    def _holds(self, attrs: Mapping[str, str]) -> bool:
        for name, expected in self._pairs:
            actual = attrs.get(name)
            if actual is None or not self._compare(actual, expected):
                return False
        return True


class ExactFilter(_AttributeFilter):
    """``{"exact": {name: value}}``: each attribute equals its value."""

    dialect: ClassVar[str] = "exact"
    exact: dict[str, str]

    @field_validator("exact", mode="before")
    @classmethod
    def _check(cls, value: Any) -> dict[str, str]:
        return _attribute_map("exact", value)

    def _attribute_values(self) -> dict[str, str]:
        return self.exact

    @staticmethod
    def _compare(actual: str, expected: str) -> bool:
        return actual == expected


class PrefixFilter(_AttributeFilter):
    """``{"prefix": {name: value}}``: each attribute starts with its value."""

    dialect: ClassVar[str] = "prefix"
    prefix: dict[str, str]

    @field_validator("prefix", mode="before")
    @classmethod
    def _check(cls, value: Any) -> dict[str, str]:
        return _attribute_map("prefix", value)

    def _attribute_values(self) -> dict[str, str]:
        return self.prefix

    @staticmethod
    def _compare(actual: str, expected: str) -> bool:
        return actual.startswith(expected)


class SuffixFilter(_AttributeFilter):
    """``{"suffix": {name: value}}``: each attribute ends with its value."""

    dialect: ClassVar[str] = "suffix"
    suffix: dict[str, str]

    @field_validator("suffix", mode="before")
    @classmethod
    def _check(cls, value: Any) -> dict[str, str]:
        return _attribute_map("suffix", value)

    def _attribute_values(self) -> dict[str, str]:
        return self.suffix

    @staticmethod
    def _compare(actual: str, expected: str) -> bool:
        return actual.endswith(expected)


def _nested_list(dialect: str, value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError(f"filter dialect {dialect!r} takes an array of filters, got {type(value).__name__}")
    if not value:
        raise ValueError(f"filter dialect {dialect!r} needs at least one nested filter")
    return value


class AllFilter(_FilterBase):
    """``{"all": [...]}``: every nested filter holds."""

    dialect: ClassVar[str] = "all"
    all: list[Filter]

    @field_validator("all", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _nested_list("all", value)

    def _holds(self, attrs: Mapping[str, str]) -> bool:
        return all(f._holds(attrs) for f in self.all)


class AnyFilter(_FilterBase):
    """``{"any": [...]}``: at least one nested filter holds."""

    dialect: ClassVar[str] = "any"
    any: list[Filter]

    @field_validator("any", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _nested_list("any", value)

    def _holds(self, attrs: Mapping[str, str]) -> bool:
        # Methods do not see class attributes, so this is builtins.any, not the field.
        return any(f._holds(attrs) for f in self.any)


class NotFilter(_FilterBase):
    """``{"not": <filter>}``: the nested filter does not hold."""

    dialect: ClassVar[str] = "not"
    not_: Filter = Field(alias="not")

    @field_validator("not_", mode="before")
    @classmethod
    def _one_filter(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            raise ValueError("filter dialect 'not' takes one filter object, not an array")
        return value

    def _holds(self, attrs: Mapping[str, str]) -> bool:
        return not self.not_._holds(attrs)


def _check_filter_shape(value: Any) -> Any:
    """Reject anything that is not an object with exactly one supported dialect key.

    Runs before the tagged union so the error names the problem instead of pydantic's
    generic "unable to extract tag".
    """
    if isinstance(value, _FilterBase):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            f"a filter must be an object with one dialect key ({_SUPPORTED}), got {type(value).__name__}"
        )
    keys = list(value)
    if not keys:
        raise ValueError(f"a filter must have one dialect key ({_SUPPORTED}), got an empty object")
    if len(keys) > 1:
        names = ", ".join(repr(k) for k in keys)
        raise ValueError(f"a filter must have exactly one dialect key, got {len(keys)}: {names}")
    dialect = keys[0]
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported filter dialect {dialect!r}; supported: {_SUPPORTED}")
    return value


def _dialect_of(value: Any) -> str | None:
    if isinstance(value, _FilterBase):
        return value.dialect
    if isinstance(value, Mapping) and len(value) == 1:
        key = next(iter(value))
        return key if isinstance(key, str) else None
    return None


Filter = Annotated[
    Annotated[ExactFilter, Tag("exact")]
    | Annotated[PrefixFilter, Tag("prefix")]
    | Annotated[SuffixFilter, Tag("suffix")]
    | Annotated[AllFilter, Tag("all")]
    | Annotated[AnyFilter, Tag("any")]
    | Annotated[NotFilter, Tag("not")],
    Discriminator(_dialect_of),
    BeforeValidator(_check_filter_shape),
]
"""One filter expression in any supported dialect."""

for _model in (AllFilter, AnyFilter, NotFilter):
    _model.model_rebuild()

_FILTER_LIST: TypeAdapter[list[Filter]] = TypeAdapter(list[Filter], config=ConfigDict(title="filters"))


def parse_filters(raw: list[Any]) -> list[Filter]:
    """Parse the ``filters`` array of a subscription.

    Raises ``pydantic.ValidationError`` (a ``ValueError``) naming the index and dialect
    of the first bad filter; the API answers it with a 400.
    """
    if not isinstance(raw, list):
        raise ValueError(f"filters must be an array, got {type(raw).__name__}")
    return _FILTER_LIST.validate_python(raw)


def dump_filters(filters: Sequence[Filter]) -> list[dict[str, Any]]:
    """Serialize filters back to the spec's JSON shape (for storage and API responses)."""
    dumped: list[dict[str, Any]] = _FILTER_LIST.dump_python(list(filters), mode="json", by_alias=True)
    return dumped


def normalize_attributes(attrs: Mapping[str, str]) -> dict[str, str]:
    """Lower-case attribute names, so names compare case-insensitively."""
    return {name.lower(): value for name, value in attrs.items()}


def matches_all(filters: Sequence[Filter], attrs: Mapping[str, str]) -> bool:
    """True when every filter holds for the event attributes; an empty list matches all.

    ``attrs`` are the CloudEvent context attributes (extensions included, data excluded)
    as strings.
    """
    if not filters:
        return True
    lowered = normalize_attributes(attrs)
    return all(f._holds(lowered) for f in filters)
