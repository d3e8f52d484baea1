"""Two municipalities, a supplier and their systems on one hub (issue 12, "Done when").

Each manages only its own koppelingen and subscriptions, a systeem publishes only for its
source, a municipality's subscriber receives its own events (private note included) and
never another's meldingen or private fields; the functioneel-beheerder sees all; the audit
trail holds every change and refusal of the flow, and no secret."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.hub_api import event, eventually, landscape_event, publish
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

SYS_A, SYS_B = "urn:nld:gem-a:systeem:signalen", "urn:nld:gem-b:systeem:signalen"
MELDING = "nl.signalen.melding.aangemaakt.v1"
GEBRUIK = "nl.softwarecatalogus.gebruik.vastgelegd.v1"


async def token(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, str]:
    response = await client.post("/api/v1/tokens", json={"name": body["role"], **body}, headers=auth)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_two_municipalities_and_a_supplier_share_a_hub_and_none_sees_or_changes_anothers(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    beheer_a = await token(client, auth, role="gebruik-beheerder", organisatie="gem-a")
    beheer_b = await token(client, auth, role="gebruik-beheerder", organisatie="gem-b")
    leverancier = await token(client, auth, role="aanbod-beheerder", organisatie="lev-x")
    sys_a = await token(client, beheer_a, role="systeem", organisatie="gem-a", sources=[SYS_A])
    sys_b = await token(client, beheer_b, role="systeem", organisatie="gem-b", sources=[SYS_B])
    sink_a, sink_b = await WebhookSink().start(), await WebhookSink().start()
    try:
        made = []
        for who, sink in ((beheer_a, sink_a), (beheer_b, sink_b)):
            response = await client.post(
                "/api/v1/subscriptions", json={"sink": sink.url, "types": [MELDING, GEBRUIK]}, headers=who
            )
            assert response.status_code == 201, response.text
            made.append(response.json())
        sub_a, sub_b = made
        assert (sub_a["organisatie"], sub_b["organisatie"]) == ("gem-a", "gem-b")
        hub_wide = await client.post(
            "/api/v1/subscriptions", json={"sink": sink_b.url, "organisatie": None}, headers=beheer_b
        )
        assert hub_wide.status_code == 403  # beheer_b's default is its own; explicit null is hub-wide
        # Another municipality's subscription does not exist for it; lists show one's own.
        assert (await client.get(f"/api/v1/subscriptions/{sub_a['id']}", headers=beheer_b)).status_code == 404
        assert (
            await client.delete(f"/api/v1/subscriptions/{sub_a['id']}", headers=beheer_b)
        ).status_code == 404
        listed = (await client.get("/api/v1/subscriptions", headers=beheer_b)).json()["items"]
        assert [s["id"] for s in listed] == [sub_b["id"]]
        every = (await client.get("/api/v1/subscriptions", headers=auth)).json()["items"]
        assert {s["id"] for s in every} == {sub_a["id"], sub_b["id"]}

        gebruik_a = {"id": "g-a", "afnemer": "gem-a", "applicatie": "app-x", "status": "In productie",
                     "interneAantekening": "contract tot 2027"}  # fmt: skip
        melding_a = event(
            "melding-1", 1, source=SYS_A, type=MELDING, data={"naam": "Jan", "adres": "Dorpsstraat 1"}
        )
        gebruik_event = landscape_event("gebruik", "vastgelegd", gebruik_a, source=SYS_A)
        assert (await publish(client, sys_a, gebruik_event, melding_a)).status_code == 202
        refused = await publish(client, sys_b, event("melding-2", 2, source=SYS_A, type=MELDING))
        assert refused.status_code == 403 and SYS_A in refused.json()["detail"]
        melding_b = event("melding-3", 3, source=SYS_B, type=MELDING)
        assert (await publish(client, sys_b, melding_b)).status_code == 202

        app = {"id": "app-x", "naam": "Meldingen", "aanbieder": "lev-x"}
        assert (
            await publish(client, leverancier, landscape_event("applicatie", "vastgelegd", app))
        ).status_code == 202
        no = await publish(
            client, leverancier, landscape_event("gebruik", "vastgelegd", {**gebruik_a, "id": "g-l"})
        )
        assert no.status_code == 403

        delivered_a = await sink_a.wait_for(2)
        [delivered_b] = await sink_b.wait_for(1)
        by_type = {r.json()["type"]: r.json() for r in delivered_a}
        assert by_type[GEBRUIK]["data"]["interneAantekening"] == "contract tot 2027"  # the owner's own note
        assert by_type[MELDING]["organisatie"] == "gem-a" and by_type[GEBRUIK]["organisatie"] == "gem-a"
        assert delivered_b.json()["id"] == melding_b["id"]

        # Absence, proven: once the archive holds every event, gem-b's queue holds one delivery.
        async def archived() -> bool:
            pulled = await client.get(f"/api/v1/subscriptions/{sub_a['id']}/events", headers=auth)
            return len(pulled.json()["items"]) == 2

        await eventually(archived, what="gem-a's events in the archive")
        queue_b = (
            await client.get(f"/api/v1/subscriptions/{sub_b['id']}/deliveries", headers=beheer_b)
        ).json()
        assert [d["eventId"] for d in queue_b["items"]] == [melding_b["id"]]
        assert "Dorpsstraat" not in repr([r.body for r in sink_b.received])
        pulled_b = await client.get(f"/api/v1/subscriptions/{sub_b['id']}/events", headers=beheer_b)
        assert [e["id"] for e in pulled_b.json()["items"]] == [melding_b["id"]]
        stored = (await client.get("/api/v1/gebruik/g-a", headers=beheer_b)).json()
        assert stored["afnemer"] == "gem-a" and "interneAantekening" not in stored

        # Every audit entry the flow produced, oldest first: who did what, with what outcome.
        trail = await client.get("/api/v1/audit", params={"limit": 100}, headers=auth)
        entries = list(reversed(trail.json()["items"]))
        who = [(e["action"], e["outcome"], e["status"], e["actor"]["role"], e["actor"]["organisatie"])
               for e in entries]  # fmt: skip
        assert who == [
            ("POST /api/v1/tokens", "ok", 201, "functioneel-beheerder", None),  # beheer_a
            ("POST /api/v1/tokens", "ok", 201, "functioneel-beheerder", None),  # beheer_b
            ("POST /api/v1/tokens", "ok", 201, "functioneel-beheerder", None),  # leverancier
            ("POST /api/v1/tokens", "ok", 201, "gebruik-beheerder", "gem-a"),  # sys_a
            ("POST /api/v1/tokens", "ok", 201, "gebruik-beheerder", "gem-b"),  # sys_b
            ("POST /api/v1/subscriptions", "ok", 201, "gebruik-beheerder", "gem-a"),
            ("POST /api/v1/subscriptions", "ok", 201, "gebruik-beheerder", "gem-b"),
            ("POST /api/v1/subscriptions", "refused", 403, "gebruik-beheerder", "gem-b"),  # hub-wide
            ("DELETE /api/v1/subscriptions/{subscription_id}", "failed", 404, "gebruik-beheerder", "gem-b"),
            ("POST /api/v1/events", "refused", 403, "systeem", "gem-b"),  # for gem-a's source
            ("POST /api/v1/events", "refused", 403, "aanbod-beheerder", "lev-x"),  # gem-a's gebruik
        ]
        assert entries[8]["target"] == f"/api/v1/subscriptions/{sub_a['id']}"
        # gem-b's beheerder reads its own organisation's entries only; no secret is in the trail
        own_b = (await client.get("/api/v1/audit", headers=beheer_b)).json()["items"]
        assert own_b and {e["actor"]["organisatie"] for e in own_b} == {"gem-b"}
        for secret in (beheer_a, beheer_b, leverancier, sys_a, sys_b, auth):
            assert secret["Authorization"].removeprefix("Bearer ") not in trail.text
        assert sub_a["secret"] not in trail.text
    finally:
        await sink_a.stop()
        await sink_b.stop()
