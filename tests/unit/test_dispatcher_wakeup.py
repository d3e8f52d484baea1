"""The wake-up rule of a process that runs a projector beside a dispatcher
(hub/services/dispatcher_wakeup.py), and the dispatcher's "would claim now" it asks."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.adapters.memory import InMemoryDatabase, InMemoryOutbox
from hub.ports import ClaimedDelivery
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.dispatcher_wakeup import EVERYONE, Beside, wakes
from subscriptions.retry import RetrySchedule
from tests.unit.test_dispatcher import FakeClient


def test_a_projector_names_its_process_while_its_dispatcher_would_claim_and_no_one_otherwise() -> None:
    claiming = True
    rule = Beside(lambda: claiming, writer="a")

    assert rule.payload() == "a"
    claiming = False  # full, stopping or not started: every dispatcher wakes, as before the rule
    assert rule.payload() == EVERYONE


def test_a_dispatcher_wakes_by_notify_only_for_everyone() -> None:
    assert wakes(EVERYONE)
    assert not wakes("a")  # a sibling's or, for a dispatch child, a work process's: its dispatcher takes them
    assert not wakes("b")  # its own projector's: woken in the process (committed)


def test_a_commit_its_projector_named_it_for_wakes_the_dispatcher_in_the_process() -> None:
    woken: list[str] = []
    rule = Beside(writer="b")
    rule.beside(lambda: True, lambda: woken.append("b"))

    rule.committed("a")
    rule.committed(EVERYONE)  # every dispatcher wakes by the NOTIFY, this one too
    assert woken == []
    rule.committed("b")
    assert woken == ["b"]


def test_each_process_names_itself_differently() -> None:
    assert Beside().writer != Beside().writer


class ClaimSeen(InMemoryOutbox):
    """The in-memory outbox, announcing its first claim."""

    def __init__(self) -> None:
        super().__init__(InMemoryDatabase())
        self.claimed = asyncio.Event()

    async def claim(self, *args: Any, **kwargs: Any) -> list[ClaimedDelivery]:
        self.claimed.set()
        return await super().claim(*args, **kwargs)


async def test_a_dispatcher_would_claim_while_it_runs_with_room_and_not_before_or_after() -> None:
    outbox = ClaimSeen()
    policy = RetryPolicy(RetrySchedule.of([1.0]))
    dispatcher = Dispatcher(outbox, FakeClient(), policy, asyncio.Event(), poll_seconds=60)
    rule = Beside(writer="a")
    rule.beside(lambda: dispatcher.claiming, lambda: None)
    assert rule.payload() == EVERYONE

    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await asyncio.wait_for(outbox.claimed.wait(), 10)  # its loop looked at its room
    assert rule.payload() == "a"
    stop.set()
    await running

    assert rule.payload() == EVERYONE
