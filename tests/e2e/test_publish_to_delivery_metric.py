"""``koppelhub_publish_to_delivery_seconds``: from the log accepting an event (its record's
timestamp, archived with the event) to the attempt that delivered it, retries included; one
observation per delivered delivery, none for a failed attempt."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.bootstrap import HubProcess
from tests.support.hub_api import event, eventually, subscribe_in_store
from tests.support.sink import Received, WebhookSink

pytestmark = pytest.mark.e2e


def _samples(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


async def test_the_end_to_end_time_covers_the_retry_and_is_observed_once_per_delivery(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    assert hub.engine is not None
    sink.responder = lambda n, r: 503 if n == 1 else 204  # the first attempt fails: a 0.2 s retry
    await subscribe_in_store(hub.engine, sink.url)
    before = time.monotonic()
    headers = {**auth, "content-type": "application/cloudevents+json"}
    sent = event("e2e-time", 1)
    assert (await client.post("/api/v1/events", content=json.dumps(sent), headers=headers)).status_code == 202

    delivered: list[Received] = await sink.wait_for(1)
    assert json.loads(delivered[0].body)["id"] == sent["id"]
    got: dict[str, float] = {}

    async def recorded() -> bool:  # the sink has it before the dispatcher records its outcome
        got.update(_samples((await client.get("/metrics")).text))
        return got.get("koppelhub_delivery_seconds_count") == 2 and bool(
            got.get("koppelhub_publish_to_delivery_seconds_count")
        )

    await eventually(recorded, what="both attempts recorded")
    elapsed = time.monotonic() - before

    assert got["koppelhub_publish_to_delivery_seconds_count"] == 1  # the failed attempt is not counted
    assert 0.2 <= got["koppelhub_publish_to_delivery_seconds_sum"] <= elapsed  # the retry wait is in it
    assert got["koppelhub_delivery_seconds_count"] == 2  # per attempt, for comparison
