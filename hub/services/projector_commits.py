"""When the projector commits its log positions (:class:`Committer`)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from hub.errors import KoppelhubError
from hub.ports import LogConsumer, ProjectionStore

log = structlog.get_logger(__name__)

#: How long a commit round gathers the positions of further batches before its flush.
GATHER_SECONDS = 0.1


class Committer:
    """Commits a member's log positions behind its batches, each only once the transactions
    that applied the records before it are durable (:meth:`ProjectionStore.durable`: their
    commits do not wait for the disk, issue 17: latency).

    The member goes on reading and applying meanwhile: neither the store's flush nor the
    broker's answer is on the path of the next event. One round (gather, flush, commit) runs at
    a time; the positions of batches applied during a round go in the next one, together (the
    latest per partition). So positions are committed in order and never ahead of a durable
    projection; a crash before a commit replays what the dedupe then skips, as before. A flush
    that fails (the store is away) keeps its positions for the next round.

    A round first gathers for :data:`GATHER_SECONDS` (not when the member leaves: :meth:`done`).
    At a low rate each batch holds one event and a round without it took one batch: a flush (a
    commit that waits for the disk) and a broker commit per event, 200 of each per second at
    200 events/s, now at most 10. A crash replays up to that much more of the log, which the
    dedupe skips; nothing is committed earlier than before."""

    def __init__(self, consumer: LogConsumer, store: ProjectionStore) -> None:
        self._consumer, self._store = consumer, store
        self._pending: dict[int, int] = {}
        self._round: asyncio.Task[None] | None = None
        self._leaving = asyncio.Event()

    def behind(self, after: dict[int, int]) -> None:
        """Commit ``after`` (positions past batches whose transactions committed) in time."""
        self._pending.update(after)
        if self._round is None or self._round.done():
            if self._round is not None:
                self._round.result()  # re-raises what a round could not survive (not a failed flush)
            self._round = asyncio.create_task(self._commit(), name="projector-commit")

    async def _commit(self) -> None:
        while self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leaving.wait(), GATHER_SECONDS)
            after, self._pending = self._pending, {}
            try:
                await self._store.durable()
            except KoppelhubError as e:
                log.warning("projection_flush_failed", error=str(e)[:500])
                self._pending = {**after, **self._pending}
                return
            await self._consumer.commit(after)

    async def done(self) -> None:
        """Wait for the round under way, without gathering further (it commits what was pending
        when it began, and what came during it)."""
        self._leaving.set()
        if self._round is not None:
            await self._round
