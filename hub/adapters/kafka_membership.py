"""The rebalance listener of one projector member (:class:`Membership`): what the group
assigned it, the record of that for the status, and which positions it may commit."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterable, Mapping

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from hub.errors import KoppelhubError
from hub.ports.members import MemberRegistry

__all__ = ["Membership"]

log = structlog.get_logger(__name__)

#: How long one write of a member's record may take before it is given up (logged).
REPORT_TIMEOUT_S = 5.0


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Whether the group has assigned this member its partitions yet (perhaps none), and, with
    a ``registry``, the record of those partitions that the status reads: Tansu's description
    of the group carries no assignment (``hub.ports.members``). An assignment is recorded as
    given, a revoke as no partitions; the consumer forgets its record when it stops.

    The record is written by a task of its own, never inside the rebalance callback: a
    PostgreSQL stall must not hold up the member's rejoin (and so the whole group's
    rebalance). One writer at a time, always the latest partitions, so the record ends as the
    last assignment said.

    An assignment also wakes the member (``wake``): an idle member waits for a wake-up or its
    next look, and partitions it was just given may hold records written before they moved
    (announced to their former owner, not to it).

    It also bounds what the member commits (:meth:`beyond`, :attr:`ended`): no position past
    the records handed over in the current assignment. Positions read before a rebalance are
    read again anyway (aiokafka resets a member's positions to the group's commits), and they
    may belong to a log that is gone: a broker that keeps its log in memory and was started
    again holds a new log from offset 0, where a member that rejoined would commit its old
    positions, and the group would skip every record below them (README "Outages")."""

    def __init__(
        self,
        registry: MemberRegistry | None,
        client_id: str,
        group: str,
        topic: str,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.assigned = False
        self._registry, self.client_id, self._group, self._topic = registry, client_id, group, topic
        self._wake = wake or asyncio.Event()
        self._latest: tuple[int, ...] | None = None  # to be written
        self._writer: asyncio.Task[None] | None = None
        #: Per partition, the position after the last record handed over in this assignment.
        self._handed: dict[int, int] = {}
        #: Set when this assignment ends (a rebalance began): a commit under way is given up.
        self.ended = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.assigned = False
        self.ended.set()
        self._handed = {}
        self._report(())

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned = True
        self.ended, self._handed = asyncio.Event(), {}
        self._wake.set()
        self._report(tuple(tp.partition for tp in assigned if tp.topic == self._topic))

    def handed(self, positions: Mapping[int, int]) -> None:
        """Note the position after the last record handed over, per partition."""
        for partition, after in positions.items():
            self._handed[partition] = max(after, self._handed.get(partition, 0))

    def beyond(self, positions: Mapping[int, int]) -> dict[int, int]:
        """The ``positions`` past what this assignment handed over (not to be committed)."""
        return {p: after for p, after in positions.items() if after > self._handed.get(p, -1)}

    def _report(self, partitions: tuple[int, ...]) -> None:
        if self._registry is None:
            return
        self._latest = partitions
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(self._registry), name="projector-member-record")

    async def _write(self, registry: MemberRegistry) -> None:
        """Write the latest partitions until none is left unwritten; a failure only costs the
        status this member's partitions until the next assignment (logged)."""
        while self._latest is not None:
            partitions, self._latest = self._latest, None
            try:
                async with asyncio.timeout(REPORT_TIMEOUT_S):
                    await registry.record(
                        client_id=self.client_id,
                        group=self._group,
                        topic=self._topic,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        partitions=partitions,
                    )
            except (KoppelhubError, TimeoutError) as e:
                log.warning("member_assignment_not_recorded", client_id=self.client_id, error=str(e))

    async def forget(self) -> None:
        """Delete the record, after any write still under way (so the delete comes last)."""
        if self._registry is None:
            return
        self._latest = None
        if self._writer is not None:
            await self._writer
        try:
            async with asyncio.timeout(REPORT_TIMEOUT_S):
                await self._registry.forget(self.client_id)
        except (KoppelhubError, TimeoutError) as e:
            log.warning("member_assignment_not_forgotten", client_id=self.client_id, error=str(e))
