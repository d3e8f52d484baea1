"""The projector members' own record of their partitions (issue 15: status on Tansu).

A consumer group's description is where an operator normally reads which member owns which
partitions, but Tansu answers DescribeGroups with every member's assignment (and client id and
host) empty. So each projector member writes down what the group gave it, from its rebalance
listener, and the status joins those records with the broker's list of live members: the
broker says who is a member, the record says what it owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["MemberRegistry", "RecordedMember"]


@dataclass(frozen=True)
class RecordedMember:
    """What one projector consumer last reported: its partitions of ``topic`` in ``group``."""

    #: The consumer's Kafka client id, unique per consumer; the broker's member id for it is
    #: this client id, a dash and a suffix of the broker's (Kafka and Tansu both do so).
    client_id: str
    group: str
    topic: str
    host: str
    pid: int
    partitions: tuple[int, ...]
    updated_at: datetime


class MemberRegistry(Protocol):
    """Where projector consumers record their assignment and the status reads it."""

    async def record(
        self, *, client_id: str, group: str, topic: str, host: str, pid: int, partitions: tuple[int, ...]
    ) -> None:
        """Replace what ``client_id`` owns by ``partitions`` (empty while it has none, as
        between a revoke and the next assignment), stamped with the store's clock."""
        ...

    async def forget(self, client_id: str) -> None:
        """Drop ``client_id``'s record (it left the group); nothing happens when there is none."""
        ...

    async def recorded(self) -> list[RecordedMember]:
        """Every record, of every group and topic, ordered by client id. A consumer that died
        leaves its record behind: readers keep only those the broker still lists as members,
        and the status forgets the others after a while (``hub.services.status``)."""
        ...
