"""Whose a source is: the one rule behind publish's source check
(:func:`hub.api.ownership.check_publish`) and the sources a systeem token may register
(:class:`hub.services.tokens.TokenService`).

A source belongs to an organisation when

- a systeem token of that organisation registers it (a value or prefix of its ``sources``), or
- it is written in the NL GOV CloudEvents form that names the organisation (DOMAIN.md: "a URN
  with the OIN of the organisation", ``urn:nld:oin:<OIN>:systeem:<name>``, and
  ``urn:nld:kvknr:<kvk>…`` for non-government parties) with the ``oin`` or ``kvkNummer`` of an
  organisatie the landscape knows: no token need be registered for it first.

Another organisation's principal may not publish under it: the projector drops an event whose
source and id it has seen, so whoever publishes first under a source can take the next ids of
the system that owns it. A principal of every organisation (the admin token, a
functioneel-beheerder) is bound by none of this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hub.ports import LandscapeReader, StoredObject

__all__ = ["NUMBERED", "SourceOwner", "numbered_sources", "organisation_sources"]

#: The organisatie fields that name it in a source, and the URN namespace of each (NL GOV).
NUMBERED = (("oin", "urn:nld:oin:", "OIN"), ("kvkNummer", "urn:nld:kvknr:", "KvK number"))
#: Organisaties read per page when the numbers are read.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class SourceOwner:
    """``prefix`` (the source and what lies under it: :func:`hub.services.access.source_under`)
    is ``organisatie``'s; ``why`` says so in a message."""

    prefix: str
    organisatie: str
    why: str


def numbered_sources(organisaties: Iterable[StoredObject]) -> list[SourceOwner]:
    """The source prefixes the ``oin`` and ``kvkNummer`` of these organisaties name."""
    owners = []
    for organisatie in organisaties:
        for field, namespace, label in NUMBERED:
            number = organisatie.state.get(field)
            if isinstance(number, str) and number:
                why = f"names the {label} of organisation {organisatie.id!r}"
                owners.append(SourceOwner(namespace + number, organisatie.id, why))
    return owners


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
