"""The generic ``rest`` write-back sink (issue 13 §2: method, URL template, body mapping)
through the dispatcher's client seam (hub.services.writeback), against a fake REST API on
loopback: a 2xx applies the event and delivers; a 4xx retrying cannot fix ends the delivery
dead at once, saying why; 408/429/5xx are retried; an event that cannot fill the template
never reaches the target; and the config refuses templates whose host an event could set."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from connectors.base import ConnectorContext
from connectors.rest.config import RestConfig
from hub.adapters.egress import egress
from hub.adapters.memory import InMemoryEventLog
from hub.errors import NotFound
from hub.ports import ConnectorRecord
from hub.services.writeback import ConnectorSink, connector_sink
from hub.services.writeback_subscriptions import write_back_selection
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import Disposition
from subscriptions.ssrf import NetworkPolicy

ORG = "gem-a"
HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"
TYPE = "nl.zaken.status-verzoek.v1"


@dataclass
class FakeApi:
    """A JSON API on loopback that records each request and answers ``status`` (and ``body``)."""

    status: int = 200
    body: str = "{}"
    seen: list[tuple[str, str, Any, str | None]] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(
            (request.method, request.path_qs, json.loads(raw) if raw else None, request.headers.get("X-Bron"))
        )
        return web.Response(status=self.status, text=self.body, content_type="application/json")

    async def start(self) -> FakeApi:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self


class OneConnector:
    def __init__(self, record: ConnectorRecord) -> None:
        self.record = record

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        if connector_id != self.record.id:
            raise NotFound(str(connector_id))
        return self.record


def config(api: FakeApi, **write_back: Any) -> dict[str, Any]:
    return {
        "url": f"{api.url}/zaken",
        "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {"status": "status"}},
        "headers": {"X-Bron": "koppelhub"},
        "auth": {"token": "geheim"},
        "writeBack": {
            "types": [TYPE],
            "method": "PATCH",
            "url": f"{api.url}/api/zaken/{{subject}}/status?door={{data.door}}",
            "body": {"status": "data.state", "toelichting": "data.text", "verzoek": "id"},
            **write_back,
        },
    }


def _record(cfg: dict[str, Any]) -> ConnectorRecord:
    now = datetime.now(UTC)
    return ConnectorRecord(
        id=uuid.uuid4(), kind="rest", organisatie=ORG, config=cfg, schedule_seconds=60, enabled=True,
        checkpoint=None, next_run_at=now, failures=0, last_run_at=None, last_success_at=None,
        last_error=None, last_counts=None, events_published=0, created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = await FakeApi().start()
    yield fake
    assert fake.runner is not None
    await fake.runner.cleanup()


@dataclass
class Sink:
    deliver: Any
    log: InMemoryEventLog


@pytest.fixture
async def sink_for(tmp_path: Path) -> AsyncIterator[Any]:
    opened: list[ConnectorSink] = []

    def context(organisatie: str, scope: str) -> ConnectorContext:
        return ConnectorContext(
            organisatie=organisatie, scope=scope, work_dir=tmp_path,
            egress=egress(NetworkPolicy.parse("127.0.0.1/32")), http_timeout_s=5,
        )  # fmt: skip

    def make(cfg: dict[str, Any]) -> Sink:
        record, log = _record(cfg), InMemoryEventLog()
        sink = ConnectorSink(OneConnector(record), log, context, hub_urn=HUB)  # type: ignore[arg-type]
        opened.append(sink)

        async def deliver(event: dict[str, Any]) -> Any:
            return await sink.deliver(DeliveryTarget(sink=connector_sink(record.id), secrets=()), event, "m1")

        return Sink(deliver, log)

    yield make
    for sink in opened:
        await sink.close()


def verzoek(subject: str | None = "zaak 7/8", **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "urn:partner", "type": TYPE,
        "subject": subject, "organisatie": ORG,
        "data": {"state": "afgehandeld", "text": None, "door": "moon", **data},
    }  # fmt: skip


async def test_an_event_becomes_one_request_with_the_url_template_and_body_mapping(
    api: FakeApi, sink_for: Any
) -> None:
    sink = sink_for(config(api))
    event = verzoek()

    outcome = await sink.deliver(event)

    assert outcome.disposition is Disposition.DELIVERED
    assert api.seen == [
        (
            "PATCH",
            "/api/zaken/zaak%207%2F8/status?door=moon",  # each value one encoded segment
            {"status": "afgehandeld", "verzoek": event["id"]},  # null fields left out
            "koppelhub",
        )
    ]
    assert sink.log.partitions == [[]] * len(sink.log.partitions)  # no outcome event


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_a_refusal_retrying_cannot_fix_ends_dead_at_once_saying_why(
    api: FakeApi, sink_for: Any, status: int
) -> None:
    api.status, api.body = status, '{"detail": "zaak 7/8 is al gesloten"}'

    outcome = await sink_for(config(api)).deliver(verzoek())

    assert outcome.disposition is Disposition.PERMANENT
    assert str(status) in (outcome.error or "") and "al gesloten" in (outcome.error or "")
    assert len(api.seen) == 1


@pytest.mark.parametrize("status", [500, 503, 408])
async def test_a_target_that_is_down_or_busy_is_retried(api: FakeApi, sink_for: Any, status: int) -> None:
    api.status = status
    sink = sink_for(config(api))

    down = await sink.deliver(verzoek())
    api.status = 204
    up = await sink.deliver(verzoek())

    assert (down.disposition, up.disposition) == (Disposition.RETRY, Disposition.DELIVERED)


async def test_an_event_that_cannot_fill_the_template_never_reaches_the_target(
    api: FakeApi, sink_for: Any
) -> None:
    outcome = await sink_for(config(api)).deliver(verzoek(subject=None))

    assert outcome.disposition is Disposition.PERMANENT and "{subject}" in (outcome.error or "")
    assert api.seen == []


async def test_delete_sends_no_body(api: FakeApi, sink_for: Any) -> None:
    outcome = await sink_for(config(api, method="DELETE", body=None)).deliver(verzoek())

    assert outcome.disposition is Disposition.DELIVERED
    assert api.seen == [("DELETE", "/api/zaken/zaak%207%2F8/status?door=moon", None, "koppelhub")]


@pytest.mark.parametrize(
    ("write_back", "says"),
    [
        ({"url": "http://{data.host}/api/x"}, "scheme and host must be literal"),
        ({"url": "https://{subject}.example/x"}, "scheme and host must be literal"),
        ({"url": "ftp://x.example/{subject}"}, "http(s)"),
        ({"url": "https://x.example/{data..x}"}, "JMESPath"),
        ({"url": "https://x.example/{subject"}, "not a URL template"),
        ({"body": {"status": "data.[state"}}, "JMESPath"),
        ({"types": None}, "types"),
        ({"method": "DELETE"}, "DELETE sends no body"),
    ],
)
def test_a_config_an_event_could_misdirect_or_that_cannot_work_is_refused(
    api: FakeApi, write_back: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        RestConfig.model_validate(config(api, **write_back))
    assert says in str(refused.value)


def test_the_write_back_subscription_selects_the_named_types_of_the_connectors_organisatie(
    api: FakeApi,
) -> None:
    selection = write_back_selection("rest", ORG, config(api))

    assert selection is not None
    assert selection["types"] == [TYPE]
    assert selection["filters"] == [{"exact": {"organisatie": ORG}}]
    assert (
        write_back_selection("rest", ORG, {k: v for k, v in config(api).items() if k != "writeBack"}) is None
    )
