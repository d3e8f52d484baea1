"""Publish refuses, with a 400 naming the path, what no later stage could store or send; the
events around the refused ones are delivered and the hub stays ready."""

from __future__ import annotations

import json

import httpx
import pytest

from hub.bootstrap import HubProcess
from tests.support.hub_api import event, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

# data as JSON text -> the path the 400 names (None: the body does not even parse).
POISON = {
    "deep-252": ('{"a":' * 252 + "1" + "}" * 252, "data" + ".a" * 64),
    "deep-990": ("[" * 990 + "]" * 990, None),
    "int-2**64": ('{"n": 18446744073709551616}', "data.n"),
    "surrogate": ('{"s": ["ok", "\\ud800"]}', "data.s[1]"),
    "1e999": ('{"x": 1e999}', "data.x"),
    "nul": ('{"a": {"b": "x\\u0000"}}', "data.a.b"),
    "nul-key": ('{"a\\u0000": 1}', 'data["a\\u0000"]'),
}


def requests_for(data_json: str, auth: dict[str, str]) -> dict[str, tuple[dict[str, str], bytes]]:
    """The same poisoned event in the three content modes: headers and body."""
    attrs = event("key-1")
    del attrs["data"]
    one = (json.dumps(attrs)[:-1] + f', "data": {data_json}}}').encode()
    binary = {f"ce-{k}": v for k, v in attrs.items() if k != "datacontenttype"}
    return {
        "structured": ({**auth, "content-type": STRUCTURED}, one),
        "batch": (
            {**auth, "content-type": BATCH},
            b"[" + json.dumps(event("key-1")).encode() + b"," + one + b"]",
        ),
        "binary": ({**auth, **binary, "content-type": "application/json"}, data_json.encode()),
    }


async def test_poison_data_is_a_400_with_its_path_in_every_mode_and_the_good_events_flow(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    assert hub.engine is not None
    await subscribe_in_store(hub.engine, sink.url)
    first = event("key-1", 1)
    assert (
        await client.post("/api/v1/events", json=first, headers={**auth, "content-type": STRUCTURED})
    ).status_code == 202
    for name, (data_json, path) in POISON.items():
        for mode, (headers, body) in requests_for(data_json, auth).items():
            response = await client.post("/api/v1/events", content=body, headers=headers)
            assert response.status_code == 400, (name, mode, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            if path is not None:
                fields = [e["field"] for e in response.json()["errors"]]
                assert fields == [path], (name, mode)
                if mode == "batch":
                    assert response.json()["errors"][0]["index"] == 1
    last = event("key-1", 2)
    assert (
        await client.post("/api/v1/events", json=last, headers={**auth, "content-type": STRUCTURED})
    ).status_code == 202

    delivered = await sink.wait_for(2)
    assert [json.loads(r.body)["id"] for r in delivered] == [first["id"], last["id"]]
    assert (await client.get("/readyz")).status_code == 200


async def test_a_publish_with_1400_extension_attributes_is_a_400_naming_the_cap(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    attrs = event("key-1")
    del attrs["data"], attrs["datacontenttype"]
    headers = {**auth, **{f"ce-{k}": v for k, v in attrs.items()}, **{f"ce-x{i}": "1" for i in range(1400)}}
    response = await client.post("/api/v1/events", content=b"", headers=headers)
    assert response.status_code == 400, response.text
    assert "more than the limit of 32 (KOPPELHUB_MAX_EXTENSION_ATTRIBUTES)" in response.json()["detail"]
    many = {**event("key-1"), **{f"x{i}": "1" for i in range(1400)}}
    response = await client.post("/api/v1/events", json=many, headers={**auth, "content-type": STRUCTURED})
    assert response.status_code == 400, response.text
    assert "KOPPELHUB_MAX_EXTENSION_ATTRIBUTES" in response.json()["detail"]


async def test_a_batch_of_more_events_than_the_cap_is_a_413_that_asks_to_split_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    small = {"specversion": "1.0", "source": "urn:nld:b", "type": "nl.b.t.v1"}
    body = json.dumps([{**small, "id": f"e{i}"} for i in range(10_001)]).encode()
    response = await client.post("/api/v1/events", content=body, headers={**auth, "content-type": BATCH})
    assert response.status_code == 413, response.text
    assert "more than the limit of 10000 (KOPPELHUB_MAX_BATCH_EVENTS): split it" in response.json()["detail"]
    body = json.dumps([{**small, "id": f"e{i}"} for i in range(10_000)]).encode()
    response = await client.post("/api/v1/events", content=body, headers={**auth, "content-type": BATCH})
    assert response.status_code == 202, response.text
