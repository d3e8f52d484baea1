"""When the projector commits its log positions (:class:`Committer`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from hub.errors import KoppelhubError, RetriableError
from hub.ports import LogConsumer, LogRecord, ProjectionStore

log = structlog.get_logger(__name__)

#: How long a commit round gathers the positions of further batches before its flush.
GATHER_SECONDS = 0.1
#: How long one flush may take (a wait for the disk, milliseconds as a rule) before it counts
#: as failed: a database that answers nothing must not hold a stop or a drain past its bound.
FLUSH_TIMEOUT_SECONDS = 10.0

#: Per partition: the offset of the first record not yet committed, and the position after the
#: last one applied (what a commit marks read).
Span = dict[int, tuple[int, int]]


def span(batch: Sequence[LogRecord]) -> Span:
    """Per partition, the first offset of ``batch`` and the position after its last record."""
    out: Span = {}
    for record in batch:
        first, after = out.get(record.partition, (record.offset, 0))
        out[record.partition] = (min(first, record.offset), max(after, record.offset + 1))
    return out


def _joined(earlier: Mapping[int, tuple[int, int]], later: Mapping[int, tuple[int, int]]) -> Span:
    """Two spans as one: the first offset of either (a rebalance may have read a partition
    again from an earlier one), the position of the later."""
    out = dict(earlier)
    for p, (first, after) in later.items():
        out[p] = (min(out[p][0], first), after) if p in out else (first, after)
    return out


class Committer:
    """Commits a member's log positions behind its batches, each only once the transactions
    that applied the records before it are durable (:meth:`ProjectionStore.durable`: their
    commits do not wait for the disk, issue 17: latency).

    The member goes on reading and applying meanwhile: neither the store's flush nor the
    broker's answer is on the path of the next event. One round (gather, flush, commit) runs at
    a time; the positions of batches applied during a round go in the next one, together (the
    latest per partition). So positions are committed in order and never ahead of a durable
    projection; a crash before a commit replays what the dedupe then skips, as before. A flush
    that fails (the store is away) is tried again, with back-off, until the member leaves or
    drains.

    A crash of the store may take its last commits along (the store's incarnation ends): a
    batch read while an earlier incarnation ran may be lost even though a later flush
    succeeds on the new one. Then nothing is committed; the member reads every uncommitted
    batch again from its first record (:meth:`rewind`, before its next poll), and the dedupe
    skips what did survive.

    A round first gathers for :data:`GATHER_SECONDS` (not when the member leaves: :meth:`done`).
    At a low rate each batch holds one event and a round without it took one batch: a flush (a
    commit that waits for the disk) and a broker commit per event, 200 of each per second at
    200 events/s, now at most 10. A crash replays up to that much more of the log, which the
    dedupe skips; nothing is committed earlier than before."""

    def __init__(
        self, consumer: LogConsumer, store: ProjectionStore, read_again: Callable[[], None] = lambda: None
    ) -> None:
        self._consumer, self._store = consumer, store
        self._count_read_again = read_again  # the metric
        self._pending: Span = {}
        #: The store's incarnations as known when the pending batches were read.
        self._read_during: set[str | None] = set()
        self._rewind: dict[int, int] | None = None
        self._round: asyncio.Task[None] | None = None
        self._leaving = asyncio.Event()
        self._abandoned = False
        #: The incarnation the last flush answered (None: not known yet).
        self.incarnation: str | None = None

    async def begin(self) -> None:
        """Learn the store's incarnation before the first batch is read (if the store is away
        or does not answer, the first round learns it, and reads that round's batches again)."""
        with contextlib.suppress(KoppelhubError, TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                self.incarnation = await self._store.durable()

    def behind(self, applied: Span, read_during: str | None) -> None:
        """Commit past ``applied`` (a batch whose transaction committed, read while the store's
        incarnation was ``read_during``) in time."""
        if self._abandoned:
            return
        if self._rewind is not None:  # read before the rewind: it is read again
            for p, (first, _) in applied.items():
                self._rewind[p] = min(first, self._rewind.get(p, first))
            return
        self._pending = _joined(self._pending, applied)
        self._read_during.add(read_during)
        self._start_round()

    def _start_round(self) -> None:
        if self._round is None or self._round.done():
            if self._round is not None:
                self._round.result()  # re-raises what a round could not survive (not a failed flush)
            self._round = asyncio.create_task(self._commit(), name="projector-commit")

    def rewind(self) -> dict[int, int] | None:
        """Where to read again from (per partition), once, when the store lost an incarnation
        since the batches were read; else None."""
        back, self._rewind = self._rewind, None
        return back

    async def _commit(self) -> None:
        while self._pending:
            await self._pause(GATHER_SECONDS)
            taken, read_during = self._pending, self._read_during
            self._pending, self._read_during = {}, set()
            try:
                incarnation = await self._flush()
            except KoppelhubError as e:  # the member leaves: what is pending stays uncommitted
                log.warning("projection_flush_failed", error=str(e)[:500])
                self._pending = _joined(taken, self._pending)
                self._read_during |= read_during
                return
            self.incarnation = incarnation
            if read_during - {incarnation}:
                lost = _joined(taken, self._pending)
                self._pending, self._read_during = {}, set()
                self._rewind = {p: first for p, (first, _) in lost.items()}
                log.warning(
                    "projection_read_again",
                    reason="the database went through crash recovery since these batches were read: "
                    "their commits may be lost; they are applied again (the dedupe skips what survived)",
                    positions=self._rewind,
                )
                self._count_read_again()
                self._consumer.wake()  # an idle member reads them again now, not at its next look
                return
            if self._abandoned:
                return
            await self._consumer.commit({p: after for p, (_, after) in taken.items()})

    async def _flush(self) -> str:
        """The store's flush, tried again while the store is away (an idle member must still
        learn that a crash lost what it applied), until the member leaves or drains."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KoppelhubError),
            stop=lambda _state: self._leaving.is_set(),
            wait=wait_exponential(multiplier=0.5, max=5),
            sleep=self._pause,
            before_sleep=lambda state: log.warning(
                "projection_flush_failed", error=str(state.outcome.exception() if state.outcome else "")[:500]
            ),
            reraise=True,
        ):
            with attempt:
                try:
                    async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                        return await self._store.durable()
                except TimeoutError as e:
                    raise RetriableError(f"no answer to the flush within {FLUSH_TIMEOUT_SECONDS:g} s") from e
        raise AssertionError("unreachable: AsyncRetrying returns or raises")

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, less when the member leaves or drains."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leaving.wait(), seconds)

    async def settled(self) -> bool:
        """For a draining member: a round for what is pending, without gathering (from now on,
        as when leaving); True once everything applied is committed, False when the member
        must read on (batches to read again, :meth:`rewind`; or a flush failed: ask again)."""
        self._leaving.set()
        if self._pending:
            self._start_round()
        await self._round_over()
        return self._rewind is None and not self._pending

    async def done(self) -> None:
        """Wait for the round under way, without gathering further. It commits what was pending
        when it began and what came during it, unless its flush fails (the store is away) or
        the batches must be read again: then the next owner reads them from the last commit."""
        self._leaving.set()
        await self._round_over()

    async def _round_over(self) -> None:
        """Wait for the round under way (re-raising what it could not survive); one that
        :meth:`abandon` cancelled just ends: its member was not cancelled."""
        if self._round is None:
            return
        try:
            await self._round
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._abandoned or (current is not None and current.cancelling()):
                raise

    def abandon(self) -> None:
        """Commit nothing more, not even the round under way (its commit may be waiting in the
        broker client for a coordinator): the log these positions belong to is gone
        (:meth:`hub.services.projector.Projector.log_lost`)."""
        self._abandoned = True
        self._leaving.set()
        self._pending, self._read_during = {}, set()
        if self._round is not None:
            self._round.cancel()
