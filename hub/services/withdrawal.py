"""Withdrawing what a complete read no longer found: the one rule both connector runners keep.

A ``full`` run that read its source whole (its last batch ``complete``) withdraws the live objects
of the withdrawable types that its scope published and the run did not read (nor list as
``present``): each becomes ``…ingetrokken.v1`` with the scope's own source, so only what this
source brought in is ever withdrawn. They go :data:`WITHDRAW_PAGE` at a time, each page only as
far as the connector confirms them gone (:meth:`~connectors.base.Connector.gone`: a source whose
complete read is pages over a list that may move asks for each), published and then recorded
(the fingerprint withdrawn, with the owner's progress), so the next run finds nothing to withdraw.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from connectors.base import Connector
from connectors.events import ingetrokken_event
from hub.ports import EventLog
from hub.ports.connectors import BatchCommit, FingerprintStore, Key, Owner, Published, SyncScope
from hub.services.ownership import Stored, first_named, kept_from_withdrawal

if TYPE_CHECKING:
    from hub.services.sync_rows import Tally

__all__ = ["WITHDRAW_PAGE", "withdraw_unseen"]

WITHDRAW_PAGE = 5000


async def withdraw_unseen(
    connector: Connector[Any],
    scope: SyncScope,
    owner: Owner,
    store: FingerprintStore,
    event_log: EventLog,
    run: uuid.UUID,
    tally: Tally,
    types: Collection[str],
    stored: Stored | None = None,
) -> None:
    """Withdraw what ``run`` did not read of ``types`` (see the module docstring). With
    ``stored`` (the landscape's objects), another organisation's object that another source
    stated since is not withdrawn, only forgotten by this scope
    (:func:`hub.services.ownership.kept_from_withdrawal`)."""
    t, s = tally, scope
    after: Key | None = None
    while True:
        page = await store.unseen(s, run, sorted(types), after=after, limit=WITHDRAW_PAGE)
        if not page:
            return
        after = page[-1][0]
        confirmed = set(await connector.gone([key for key, _ in page]))
        page = [(key, gen) for key, gen in page if key in confirmed]
        if not page:
            continue
        kept = await kept_from_withdrawal(stored, s.organisatie, s.source, [key for key, _ in page])
        stamp = {"organisatie": s.organisatie}
        events = [
            ingetrokken_event(s.source, s.key, ot, oid, gen + 1).model_copy(update=stamp)
            for (ot, oid), gen in page
            if (ot, oid) not in kept
        ]
        if kept:
            t.notes.append(_kept_note(kept))
        if events:
            await event_log.publish(events)
        for key, _gen in page:
            if key not in kept:
                t.bump(key[0], "removed")
        t.withdrawn += len(events)
        await store.commit(
            s,
            owner,
            BatchCommit(
                published=[Published(ot, oid, None, gen + 1) for (ot, oid), gen in page],
                run=run,
                events=len(events),
                rows_read=t.read,
                counts=t.counts(),
                report=t.per_type,
            ),
        )


def _kept_note(kept: Collection[Key]) -> str:
    """The run report's note on what it did not withdraw (the first five named)."""
    named = first_named([f"{objecttype} {object_id!r}" for objecttype, object_id in sorted(kept)])
    return (
        f"{len(kept)} object(s) of other organisations no longer read were not withdrawn: another "
        f"source recorded them since ({named})"
    )
