"""The delivery store's contract (manual retry, attempts, replay, pull), run against the
in-memory twin and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hub.errors import NotFound
from schemas.hub_events import DELIVERY_DEAD
from tests.contract.delivery_harness import LEASE, DeliveryHarness, event, outcome


async def test_a_manual_retry_makes_a_dead_delivery_due_with_a_fresh_schedule(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("k", 1), event("k", 2))
    [head] = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.outbox.record([outcome(head, "failed", retry_in=3600)])  # holds its key back

    assert await stores.deliveries.retry(sid, head.id) == "pending"

    row = await stores.row(head.id)
    assert (row["status"], row["retry_base"], row["attempts"]) == ("pending", 1, 1)
    claimed = await stores.outbox.claim(10, LEASE, {sid: 10})
    assert [c.id for c in claimed] == [head.id]  # due again; the follower waits for it, released
    follower = next(d for d in await stores.log(sid) if d["id"] != head.id)
    assert follower["next_attempt_at"] <= datetime.now(UTC)


async def test_retry_and_attempts_of_someone_elses_delivery_are_not_found(stores: DeliveryHarness) -> None:
    sid, other = await stores.subscribe(), await stores.subscribe()
    await stores.publish(event())
    [mine] = [d["id"] for d in await stores.log(sid)]

    for call in (stores.deliveries.retry, stores.deliveries.attempts):
        with pytest.raises(NotFound):
            await call(other, mine)
    with pytest.raises(NotFound):
        await stores.deliveries.retry(sid, uuid.uuid4())
    assert await stores.deliveries.attempts(sid, mine) == []


async def test_replay_queues_again_what_the_subscription_selects(stores: DeliveryHarness) -> None:
    await stores.subscribe()  # makes the flow archived
    sid = await stores.subscribe(filters=[{"exact": {"subject": "wanted"}}])
    await stores.publish(event("wanted"), event("other"), event("wanted"))
    since = datetime.now(UTC) - timedelta(hours=1)

    assert await stores.deliveries.replay(sid, since, None) == 2
    assert len(await stores.log(sid)) == 4
    assert await stores.deliveries.replay(sid, since, since) == 0
    with pytest.raises(NotFound):
        await stores.deliveries.replay(uuid.uuid4(), since, None)


async def test_replay_to_a_subscription_that_selects_nothing_leaves_out_hub_events(
    stores: DeliveryHarness,
) -> None:
    flow = await stores.subscribe(types=["nl.example.thing.changed.v1"])
    await stores.subscribe(types=[DELIVERY_DEAD])
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)
    await stores.outbox.record([outcome(c, "dead", retry_in=None)])  # archives an alert
    everything = await stores.subscribe()

    assert await stores.deliveries.replay(everything, datetime.now(UTC) - timedelta(hours=1), None) == 1
    assert flow != everything


async def test_pull_pages_through_the_matching_archive(stores: DeliveryHarness) -> None:
    await stores.subscribe()
    sid = await stores.subscribe(filters=[{"prefix": {"subject": "w"}}])
    await stores.publish(event("w1"), event("x"), event("w2"), event("w3"), event("y"))

    first = await stores.deliveries.pull(sid, after=0, limit=2)
    rest = await stores.deliveries.pull(sid, after=first.last_seq, limit=2)
    end = await stores.deliveries.pull(sid, after=rest.last_seq, limit=2)

    assert [e["subject"] for e in first.events] == ["w1", "w2"] and first.more
    assert [e["subject"] for e in rest.events] == ["w3"] and not rest.more
    assert end.events == [] and not end.more and end.last_seq == rest.last_seq


async def test_an_event_delivered_by_a_replay_leaves_no_dead_delivery_of_it(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("k", 1))
    [first] = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.outbox.record([outcome(first, "dead", retry_in=None)])
    assert await stores.deliveries.replay(sid, datetime.now(UTC) - timedelta(hours=1), None) == 1

    [again] = await stores.outbox.claim(10, LEASE, {sid: 10})
    assert again.id != first.id and again.event_id == first.event_id
    await stores.outbox.record([outcome(again, "delivered", code=204)])

    assert [d["status"] for d in await stores.log(sid)] == ["delivered", "delivered"]
    assert (await stores.row(first.id))["delivered_at"] is not None


async def test_replay_of_only_undelivered_events_leaves_out_the_delivered_and_the_open(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe(ordering="none")
    await stores.publish(event("a", 1), event("b", 2), event("c", 3))
    claimed = {c.event["data"]["n"]: c for c in await stores.outbox.claim(10, LEASE, {sid: 10})}
    await stores.outbox.record(
        [outcome(claimed[1], "delivered", code=204), outcome(claimed[2], "dead", retry_in=None)]
    )  # 3 stays claimed: open
    since = datetime.now(UTC) - timedelta(hours=1)

    assert await stores.deliveries.replay(sid, since, None, only_undelivered=True) == 1
    queued = [d for d in await stores.log(sid) if d["status"] == "pending"]
    assert sorted(d["event_id"] for d in queued) == sorted([claimed[2].event_id, claimed[3].event_id])
    assert await stores.deliveries.replay(sid, since, None, only_undelivered=True) == 0
    assert await stores.deliveries.replay(sid, since, None) == 3  # without: everything again


async def test_recover_makes_every_failed_and_dead_delivery_since_due_with_a_fresh_schedule(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe(ordering="none")
    await stores.publish(event("a", 1), event("b", 2), event("c", 3))
    claimed = {c.event["data"]["n"]: c for c in await stores.outbox.claim(10, LEASE, {sid: 10})}
    await stores.outbox.record(
        [
            outcome(claimed[1], "failed", retry_in=3600),
            outcome(claimed[2], "dead", retry_in=None),
            outcome(claimed[3], "delivered", code=204),
        ]
    )

    assert await stores.deliveries.recover(sid, datetime.now(UTC) + timedelta(hours=1)) == 0
    assert await stores.deliveries.recover(sid, datetime.now(UTC) - timedelta(hours=1)) == 2

    rows = {n: await stores.row(c.id) for n, c in claimed.items()}
    assert [(rows[n]["status"], rows[n]["retry_base"]) for n in (1, 2, 3)] == [
        ("pending", 1),
        ("pending", 1),
        ("delivered", 0),
    ]
    again = await stores.outbox.claim(10, LEASE, {sid: 10})
    assert sorted(c.event["data"]["n"] for c in again) == [1, 2]
    with pytest.raises(NotFound):
        await stores.deliveries.recover(uuid.uuid4(), datetime.now(UTC))
