"""Whose a source is: the one rule behind publish's source check
(:func:`hub.api.ownership.check_publish`) and the sources a systeem token may register
(:class:`hub.services.tokens.TokenService`).

A source belongs to an organisation when

- a systeem token of that organisation registers it (a value or prefix of its ``sources``), or
- it is written in the NL GOV CloudEvents form that names the organisation (DOMAIN.md: "a URN
  with the OIN of the organisation", ``urn:nld:oin:<OIN>:systeem:<name>``, and
  ``urn:nld:kvknr:<kvk>…`` for non-government parties) with the ``oin`` or ``kvkNummer`` of an
  organisatie the landscape knows: no token need be registered for it first. A number that two
  organisaties give is neither's alone: both are refused under it (fail closed) until a
  hub-wide principal corrects the data, so no organisation takes another's sources by giving
  its number.

Another organisation's principal may not publish under it: the projector drops an event whose
source and id it has seen, so whoever publishes first under a source can take the next ids of
the system that owns it. A principal of every organisation (the admin token, a
functioneel-beheerder) is bound by none of this.

Sources are compared in a canonical form (:func:`canonical_source`), so that another spelling
of the same URN or URL (``URN:NLD:OIN:…``, ``%30`` for ``0``, a ``?=`` or ``#`` part) is no way
round the rule.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from hub.ports import LandscapeReader, StoredObject

__all__ = [
    "NUMBERED",
    "SourceIndex",
    "SourceOwner",
    "canonical_source",
    "number_sources",
    "numbered_sources",
    "organisation_sources",
    "read_numbers",
]

#: The organisatie fields that name it in a source, the URN namespace of each (NL GOV), and its name.
NUMBERED = (("oin", "urn:nld:oin:", "OIN"), ("kvkNummer", "urn:nld:kvknr:", "KvK number"))
#: Organisaties read per page when the numbers are read.
_PAGE = 1000
_SEPARATORS = frozenset(":/")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class SourceOwner:
    """``prefix`` (the source and what lies under it: :func:`hub.services.access.source_under`)
    is ``organisatie``'s; ``why`` says so in a message; ``numbered``: by an organisatie's
    number (else by a systeem token's registration)."""

    prefix: str
    organisatie: str
    why: str
    numbered: bool = False


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0).upper()


@functools.lru_cache(maxsize=4096)
def canonical_source(source: str) -> str:
    """The form every spelling of one source shares, for telling whose it is (never stored or
    sent on): percent-encoded unreserved characters decoded (RFC 3986 §6.2.2.2); a URN
    (``urn:`` in any case) lower-cased whole and cut at its r-, q- or f-component (``?``, ``#``:
    RFC 8141 §3 leaves them out of a URN's identity; its scheme and namespace are
    case-insensitive, and the hub compares the rest so too, failing closed); any other URI with
    its scheme and host lower-cased and without its fragment. Cached: a publisher's sources
    repeat."""
    text = _PERCENT.sub(_decode_unreserved, source.strip())
    if text[:4].lower() == "urn:":
        return re.split(r"[?#]", text, maxsplit=1)[0].lower()
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme:
        return text
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def _prefixes(source: str) -> Iterator[str]:
    """Every prefix a registration may be that covers ``source`` (as ``source_under`` says): the
    source itself, and each part before a ``:`` or ``/``, with and without that separator."""
    yield source
    for index, char in enumerate(source):
        if char in _SEPARATORS:
            yield source[:index]
            yield source[: index + 1]


@dataclass(frozen=True)
class SourceIndex:
    """The owned prefixes, canonical, for a lookup per event that does not grow with their
    number (one dict lookup per ``:`` or ``/`` of the source)."""

    owners: tuple[SourceOwner, ...] = ()
    _by_prefix: Mapping[str, tuple[SourceOwner, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, owners: Iterable[SourceOwner]) -> SourceIndex:
        listed = tuple(owners)
        grouped: dict[str, list[SourceOwner]] = defaultdict(list)
        for owner in listed:
            grouped[canonical_source(owner.prefix)].append(owner)
        return cls(listed, {prefix: tuple(found) for prefix, found in grouped.items()})

    def owners_of(self, source: str) -> Iterator[SourceOwner]:
        """The owners of every prefix that covers ``source``."""
        by_prefix = self._by_prefix
        if not by_prefix:
            return
        for prefix in _prefixes(canonical_source(source)):
            yield from by_prefix.get(prefix, ())

    def taken_numbers(
        self, organisatie: object, data: Mapping[str, object]
    ) -> Iterator[tuple[str, str, str, SourceOwner]]:
        """``(field, source, label, holder)`` for each number organisatie ``organisatie``'s
        ``data`` gives (:func:`number_sources`) that another organisatie has: a number names one
        organisation's sources, so none may give another's (publish and imports alike)."""
        for number_field, source, label in number_sources(data):
            holders = (o for o in self.owners_of(source) if o.numbered and o.organisatie != organisatie)
            if (holder := next(holders, None)) is not None:
                yield number_field, source, label, holder

    def overlapping(self, source: str) -> Iterator[SourceOwner]:
        """The owners of every prefix that covers ``source`` or lies under it (for a
        registration: ``urn:nld:oin`` overlaps every OIN's source)."""
        yield from self.owners_of(source)
        wide = canonical_source(source)
        for prefix, found in self._by_prefix.items():
            if prefix != wide and any(p == wide for p in _prefixes(prefix)):
                yield from found


def number_sources(data: Mapping[str, object]) -> list[tuple[str, str, str]]:
    """``(field, source, label)`` for each number an organisatie's ``data`` gives: the source
    prefix it names (``urn:nld:oin:<oin>``), and the field and its name for messages."""
    return [
        (number_field, namespace + value, label)
        for number_field, namespace, label in NUMBERED
        if isinstance(value := data.get(number_field), str) and value
    ]


def numbered_sources(organisaties: Iterable[StoredObject]) -> list[SourceOwner]:
    """The source prefixes the ``oin`` and ``kvkNummer`` of these organisaties name."""
    return [
        SourceOwner(source, o.id, f"names the {label} of organisation {o.id!r}", numbered=True)
        for o in organisaties
        for _, source, label in number_sources(o.state)
    ]


async def organisation_sources(landscape: LandscapeReader) -> list[SourceOwner]:
    """:func:`numbered_sources` of every organisatie the landscape holds (read page by page)."""
    owners: list[SourceOwner] = []
    after: str | None = None
    while True:
        page = await landscape.list("organisatie", {}, after=after, limit=_PAGE)
        owners += numbered_sources(page.items)
        if page.next_cursor is None:
            return owners
        after = page.next_cursor


def read_numbers(landscape: LandscapeReader) -> Callable[[], Awaitable[SourceIndex]]:
    """The organisaties' numbers as owned sources, read afresh at each call (for a connector
    run or an import, which asks once per batch that has organisaties with numbers)."""

    async def read() -> SourceIndex:
        return SourceIndex.of(await organisation_sources(landscape))

    return read
