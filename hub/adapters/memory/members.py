"""In-memory twin of :class:`hub.ports.members.MemberRegistry` (contract:
``tests/contract/test_members.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hub.ports.members import RecordedMember

__all__ = ["InMemoryMemberRegistry"]


class InMemoryMemberRegistry:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._records: dict[str, RecordedMember] = {}

    async def record(
        self, *, client_id: str, group: str, topic: str, host: str, pid: int, partitions: tuple[int, ...]
    ) -> None:
        self._records[client_id] = RecordedMember(
            client_id, group, topic, host, pid, tuple(sorted(partitions)), self._clock()
        )

    async def forget(self, client_id: str) -> None:
        self._records.pop(client_id, None)

    async def recorded(self) -> list[RecordedMember]:
        return [self._records[c] for c in sorted(self._records)]
