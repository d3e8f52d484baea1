"""In-memory twin of the event log: :class:`hub.ports.EventLog`, :class:`hub.ports.RecordLog`,
the dead-letter topic and :class:`hub.ports.LogConsumer` members of one consumer group.

It keeps what the projector relies on from Kafka, and the contract suite
(``tests/contract/test_log_consumer.py``) holds both adapters to it: records are partitioned by
key and read in log order per partition; each partition has one owner in the group; a member
that joins or leaves moves partitions, and their new owner reads from the last commit; a
commit for a partition the member no longer owns is refused. Records go through the same
CloudEvents binding as on Kafka, so what the projector decodes is byte for byte the same.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.adapters.kafka import dead_letter_headers
from hub.adapters.kafka_consumer import decode
from hub.ports.log import LogRecord
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

__all__ = ["InMemoryEventLog", "InMemoryLogConsumer"]


@dataclass
class _Group:
    committed: dict[int, int] = field(default_factory=dict)
    members: list[InMemoryLogConsumer] = field(default_factory=list)


class InMemoryEventLog:
    """One topic with ``partitions`` partitions, its dead-letter list and its consumer groups."""

    def __init__(self, topic: str = "koppelhub.events", *, partitions: int = 3):
        self.topic = topic
        self.partitions: list[list[KafkaRecord]] = [[] for _ in range(partitions)]
        self.dead_letters: list[KafkaRecord] = []
        self._groups: dict[str, _Group] = {}
        self._arrived = asyncio.Condition()
        #: Set to an exception to make every publish fail with it (a broker outage).
        self.unavailable: Exception | None = None

    def partition_for(self, key: bytes | None) -> int:
        return zlib.crc32(key or b"") % len(self.partitions)

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        await self.publish_records([to_kafka_record(e) for e in events])

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        if self.unavailable is not None:
            raise self.unavailable
        async with self._arrived:
            for record in records:
                self.partitions[self.partition_for(record.key)].append(record)
            self._arrived.notify_all()

    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None:
        extra = dead_letter_headers(error, origin)
        self.dead_letters.append(KafkaRecord(key, value or b"", [*headers, *extra]))

    async def park_records(self, records: Sequence[KafkaRecord]) -> None:
        """Put records on the dead-letter list as they are (the write-ahead log's relay)."""
        if self.unavailable is not None:
            raise self.unavailable
        self.dead_letters.extend(records)

    async def dead_letter_topic_is_empty(self) -> bool:
        return not self.dead_letters

    async def ensure_topics(self) -> None:
        """Nothing to create: the twin's topics exist for as long as it does."""
        if self.unavailable is not None:
            raise self.unavailable

    def lost_log_seen(self) -> bool:
        """Never: the twin's log lives as long as it does."""
        return False

    def consumer(
        self, group_id: str = "koppelhub-projector", *, max_record_bytes: int | None = None
    ) -> InMemoryLogConsumer:
        """A new member of ``group_id`` (it joins on :meth:`InMemoryLogConsumer.start`)."""
        return InMemoryLogConsumer(self, self._groups.setdefault(group_id, _Group()), max_record_bytes)

    def committed(self, group_id: str = "koppelhub-projector") -> dict[int, int]:
        """The group's committed position per partition."""
        return dict(self._groups.get(group_id, _Group()).committed)

    def assignments(self, group_id: str = "koppelhub-projector") -> list[tuple[int, ...]]:
        """The partitions each member of ``group_id`` owns, in joining order."""
        group = self._groups.get(group_id, _Group())
        return [tuple(sorted(m._positions)) for m in group.members]

    def _rebalance(self, group: _Group) -> None:
        """Round-robin the partitions over the members; every member restarts its partitions
        from the group's commits, as a Kafka member does after a rebalance."""
        for member in group.members:
            member._positions, member._handed = {}, {}
        for p in range(len(self.partitions)):
            if group.members:
                owner = group.members[p % len(group.members)]
                owner._positions[p] = group.committed.get(p, 0)

    async def _wake(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()


class InMemoryLogConsumer:
    """A :class:`hub.ports.LogConsumer` over an :class:`InMemoryEventLog`."""

    def __init__(self, log: InMemoryEventLog, group: _Group, max_record_bytes: int | None = None):
        self._max_record_bytes = max_record_bytes
        self._log = log
        self._group = group
        self._positions: dict[int, int] = {}
        #: Per partition, the position after the last record handed over in this assignment.
        self._handed: dict[int, int] = {}
        self._joined = False

    async def start(self) -> None:
        self._group.members.append(self)
        self._joined = True
        self._log._rebalance(self._group)
        await self._log._wake()

    async def stop(self) -> None:
        if self._joined:
            self._group.members.remove(self)
            self._joined = False
            self._log._rebalance(self._group)
            await self._log._wake()

    def _available(self, max_records: int) -> list[LogRecord]:
        out: list[LogRecord] = []
        for p, position in sorted(self._positions.items()):
            records = self._log.partitions[p][position : position + max_records - len(out)]
            for i, r in enumerate(records):
                limit, at = self._max_record_bytes, position + i
                out.append(decode(self._log.topic, p, at, r.key, r.value, tuple(r.headers), limit))
            self._positions[p] = position + len(records)
            if records:
                self._handed[p] = max(self._handed.get(p, 0), position + len(records))
            if len(out) >= max_records:
                break
        return out

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        async with self._log._arrived:
            if not self._has_more():
                try:
                    await asyncio.wait_for(self._log._arrived.wait_for(self._has_more), timeout_s)
                except TimeoutError:
                    return []
            return self._available(max_records)

    def stop_idling(self) -> None:
        """Nothing to do: this member never waits longer than ``timeout_s``."""

    def _has_more(self) -> bool:
        return any(pos < len(self._log.partitions[p]) for p, pos in self._positions.items())

    async def commit(self, positions: Mapping[int, int]) -> bool:
        allowed = {p: after for p, after in positions.items() if after <= self._handed.get(p, -1)}
        self._group.committed.update(allowed)  # a partition moved away was handed nothing here
        return len(allowed) == len(positions)

    def wake(self) -> None:
        """Nothing to do, as for :meth:`stop_idling`."""

    async def seek(self, positions: Mapping[int, int]) -> None:
        for p, offset in positions.items():
            if p in self._positions:
                self._positions[p] = offset

    async def caught_up(self, since: float | None = None) -> bool:
        return self._joined and not self._has_more()  # always as the log is now
