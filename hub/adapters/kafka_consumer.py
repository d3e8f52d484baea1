"""Kafka adapter of the :class:`hub.ports.LogConsumer` port: one aiokafka consumer-group member.

Everything aiokafka-specific about reading the log lives here: the consumer's settings, the
rebalance listener that tells an empty assignment from none yet, decoding records in the
CloudEvents Kafka binding, the high-water marks behind :meth:`caught_up` (not
``end_offsets()``, which Tansu gets wrong, INFRA.md), and the translation of driver errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from hub.adapters.kafka import make_consumer
from hub.errors import RecordTooLarge, RetriableError
from hub.ports.log import LogRecord
from hub.settings import KafkaSettings
from schemas import EnvelopeError
from schemas.bindings import from_kafka_record

__all__ = ["KafkaLogConsumer"]

log = structlog.get_logger(__name__)


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Whether the group has assigned this member its partitions yet (perhaps none)."""

    def __init__(self) -> None:
        self.assigned = False

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.assigned = False

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.assigned = True


def decode(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    max_bytes: int | None = None,
    timestamp_ms: int | None = None,
) -> LogRecord:
    """A record with its CloudEvent, or with the reason it is not one: larger than
    ``max_bytes`` (not even decoded), not a valid CloudEvent, or unreadable for a reason nobody
    foresaw (logged; the projector parks it rather than die of it)."""
    raw = LogRecord(topic, partition, offset, key, value, headers, timestamp_ms=timestamp_ms)
    if max_bytes is not None:
        size = len(value or b"") + len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > max_bytes:
            return replace(raw, error=RecordTooLarge(f"record is {size} bytes, more than {max_bytes}"))
    try:
        event = from_kafka_record(key, value, list(headers))
    except EnvelopeError as e:
        return replace(raw, error=e)
    except Exception as e:  # policy: one record never stops the projector
        log.exception("log_record_unreadable", origin=f"{topic}/{partition}/{offset}")
        return replace(raw, error=e)
    return replace(raw, event=event)


class KafkaLogConsumer:
    """A member of ``settings.consumer_group`` reading ``settings.topic``."""

    def __init__(
        self,
        bootstrap: str,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        max_record_bytes: int | None = None,
    ):
        self._max_record_bytes = max_record_bytes
        self._membership = _Membership()
        self._consumer: AIOKafkaConsumer = make_consumer(
            bootstrap, settings, group_id=group_id, listener=self._membership
        )

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as e:
            raise RetriableError(f"cannot join the consumer group: {e}") from e

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        try:
            batch = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as e:
            raise RetriableError(f"cannot read the log: {e}") from e
        return [
            decode(
                *(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers), self._max_record_bytes),
                timestamp_ms=r.timestamp,
            )
            for tp, records in batch.items()
            for r in records
        ]

    async def commit(self, positions: Mapping[int, int]) -> bool:
        if not positions:
            return True
        topic = next(iter(self._consumer.subscription()))
        try:
            await self._consumer.commit({TopicPartition(topic, p): o for p, o in positions.items()})
        except (CommitFailedError, KafkaError) as e:
            # A rebalance took the partitions away; the new owner replays and dedupe skips.
            log.warning("offset_commit_failed", error=str(e))
            return False
        return True

    async def caught_up(self) -> bool:
        assignment = self._consumer.assignment()
        if not assignment:
            return self._membership.assigned
        for tp in assignment:
            highwater = self._consumer.highwater(tp)
            if highwater is None or await self._consumer.position(tp) < highwater:
                return False
        return True
