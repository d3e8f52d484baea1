"""The projector's members in the status where the broker reports them without partitions (as
Tansu does): each live member shows what it recorded itself, with the lag of those partitions;
records of consumers the broker no longer lists never show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hub.adapters.memory import (
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryMemberRegistry,
)
from hub.adapters.memory.operations import InMemoryLogInspector, InMemoryOperationsStore
from hub.cli_operators import render_status
from hub.errors import RetriableError
from hub.ports.members import RecordedMember
from hub.ports.operators import GroupMember, LogStatus, PartitionLag
from hub.services.status import hub_status

GROUP, TOPIC = "koppelhub-projector", "events"
A = "koppelhub-projector-aaaaaaaaaaaa"
B = "koppelhub-projector-bbbbbbbbbbbb"
SUFFIX = "-16397b5c-bc08-44ee-8808-b90ec918e71a"  # the broker's part of a member id


class BrokerView(InMemoryLogInspector):
    """The group as a broker describes it: these members, three partitions with lag 5, 3, 0."""

    def __init__(self, *members: GroupMember) -> None:
        super().__init__(InMemoryEventLog(partitions=3))
        self._members = members

    async def status(self) -> LogStatus:
        ends = [PartitionLag(0, 10, 5), PartitionLag(1, 10, 7), PartitionLag(2, 10, 10)]
        return LogStatus(TOPIC, GROUP, "Stable", tuple(ends), self._members, "events.dlq", 0)


def _tansu(client_id: str) -> GroupMember:
    """A member as Tansu describes it: the member id only."""
    return GroupMember(client_id + SUFFIX, "", "")


async def _status(view: BrokerView, registry: InMemoryMemberRegistry | None) -> list[dict[str, Any]]:
    store = InMemoryOperationsStore(InMemoryDatabase(), InMemoryConnectorTables())
    doc = await hub_status(view, store, registry)
    members: list[dict[str, Any]] = doc["log"]["members"]
    return members


async def _report(
    registry: InMemoryMemberRegistry, client_id: str, *partitions: int, group: str = GROUP
) -> None:
    await registry.record(
        client_id=client_id, group=group, topic=TOPIC, host="web-1", pid=4242, partitions=partitions
    )


async def test_members_the_broker_lists_without_partitions_show_those_they_recorded_with_their_lag() -> None:
    registry = InMemoryMemberRegistry()
    await _report(registry, A, 2, 0)
    await _report(registry, B, 1)
    members = await _status(BrokerView(_tansu(A), _tansu(B)), registry)
    assert members == [
        {"memberId": A + SUFFIX, "clientId": A, "host": "web-1", "pid": 4242, "partitions": [0, 2], "lag": 5},
        {"memberId": B + SUFFIX, "clientId": B, "host": "web-1", "pid": 4242, "partitions": [1], "lag": 3},
    ]


async def test_a_record_of_a_consumer_the_broker_no_longer_lists_never_shows() -> None:
    registry = InMemoryMemberRegistry()
    await _report(registry, A, 0, 1, 2)
    await _report(registry, B, 0, 1, 2)  # died without forgetting its record
    await _report(registry, A + "-x", 1, group="another-group")  # not this group's
    members = await _status(BrokerView(_tansu(A)), registry)
    assert [(m["clientId"], m["partitions"]) for m in members] == [(A, [0, 1, 2])]


async def test_the_status_forgets_records_no_live_member_owns_once_they_are_a_minute_old() -> None:
    now = datetime.now(UTC)
    written = [now - timedelta(minutes=5)]
    registry = InMemoryMemberRegistry(clock=lambda: written[0])
    await _report(registry, A, 0, 1, 2)  # live, recorded long ago
    await _report(registry, B, 0, 1, 2)  # died long ago without forgetting its record
    await _report(registry, B + "-x", 1, group="another-group")  # another group's: not judged here
    written[0] = now - timedelta(seconds=5)
    fresh = "koppelhub-projector-cccccccccccc"  # joining: recorded, not yet listed by this look
    await _report(registry, fresh)
    await _status(BrokerView(_tansu(A)), registry)
    assert [r.client_id for r in await registry.recorded()] == [A, B + "-x", fresh]


async def test_an_assignment_the_broker_reports_is_kept() -> None:
    registry = InMemoryMemberRegistry()
    await _report(registry, A, 1, 2)  # a record that lags behind the broker's own answer
    members = await _status(BrokerView(GroupMember("m-1", A, "/10.0.0.1", (0,))), registry)
    assert [(m["clientId"], m["host"], m["partitions"], m["pid"], m["lag"]) for m in members] == [
        (A, "/10.0.0.1", [0], 4242, 5)
    ]


async def test_a_member_without_a_record_shows_no_partitions_and_no_lag() -> None:
    members = await _status(BrokerView(_tansu(A)), InMemoryMemberRegistry())
    assert [(m["partitions"], m["pid"], m["lag"]) for m in members] == [([], None, 0)]


async def test_the_status_answers_with_the_brokers_view_when_the_records_cannot_be_read() -> None:
    class Unreadable(InMemoryMemberRegistry):
        async def recorded(self) -> list[RecordedMember]:
            raise RetriableError("the database is restarting")

    members = await _status(BrokerView(_tansu(A)), Unreadable())
    assert [(m["memberId"], m["partitions"]) for m in members] == [(A + SUFFIX, [])]


def test_koppelhub_status_prints_each_member_with_its_partitions_host_pid_and_lag() -> None:
    doc = {
        "log": {
            "topic": TOPIC,
            "group": GROUP,
            "groupState": "Stable",
            "lag": 8,
            "partitions": [],
            "members": [
                {
                    "memberId": A + SUFFIX,
                    "clientId": A,
                    "host": "web-1",
                    "pid": 4242,
                    "partitions": [0, 2],
                    "lag": 5,
                }
            ],
        },
        "dlq": {"topic": "events.dlq", "records": 0},
        "outbox": {"pending": 0, "failed": 0, "dead": 0, "oldestPendingAgeSeconds": None},
        "subscriptions": {"byStatus": {}, "failing": []},
        "connectors": {"total": 0, "running": 0, "failing": 0, "queued": 0, "failingConnectors": []},
        "imports": {"running": 0, "queued": 0, "failed": 0, "failedImports": []},
    }
    assert (
        f"  member {A + SUFFIX} (web-1 pid 4242): partitions [0, 2], lag 5" in render_status(doc).splitlines()
    )
