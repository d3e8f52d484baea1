"""The subscription store's contract, run against the in-memory twin and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from hub.errors import NotFound, PermanentError
from hub.paging import BadCursor
from hub.ports import SubscriptionFilter
from tests.contract.delivery_harness import LEASE, DeliveryHarness, event, outcome


async def test_a_created_subscription_reads_back_with_its_policy(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe(types=["nl.example.thing.changed.v1"], ordering="none", max_rate=5.0)

    got = await stores.subscriptions.get(sid)

    assert (got.status, got.types, got.ordering, got.max_rate) == (
        "active",
        ["nl.example.thing.changed.v1"],
        "none",
        5.0,
    )
    assert got.status_reason is None and got.auth == {}


async def test_a_subscription_created_with_a_given_id_keeps_it_and_the_id_is_not_taken_twice(
    stores: DeliveryHarness,
) -> None:
    wanted = uuid.uuid4()

    sid = await stores.subscribe(id=wanted, sink=f"connector:{uuid.uuid4()}")

    assert sid == wanted and (await stores.subscriptions.get(wanted)).sink.startswith("connector:")
    with pytest.raises(PermanentError):
        await stores.subscribe(id=wanted)


async def test_lists_page_in_creation_order_without_gaps(stores: DeliveryHarness) -> None:
    made = [await stores.subscribe() for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = await stores.subscriptions.list(limit=2, cursor=cursor)
        seen += [s.id for s in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == made
    with pytest.raises(BadCursor):
        await stores.subscriptions.list(limit=2, cursor="bm90LWEtY3Vyc29y")


async def test_pausing_keeps_deliveries_queued_and_resuming_makes_them_due_now(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe()
    await stores.publish(event())
    paused = await stores.subscriptions.update(sid, {}, enabled=False)
    assert (paused.status, paused.status_reason) == ("paused", "paused through the API")
    assert await stores.outbox.claim(10, LEASE) == []

    resumed = await stores.subscriptions.update(sid, {"sink": "https://other.example/hook"}, enabled=True)

    assert (resumed.status, resumed.status_reason, resumed.sink) == (
        "active",
        None,
        "https://other.example/hook",
    )
    claimed = await stores.outbox.claim(10, LEASE)
    assert [c.subscription_id for c in claimed] == [sid]
    assert claimed[0].sink == "https://other.example/hook"


async def test_a_rotated_secret_signs_beside_the_new_one_during_the_grace_period(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe()
    before = await stores.subscriptions.signing_target(sid)

    await stores.subscriptions.rotate_secret(sid, "whsec_" + "B" * 32, 3600)

    after = await stores.subscriptions.signing_target(sid)
    assert after.secrets == ["whsec_" + "B" * 32, *before.secrets]


async def test_deleting_a_subscription_removes_its_deliveries(stores: DeliveryHarness) -> None:
    sid, other = await stores.subscribe(), await stores.subscribe()
    await stores.publish(event())

    await stores.subscriptions.delete(sid)

    with pytest.raises(NotFound):
        await stores.subscriptions.get(sid)
    with pytest.raises(NotFound):
        await stores.subscriptions.deliveries(sid, status=None, limit=10, cursor=None)
    assert [c.subscription_id for c in await stores.outbox.claim(10, LEASE)] == [other]


async def test_the_delivery_log_pages_in_archive_order_and_filters_by_status(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(*(event(f"k{n}") for n in range(3)))

    first = await stores.subscriptions.deliveries(sid, status=None, limit=2, cursor=None)
    rest = await stores.subscriptions.deliveries(sid, status=None, limit=2, cursor=first.next_cursor)

    seqs = [d["archive_seq"] for d in first.items + rest.items]
    assert seqs == sorted(seqs) and len(seqs) == 3 and rest.next_cursor is None
    assert {d["status"] for d in first.items} == {"pending"}
    assert await stores.log(sid, "delivered") == []


async def test_the_list_keeps_only_what_the_filter_matches(stores: DeliveryHarness) -> None:
    shop = await stores.subscribe(sink="https://shop.example/hook")
    paused = await stores.subscribe(sink="https://shop.example/other")
    elsewhere = await stores.subscribe(sink="https://elsewhere.example/hook%_")
    await stores.subscriptions.update(paused, {}, enabled=False)

    async def ids(where: SubscriptionFilter) -> list[uuid.UUID]:
        return [s.id for s in (await stores.subscriptions.list(limit=10, cursor=None, where=where)).items]

    assert await ids(SubscriptionFilter(status="paused")) == [paused]
    assert await ids(SubscriptionFilter(sink_prefix="https://shop.example/")) == [shop, paused]
    assert await ids(SubscriptionFilter(status="active", sink_prefix="https://shop.")) == [shop]
    assert await ids(SubscriptionFilter(sink_prefix="https://elsewhere.example/hook%")) == [elsewhere]
    assert await ids(SubscriptionFilter(sink_prefix="https://%")) == []  # a prefix, not a pattern


async def test_failures_show_in_the_subscription_until_a_delivery_succeeds(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe(ordering="none")
    healthy = await stores.subscriptions.get(sid)
    assert (healthy.consecutive_failures, healthy.last_error, healthy.failing_since) == (0, None, None)
    await stores.publish(event("a"), event("b"), event("c"))
    first, second, third = await stores.outbox.claim(10, LEASE, {sid: 10})

    await stores.outbox.record([outcome(first, "failed", code=500), outcome(second, "failed", code=503)])

    failing = await stores.subscriptions.get(sid)
    assert (failing.consecutive_failures, failing.last_error) == (2, "http_503")
    assert failing.failing_since is not None and failing.status == "active"
    listed = (await stores.subscriptions.list(limit=10, cursor=None)).items
    assert [s.consecutive_failures for s in listed] == [2]

    await stores.outbox.record([outcome(third, "delivered", code=200)])

    recovered = await stores.subscriptions.get(sid)
    assert (recovered.consecutive_failures, recovered.last_error, recovered.failing_since) == (0, None, None)


async def test_resuming_clears_the_failure_record(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event())
    [claim] = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.outbox.record([outcome(claim, "failed", code=500)])
    await stores.subscriptions.update(sid, {}, enabled=False)

    resumed = await stores.subscriptions.update(sid, {}, enabled=True)

    assert (resumed.consecutive_failures, resumed.last_error, resumed.failing_since) == (0, None, None)


async def test_a_subscription_keeps_its_organisation_and_lists_narrow_to_one(stores: DeliveryHarness) -> None:
    mine = await stores.subscribe(organisatie="gem-a")
    theirs = await stores.subscribe(organisatie="gem-b")
    hub_wide = await stores.subscribe()

    assert (await stores.subscriptions.get(mine)).organisatie == "gem-a"
    assert (await stores.subscriptions.get(hub_wide)).organisatie is None
    assert [
        s.id for s in (await stores.subscriptions.list(limit=10, cursor=None, owned_by="gem-a")).items
    ] == [mine]
    assert len((await stores.subscriptions.list(limit=10, cursor=None)).items) == 3
    assert theirs != mine


async def test_an_organisations_subscription_is_queued_only_its_own_events_and_claims_carry_its_owner(
    stores: DeliveryHarness,
) -> None:
    mine = await stores.subscribe(organisatie="gem-a")
    await stores.publish(
        event("a", 1, organisatie="gem-a"), event("b", 2, organisatie="gem-b"), event("c", 3)
    )
    claimed = await stores.outbox.claim(10, LEASE)
    assert [(c.subscription_id, c.event["data"]["n"], c.organisatie) for c in claimed] == [(mine, 1, "gem-a")]
