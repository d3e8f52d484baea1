"""Write-back to Signalen through the dispatcher's client seam (hub.services.writeback), against
the Signalen fake on loopback: the workflow path, refusals that never reach Signalen, outages
retried, idempotence."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from hub.adapters.egress import egress
from hub.adapters.memory import InMemoryEventLog
from hub.errors import NotFound
from hub.ports import ConnectorRecord
from hub.services.dispatcher import free_slot
from hub.services.writeback import ClientRouter, ConnectorSink, connector_sink
from schemas.bindings import from_kafka_record
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import Disposition
from subscriptions.ssrf import NetworkPolicy
from tests.support.signalen_fake import SignalenFake

ORG = "org-voorbeeldstad"
HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"


class OneConnector:
    """The connector store's ``get``, for one connector (the rest of the port is not used)."""

    def __init__(self, record: ConnectorRecord) -> None:
        self.record = record

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        if connector_id != self.record.id:
            raise NotFound(str(connector_id))
        return self.record


def _record(fake: SignalenFake) -> ConnectorRecord:
    now = datetime.now(UTC)
    return ConnectorRecord(
        id=uuid.uuid4(), kind="signalen", organisatie=ORG,
        config={"url": fake.url, "auth": {"token": fake.token}}, schedule_seconds=60, enabled=True,
        checkpoint=None, next_run_at=now, failures=0, last_run_at=None, last_success_at=None,
        last_error=None, last_counts=None, events_published=0, created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[SignalenFake]:
    f = await SignalenFake().start()
    yield f
    await f.stop()


@pytest.fixture
async def setup(
    fake: SignalenFake, tmp_path: Path
) -> AsyncIterator[tuple[ConnectorSink, InMemoryEventLog, str]]:
    record = _record(fake)
    log = InMemoryEventLog()

    def context(organisatie: str, scope: str) -> ConnectorContext:
        return ConnectorContext(
            organisatie=organisatie,
            scope=scope,
            work_dir=tmp_path,
            egress=egress(NetworkPolicy.parse("127.0.0.1/32")),
            http_timeout_s=5,
        )

    sink = ConnectorSink(OneConnector(record), log, context, hub_urn=HUB)  # type: ignore[arg-type]
    yield sink, log, connector_sink(record.id)
    await sink.close()


def verzoek(melding: int, state: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:nld:oin:00000000000000000001:systeem:moon",
        "type": "nl.signalen.melding.status-verzoek.v1",
        "subject": str(melding),
        "data": {"state": state, "text": text, **extra},
    }


def outcomes(log: InMemoryEventLog) -> list[Any]:
    return [from_kafka_record(r.key, r.value, r.headers) for p in log.partitions for r in p]


async def test_m_to_closure_requested_patches_i_then_closure_requested_without_email(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, log, target = setup
    (melding,) = fake.add(1)
    request = verzoek(melding, "closure requested", "Opgelost door MOON")

    outcome = await sink.deliver(DeliveryTarget(sink=target, secrets=()), request, "m1")

    assert outcome.disposition is Disposition.DELIVERED
    assert [(p.state, p.send_email, p.status) for p in fake.patches] == [
        ("i", False, 200),
        ("closure requested", False, 200),
    ]
    (event,) = outcomes(log)
    assert event.type == "nl.signalen.melding.status-bijgewerkt.v1"
    assert event.subject == str(melding) and (event.model_extra or {})["organisatie"] == ORG
    assert event.data["verzoek"] == request["id"]
    assert (event.data["from"], event.data["to"], event.data["via"]) == ("m", "closure requested", ["i"])


async def test_a_request_the_workflow_forbids_never_reaches_signalen_and_is_geweigerd(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, log, target = setup
    (melding,) = fake.add(1, state="o")

    outcome = await sink.deliver(DeliveryTarget(sink=target, secrets=()), verzoek(melding, "b"), "m1")

    assert fake.patches == []
    assert outcome.disposition is Disposition.PERMANENT and "closed" in (outcome.error or "")
    (event,) = outcomes(log)
    assert event.type == "nl.signalen.melding.status-geweigerd.v1"
    assert event.data["from"] == "o" and event.data["requested"] == "b"


async def test_the_slot_is_freed_once_signalen_answered_and_before_the_outcome_is_published(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, log, target = setup
    (melding,) = fake.add(1)
    freed_after: list[int] = []  # how many PATCHes Signalen had when the slot was freed
    free_slot.set(lambda: freed_after.append(len(fake.patches)))
    published_after: list[list[int]] = []
    publish = log.publish

    async def publishing(events: Any) -> None:
        published_after.append(list(freed_after))
        await publish(events)

    log.publish = publishing  # type: ignore[method-assign]
    outcome = await sink.deliver(
        DeliveryTarget(sink=target, secrets=()), verzoek(melding, "closure requested", "klaar"), "m1"
    )

    assert outcome.disposition is Disposition.DELIVERED
    assert freed_after == [2]  # after both PATCHes (m -> i -> closure requested), once
    assert published_after == [[2]]  # the outcome went out after the slot was freed


async def test_signalen_down_is_retried_and_applied_after_it_recovers(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, log, target = setup
    (melding,) = fake.add(1)
    request = verzoek(melding, "b")
    fake.down = True
    fake.retry_after = 0
    down = await sink.deliver(DeliveryTarget(sink=target, secrets=()), request, "m1")
    fake.down = False
    up = await sink.deliver(DeliveryTarget(sink=target, secrets=()), request, "m1")

    assert down.disposition is Disposition.RETRY
    assert up.disposition is Disposition.DELIVERED
    assert [e.type for e in outcomes(log)] == ["nl.signalen.melding.status-bijgewerkt.v1"]
    assert [p.state for p in fake.patches] == ["b"]


async def test_already_in_the_state_with_the_same_text_is_not_patched_again(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, _, target = setup
    (melding,) = fake.add(1)
    request = verzoek(melding, "b", "bezig")
    await sink.deliver(DeliveryTarget(sink=target, secrets=()), request, "m1")
    again = await sink.deliver(DeliveryTarget(sink=target, secrets=()), request, "m1")

    assert again.disposition is Disposition.DELIVERED
    assert [p.state for p in fake.patches] == ["b"]


async def test_the_router_sends_connector_sinks_to_the_connector_and_others_to_webhooks(
    fake: SignalenFake, setup: tuple[ConnectorSink, InMemoryEventLog, str]
) -> None:
    sink, _, target = setup
    (melding,) = fake.add(1)

    class Webhooks:
        calls = 0

        async def deliver(self, *args: Any, **kwargs: Any) -> Any:
            Webhooks.calls += 1
            raise AssertionError("a connector sink went to the webhook client")

    router = ClientRouter(Webhooks(), sink)
    outcome = await router.deliver(DeliveryTarget(sink=target, secrets=()), verzoek(melding, "i"), "m1")
    assert outcome.disposition is Disposition.DELIVERED and Webhooks.calls == 0
