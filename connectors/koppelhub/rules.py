"""Which events of another hub this hub takes, and how it marks the ones it takes.

The rules of hub-to-hub federation, pure so every one of them is unit-tested:

- Only inbound landscape events (``nl.softwarecatalogus.<type>.vastgelegd|ingetrokken.v1``)
  travel. Derived events (``aangemaakt``/``gewijzigd``/``verwijderd``) never do: each hub
  derives its own from the inbound ones it projects. Other types (``nl.koppelhub.*`` alerts,
  Signalen meldingen, …) stay on the hub where they were published.
- An event that came from this hub is not taken back. A hub is named by its source URN
  (KOPPELHUB_SOURCE_URN, which the pull API answers as ``hub``). Every event a federation
  connector republishes carries the extension attribute ``koppelhubvia``: the hubs it has been
  on before this one, in order, separated by spaces (the hub it was read from appended last).
  An event whose ``koppelhubvia`` names this hub, or whose ``source`` is this hub's own URN or
  one of its connectors' and imports' (``<urn>:…``), is skipped.
- ``source`` and ``id`` stay as they are, so when an event reaches a hub along two paths
  anyway (a mesh), the projector's dedupe on source+id stores it once.

Together: an event crosses each hub at most once and never returns to a hub it was on, so
two hubs that follow each other converge and then go quiet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from schemas.landscape.events import parse_inbound_type

__all__ = ["VIA", "came_from", "relayed", "via"]

#: The extension attribute naming the hubs an event has been on (CloudEvents: [a-z0-9], ≤ 20).
VIA: Final = "koppelhubvia"


def via(event: Mapping[str, Any]) -> list[str]:
    """The hubs ``event`` has been on before, oldest first (empty: it was published where it is)."""
    value = event.get(VIA)
    return value.split() if isinstance(value, str) else []


def came_from(event: Mapping[str, Any], hub: str) -> bool:
    """Whether ``event`` was on ``hub`` before: named in its ``koppelhubvia``, or published by
    the hub itself (its source URN, or a source under it such as its connectors')."""
    source = event.get("source")
    if isinstance(source, str) and (source == hub or source.startswith(hub + ":")):
        return True
    return hub in via(event)


def relayed(event: Mapping[str, Any], *, here: str, there: str) -> dict[str, Any] | None:
    """``event`` read from hub ``there`` as hub ``here`` republishes it (``koppelhubvia`` with
    ``there`` appended), or None when it does not travel (not an inbound landscape event, or
    it came from ``here``)."""
    kind = event.get("type")
    if not isinstance(kind, str) or parse_inbound_type(kind) is None:
        return None
    if came_from(event, here):
        return None
    hops = via(event)
    if not hops or hops[-1] != there:
        hops.append(there)
    return {**event, VIA: " ".join(hops)}
