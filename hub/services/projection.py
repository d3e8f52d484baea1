"""One batch of the log applied to the store in one transaction (:func:`apply_events`): the
projector's unit of work, also what tests and benchmarks use to fill a store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from hub.ports import LoggedEvent, MatchableSubscription, NewDelivery, ProjectionStore
from hub.services.landscape import DerivedEvents, project_landscape
from schemas import CloudEvent
from schemas.landscape import parse_inbound_type
from subscriptions.recipients import recipients

__all__ = ["Applied", "apply_events"]


@dataclass(frozen=True)
class Applied:
    """What one transaction did: events seen for the first time, events derived, outbox rows,
    and stale landscape events ignored."""

    new: int = 0
    derived: int = 0
    deliveries: int = 0
    stale: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(
            self.new + other.new,
            self.derived + other.derived,
            self.deliveries + other.deliveries,
            self.stale + other.stale,
        )


async def apply_events(
    store: ProjectionStore, batch: Sequence[LoggedEvent], derive: DerivedEvents | None
) -> Applied:
    """Apply one batch in one transaction: archive what is new, project the landscape events
    among it, archive the derived events that follow (when ``derive`` is given), and queue one
    delivery per recipient for all of them.

    A batch without landscape events (nothing to project, nothing derived) goes to the store
    in one step when it can (:meth:`ProjectionStore.apply_at_once`: one round trip instead of
    four, issue 17), with the same rule for who receives what."""
    if batch and not any(parse_inbound_type(item.event.type) for item in batch):
        at_once = await store.apply_at_once(batch, _route)
        if at_once is not None:
            return Applied(new=at_once[0], deliveries=at_once[1])
    async with store.transaction() as uow:
        archived = await uow.record_new(batch)
        fresh = len(archived)
        projected = await project_landscape(uow.landscape, archived, derive)
        if projected.derived:
            archived += await uow.archive_derived(projected.derived)
        subs = await uow.subscriptions()
        new: list[NewDelivery] = []
        for item in archived:
            attrs = item.event.attributes()
            key = item.event.key()
            new.extend(NewDelivery(s.id, item.seq, item.event.id, key) for s in recipients(subs, attrs))
        await uow.add_deliveries(new)
    return Applied(fresh, len(archived) - fresh, len(new), projected.stale)


def _route(subs: Sequence[MatchableSubscription], event: CloudEvent) -> list[uuid.UUID]:
    return [s.id for s in recipients(subs, event.attributes())]
