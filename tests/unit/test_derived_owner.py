"""Derived landscape events carry the extension attribute ``organisatie`` of the organisation
that owns the object (issue 12, "Ownership"): the ``afnemer`` of a gebruik, the ``aanbieder``
of an applicatie, the ``organisatie`` of a koppeling and the organisatie itself; GEMMA objects
(a referentiecomponent) have no owner and carry none, so a municipality subscribes to its own
landscape with a plain filter on ``organisatie``."""

from __future__ import annotations

import itertools
from typing import Any

from hub.adapters.memory import InMemoryProjectionStore
from hub.ports import LoggedEvent
from hub.services.landscape import DerivedEvents
from hub.services.projection import apply_events
from schemas import validate_event

_ids = itertools.count()


def _vastgelegd(objecttype: str, data: dict[str, Any]) -> LoggedEvent:
    n = next(_ids)
    event = validate_event({
        "specversion": "1.0", "id": f"e-{n}", "source": "urn:x", "subject": data["id"],
        "type": f"nl.softwarecatalogus.{objecttype}.vastgelegd.v1", "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json", "data": data,
    })  # fmt: skip
    return LoggedEvent(event, 0, n)


async def test_each_derived_event_carries_the_organisatie_that_owns_its_object() -> None:
    store = InMemoryProjectionStore()
    batch = [
        _vastgelegd("organisatie", {"id": "gem-c", "naam": "Gemeente C", "type": "Gemeente"}),
        _vastgelegd("applicatie", {"id": "app-1", "naam": "Open Zaak", "aanbieder": "lev-x"}),
        _vastgelegd("gebruik", {"id": "g-1", "afnemer": "gem-a", "applicatie": "app-1", "status": "Gepland"}),
        _vastgelegd(
            "koppeling",
            {
                "id": "k-1",
                "applicatieA": "app-1",
                "applicatieB": "app-2",
                "type": "api",
                "organisatie": "gem-b",
            },
        ),
        _vastgelegd("referentiecomponent", {"id": "rc-1", "naam": "Zaakregistratiecomponent"}),
    ]
    await apply_events(store, batch, DerivedEvents("urn:hub", lambda: "https://hub.example"))

    derived = [a.event for a in store.archive if a.event.type.endswith(".aangemaakt.v1")]
    assert {e.type.split(".")[2]: (e.model_extra or {}).get("organisatie") for e in derived} == {
        "organisatie": "gem-c",
        "applicatie": "lev-x",
        "gebruik": "gem-a",
        "koppeling": "gem-b",
        "referentiecomponent": None,
    }


async def test_derived_events_of_one_type_share_no_attributes_of_each_other() -> None:
    """Derived events are copies of one template per type (issue 17): an owned object's
    ``organisatie``, data or subject must not carry over to the next event of that type, and
    each copy is the valid CloudEvent full validation would build from its structured form."""
    store = InMemoryProjectionStore()
    batch = [
        _vastgelegd("applicatie", {"id": "app-1", "naam": "Open Zaak", "aanbieder": "lev-x"}),
        _vastgelegd("applicatie", {"id": "app-2", "naam": "Open Formulieren"}),
        _vastgelegd("applicatie", {"id": "app-3", "naam": "Open Klant", "aanbieder": "lev-y"}),
    ]
    await apply_events(store, batch, DerivedEvents("urn:hub", lambda: "https://hub.example"))

    derived = [a.event for a in store.archive if a.event.type.endswith(".aangemaakt.v1")]
    assert [(e.subject, e.data["naam"], (e.model_extra or {}).get("organisatie")) for e in derived] == [
        ("app-1", "Open Zaak", "lev-x"),
        ("app-2", "Open Formulieren", None),
        ("app-3", "Open Klant", "lev-y"),
    ]
    assert len({e.id for e in derived}) == 3
    for event in derived:
        assert validate_event(event.to_structured()) == event
        assert event.dataref == f"https://hub.example/api/v1/applicaties/{event.subject}"


async def test_a_derived_events_id_is_the_uuid5_of_its_cause_as_it_always_was() -> None:
    """A subscriber dedupes on the derived event's id, and a projection replayed after a crash
    derives the same ids again: the id of one cause must never change (pinned literal:
    ``uuid.uuid5(UUID("6f1c3a52-…"), "urn:x\\ne-0")``, as the projector made it before
    :func:`schemas.uuids.uuid5_text`)."""
    store = InMemoryProjectionStore()
    event = validate_event({
        "specversion": "1.0", "id": "e-0", "source": "urn:x", "subject": "app-1",
        "type": "nl.softwarecatalogus.applicatie.vastgelegd.v1", "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json", "data": {"id": "app-1", "naam": "Open Zaak"},
    })  # fmt: skip
    await apply_events(
        store, [LoggedEvent(event, 0, 0)], DerivedEvents("urn:hub", lambda: "https://hub.example")
    )

    derived = [a.event for a in store.archive if a.event.source == "urn:hub"]
    assert [e.id for e in derived] == ["6573008f-394b-53a1-b9c1-e78fb1af3725"]
