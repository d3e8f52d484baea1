"""How many statements the dispatcher's PostgreSQL outbox sends, and in which transaction mode.

A claim and a batch of delivered outcomes are one statement each, autocommitted: one round
trip each (they were BEGIN, five statements and COMMIT for a batch, about 8 % of the work
child's CPU in benchmarks.fanout). A batch with a failure needs more statements (hold-back,
health) and keeps its one transaction. What each statement does is the contract suite's
(tests/contract/test_outbox.py); this file pins the round trips, and the decoded events the
outbox keeps between claims (an event is decoded and its body encoded once, not per claim) and
within one (a subscription's JSON columns are decoded once, not per row).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text

from hub.adapters.postgres import outbox as outbox_module
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.outbox import PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import LoggedEvent
from hub.services.projection import apply_events
from subscriptions.delivery import SharedEvent, encode
from tests.contract.delivery_harness import HUB, LEASE, event, outcome


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[dict[str, Any]]:
    engine = create_engine(database_url, pool_size=2, pre_ping=False)
    statements: list[tuple[str, str | None]] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append((statement, conn.get_execution_options().get("isolation_level")))

    sa_event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield {"engine": engine, "statements": statements}
    finally:
        await engine.dispose()


async def _subscription(engine: Any, n: int, headers: dict[str, str] | None = None, **options: Any) -> Any:
    store = PostgresSubscriptionStore(engine)
    return (
        await store.create(
            sink=f"https://sink{n}.example/hook", protocol="HTTP", source=None, types=None, filters=[],
            headers=headers or {}, config={}, secret="whsec_" + "A" * 32, **options,
        )
    ).id  # fmt: skip


async def _claimed_three(pg: dict[str, Any]) -> tuple[PostgresOutbox, list[Any]]:
    engine = pg["engine"]
    sid = await _subscription(engine, 0)
    logged = [LoggedEvent(event(f"k{n}", n), 0, n) for n in range(3)]
    await apply_events(PostgresProjectionStore(engine), logged, None)
    outbox = PostgresOutbox(engine, source_urn=HUB)
    pg["statements"].clear()
    claimed = await outbox.claim(10, LEASE, {sid: 10})
    assert len(claimed) == 3
    return outbox, claimed


async def test_a_claim_and_a_batch_of_delivered_outcomes_are_one_autocommitted_statement_each(
    pg: dict[str, Any],
) -> None:
    outbox, claimed = await _claimed_three(pg)
    [(_, claim_mode)] = pg["statements"]

    pg["statements"].clear()
    await outbox.record([outcome(c, "delivered", code=204) for c in claimed])

    [(_, record_mode)] = pg["statements"]
    assert (claim_mode, record_mode) == ("AUTOCOMMIT", "AUTOCOMMIT")


async def test_a_batch_with_a_failed_outcome_is_recorded_in_one_transaction(pg: dict[str, Any]) -> None:
    outbox, claimed = await _claimed_three(pg)

    pg["statements"].clear()
    await outbox.record(
        [outcome(claimed[0], "failed"), *(outcome(c, "delivered", code=204) for c in claimed[1:])]
    )

    modes = {mode for _, mode in pg["statements"]}
    assert len(pg["statements"]) > 1 and "AUTOCOMMIT" not in modes


async def test_an_event_whose_deliveries_come_in_two_claims_is_decoded_and_encoded_once(
    pg: dict[str, Any],
) -> None:
    engine = pg["engine"]
    first_sub, second_sub = await _subscription(engine, 1), await _subscription(engine, 2)
    await apply_events(PostgresProjectionStore(engine), [LoggedEvent(event("k", 1), 0, 1)], None)
    outbox = PostgresOutbox(engine, source_urn=HUB)

    [first] = await outbox.claim(10, LEASE, {first_sub: 1, second_sub: 0})
    body, _ = encode(first.event, "structured")  # the first delivery's send
    [second] = await outbox.claim(10, LEASE, {first_sub: 0, second_sub: 1})

    assert (first.subscription_id, second.subscription_id) == (first_sub, second_sub)
    assert second.event is first.event
    assert isinstance(second.event, SharedEvent) and second.event.bodies["structured"][0] is body


@pytest.mark.parametrize(
    ("bound", "value", "last_kept"),
    [("_EVENTS_KEPT", 2, True), ("_EVENT_BYTES_KEPT", 1, False)],  # 1 byte: less than any event
    ids=["count", "size"],
)
async def test_the_outbox_keeps_only_the_latest_decoded_events_within_its_count_and_size(
    pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch, bound: str, value: int, last_kept: bool
) -> None:
    monkeypatch.setattr(outbox_module, bound, value)
    engine = pg["engine"]
    sub = await _subscription(engine, 1)
    logged = [LoggedEvent(event(f"k{n}", n), 0, n) for n in range(3)]
    await apply_events(PostgresProjectionStore(engine), logged, None)
    outbox = PostgresOutbox(engine, source_urn=HUB)
    first, _, last = [(await outbox.claim(1, LEASE, {sub: 1}))[0] for _ in range(3)]  # oldest first

    async def claim_again(claimed: Any) -> Any:
        async with engine.begin() as conn:  # its lease runs out
            await conn.execute(
                text("UPDATE deliveries SET leased_until = NULL WHERE id = :id"), {"id": claimed.id}
            )
        [again] = await outbox.claim(1, LEASE, {sub: 1})
        assert again.id == claimed.id
        return again.event

    assert (await claim_again(last) is last.event) is last_kept
    assert await claim_again(first) is not first.event


async def test_a_claims_rows_of_one_subscription_share_its_decoded_headers_schedule_and_auth(
    pg: dict[str, Any],
) -> None:
    engine = pg["engine"]
    sid = await _subscription(engine, 1, {"X-Team": "zaken"}, retry_schedule=[1.0, 2.0])
    logged = [LoggedEvent(event(f"k{n}", n), 0, n) for n in range(2)]
    await apply_events(PostgresProjectionStore(engine), logged, None)

    first, second = await PostgresOutbox(engine, source_urn=HUB).claim(10, LEASE, {sid: 10})

    assert (first.headers, first.retry_schedule) == ({"X-Team": "zaken"}, [1.0, 2.0])
    assert first.headers is second.headers
    assert first.retry_schedule is second.retry_schedule and first.auth is second.auth


async def test_a_claim_decodes_each_distinct_json_value_of_its_subscriptions_once_json_null_too(
    pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg["engine"]
    sid = await _subscription(engine, 1, retry_schedule=None)  # stored as JSON null, as the API does
    logged = [LoggedEvent(event(f"k{n}", n), 0, n) for n in range(3)]
    await apply_events(PostgresProjectionStore(engine), logged, None)
    decoded: list[str] = []

    def loads(raw: str) -> Any:
        decoded.append(raw)
        return json.loads(raw)

    monkeypatch.setattr(outbox_module, "json", SimpleNamespace(loads=loads))
    claimed = await PostgresOutbox(engine, source_urn=HUB).claim(10, LEASE, {sid: 10})

    assert [(c.headers, c.retry_schedule, c.auth) for c in claimed] == [({}, None, {})] * 3
    assert sorted(raw for raw in decoded if not raw.startswith('{"')) == ["null", "{}"]
