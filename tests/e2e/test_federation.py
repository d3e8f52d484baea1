"""Two hubs that follow each other (issue 14 part 3): each runs a ``koppelhub`` connector on the
other's pull API. Both hubs are whole ``HubProcess``es in this test process, each with its own
database, topics and source URN, on the session's embedded broker and PostgreSQL; the
connectors reach the other hub's API on loopback through the real guarded egress.

Asserted: each hub's landscape after every sync, the exact events each run publishes, no event
twice in either hub's archive, nothing taken back by the hub it came from, and quiet once the
hubs agree, proven with a marker event that crosses exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from hub.adapters.postgres.engine import libpq_url
from hub.bootstrap import HubProcess
from hub.embedded import Infrastructure
from hub.settings import ConnectorSettings, KafkaSettings, Settings
from tests.conftest import TEMPLATE_DB, database_url_for
from tests.support.hub_api import eventually, landscape_event, publish, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

URN_A = "urn:nld:oin:00000000000000000001:systeem:koppelhub"
URN_B = "urn:nld:oin:00000000000000000002:systeem:koppelhub"
ORG = "org-regio"
INBOUND = ("vastgelegd", "ingetrokken")


@dataclass
class Hub:
    name: str
    process: HubProcess
    http: httpx.AsyncClient
    auth: dict[str, str]
    subscription: str = ""
    connector: str = ""
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.api_port}"

    async def applicaties(self) -> dict[str, str]:
        response = await self.http.get("/api/v1/applicaties", params={"limit": 500}, headers=self.auth)
        assert response.status_code == 200, response.text
        return {a["id"]: a["naam"] for a in response.json()["items"]}

    async def archive(self) -> list[dict[str, Any]]:
        """Every event this hub archived, through its own pull API."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"limit": "1000", **({"after": after} if after else {})}
            url = f"/api/v1/subscriptions/{self.subscription}/events"
            page = (await self.http.get(url, params=params, headers=self.auth)).json()
            found += page["items"]
            after = page["next"]
            if not page["more"]:
                return found

    async def inbound(self) -> list[tuple[str, str]]:
        return [(e["source"], e["id"]) for e in await self.archive() if e["type"].split(".")[3] in INBOUND]

    async def sync(self) -> dict[str, Any]:
        """The connector's next run, to its end; its counts. The first is the one a new enabled
        connector gets at once; each later one is asked for with ``POST …/run``."""
        self.runs += 1
        if self.runs > 1:
            response = await self.http.post(f"/api/v1/connectors/{self.connector}/run", headers=self.auth)
            assert response.status_code == 202, response.text
        finished: list[dict[str, Any]] = []

        async def done() -> bool:
            nonlocal finished
            finished = [r for r in await self._runs() if r["finishedAt"]]
            return len(finished) >= self.runs

        await eventually(done, what=f"run {self.runs} of {self.name}'s connector")
        assert len(finished) == self.runs, finished
        run = finished[0]  # newest first
        assert run["status"] == "succeeded", run
        return dict(run["counts"])

    async def _runs(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"/api/v1/connectors/{self.connector}/runs", headers=self.auth)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The connectors may reach the other hub on loopback."""
    return settings.model_copy(update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"])})


@pytest.fixture
def second_database(infra: Infrastructure) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield database_url_for(infra.database_url, name)
    with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _hub_settings(settings: Settings, urn: str, database_url: str, tag: str) -> Settings:
    kafka: KafkaSettings = settings.kafka.model_copy(
        update={
            "topic": f"test.{tag}.events",
            "dlq_topic": f"test.{tag}.events.dlq",
            "consumer_group": f"test-{tag}",
        }
    )
    return settings.model_copy(
        update={
            "source_urn": urn,
            "database_url": database_url,
            "data_dir": settings.data_dir / tag,
            "kafka": kafka,
            "connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"], poll_seconds=0.2),
        }
    )


@pytest.fixture
async def hubs(
    settings: Settings, second_database: str, auth: dict[str, str], sink: WebhookSink
) -> AsyncIterator[tuple[Hub, Hub]]:
    tag = uuid.uuid4().hex[:8]
    both: list[Hub] = []
    try:
        for name, urn, db in (("A", URN_A, settings.database_url), ("B", URN_B, second_database)):
            assert db is not None and settings.kafka.bootstrap
            s = _hub_settings(settings, urn, db, f"{tag}{name.lower()}")
            s.data_dir.mkdir(parents=True, exist_ok=True)
            process = HubProcess(s, settings.kafka.bootstrap, db)
            await process.start()
            await process.wait_started()
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.api_port}", timeout=30)
            hub = Hub(name, process, http, auth)
            # Everything this hub archives, so the test sees derived events too.
            hub.subscription = (await subscribe(http, auth, sink.url))["id"]
            both.append(hub)
        yield both[0], both[1]
    finally:
        for hub in both:
            await hub.http.aclose()
            await hub.process.shutdown(drain_timeout=15)


async def follow(follower: Hub, followed: Hub) -> None:
    """``follower`` follows ``followed`` with a federatie token of the followed hub, which may read
    only the pull feed of the subscription it names (README "Federating a region")."""
    token = {"name": f"hub {follower.name}", "role": "federatie", "organisatie": ORG,
             "sources": [followed.subscription]}  # fmt: skip
    made = await followed.http.post("/api/v1/tokens", json=token, headers=followed.auth)
    assert made.status_code == 201, made.text
    config = {"url": followed.url, "auth": {"token": made.json()["token"]},
              "subscription": followed.subscription}  # fmt: skip
    body = {"kind": "koppelhub", "organisatie": ORG, "config": config, "scheduleSeconds": 3600}
    response = await follower.http.post("/api/v1/connectors", json=body, headers=follower.auth)
    assert response.status_code == 201, response.text
    follower.connector = response.json()["id"]


def app(n: int, naam: str | None = None) -> dict[str, Any]:
    return {"id": f"app-{n}", "naam": naam or f"Applicatie {n}", "aanbieder": "org-leverancier"}


async def projected(hub: Hub, expected: dict[str, str]) -> None:
    async def holds() -> bool:
        return await hub.applicaties() == expected

    await eventually(holds, what=f"hub {hub.name} to hold {expected}")


async def test_two_hubs_that_follow_each_other_converge_take_nothing_back_and_go_quiet(
    hubs: tuple[Hub, Hub],
) -> None:
    a, b = hubs
    on_a = [landscape_event("applicatie", "vastgelegd", app(n)) for n in (1, 2, 3)]
    on_b = [landscape_event("applicatie", "vastgelegd", app(n)) for n in (4, 5)]
    assert (await publish(a.http, a.auth, *on_a)).status_code == 202
    assert (await publish(b.http, b.auth, *on_b)).status_code == 202
    await projected(a, {f"app-{n}": f"Applicatie {n}" for n in (1, 2, 3)})
    await projected(b, {f"app-{n}": f"Applicatie {n}" for n in (4, 5)})
    await follow(b, a)
    await follow(a, b)

    # B takes A's three, A takes B's two; neither takes back what the other took from it.
    assert (await b.sync())["published"] == 3
    assert (await a.sync())["published"] == 2
    assert (await b.sync())["published"] == 0
    assert (await a.sync())["published"] == 0
    everything = {f"app-{n}": f"Applicatie {n}" for n in (1, 2, 3, 4, 5)}
    await projected(a, everything)
    await projected(b, everything)

    # A change on B crosses once: the marker. Then both are quiet again.
    marker = landscape_event("applicatie", "vastgelegd", app(2, "Applicatie 2, bijgewerkt op B"))
    assert (await publish(b.http, b.auth, marker)).status_code == 202
    await projected(b, {**everything, "app-2": "Applicatie 2, bijgewerkt op B"})
    assert (await a.sync())["published"] == 1
    await projected(a, {**everything, "app-2": "Applicatie 2, bijgewerkt op B"})
    assert (await b.sync())["published"] == 0
    assert (await a.sync())["published"] == 0

    # Each hub archived each of the six inbound events exactly once, with its own source and id.
    sent = sorted((e["source"], e["id"]) for e in [*on_a, *on_b, marker])
    for hub in (a, b):
        inbound = await hub.inbound()
        assert sorted(inbound) == sent, hub.name
        assert not [k for k, n in Counter(inbound).items() if n > 1], hub.name
    # Each hub derived its own events: the derived ones carry that hub's source, none copied.
    for hub, urn in ((a, URN_A), (b, URN_B)):
        derived = [e for e in await hub.archive() if e["type"].split(".")[3] not in INBOUND]
        assert derived and {e["source"] for e in derived} == {urn}, hub.name


HUB_WIDE_CONFIGS = {
    "koppelhub": {"url": "http://127.0.0.1:9", "auth": {"token": "t"}, "subscription": str(uuid.uuid4())},
    # publiccode.yml files name any supplier as aanbieder and propose gebruik for any gemeente.
    "publiccode": {"urls": ["http://127.0.0.1:9/publiccode.yml"]},
}


@pytest.mark.parametrize("kind", sorted(HUB_WIDE_CONFIGS))
async def test_only_a_role_for_all_organisations_may_create_or_change_a_hub_wide_connector(
    api_client: httpx.AsyncClient, auth: dict[str, str], kind: str
) -> None:
    made = await api_client.post(
        "/api/v1/tokens",
        json={"name": "beheer", "role": "gebruik-beheerder", "organisatie": ORG},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    beheerder = {"Authorization": f"Bearer {made.json()['token']}"}
    config = HUB_WIDE_CONFIGS[kind]
    body = {"kind": kind, "organisatie": ORG, "config": config, "scheduleSeconds": 5, "enabled": False}

    refused = await api_client.post("/api/v1/connectors", json=body, headers=beheerder)
    created = await api_client.post("/api/v1/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.text
    changed = await api_client.patch(
        f"/api/v1/connectors/{created.json()['id']}",
        json={"scheduleSeconds": 60},
        headers=beheerder,
    )

    for response in (refused, changed):
        assert response.status_code == 403, response.text
        assert "functioneel-beheerder" in response.json()["detail"]
