"""Tables of the write-ahead log (migration 0008): events accepted by the API but perhaps not
yet projected, and every dead-lettered record, kept in PostgreSQL so that an embedded broker
(Tansu keeps its log in memory) can lose its log without losing either. Defined on the hub's
one ``metadata`` so the drift test sees them."""

from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Column, DateTime, Identity, Index, LargeBinary, Table, Text, func

from hub.adapters.postgres.tables import metadata

__all__ = ["dead_letter_log", "event_wal"]

event_wal = Table(
    "event_wal",
    metadata,
    Column("seq", BigInteger, Identity(always=False), primary_key=True),
    Column("source", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    # The Kafka record as the API sent it (binary content mode), replayed as it was.
    Column("key", LargeBinary),
    Column("value", LargeBinary),
    Column("header_names", ARRAY(Text), nullable=False),
    Column("header_values", ARRAY(LargeBinary), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_event_wal_event", "source", "event_id"),
)

dead_letter_log = Table(
    "dead_letter_log",
    metadata,
    Column("seq", BigInteger, Identity(always=False), primary_key=True),
    Column("key", LargeBinary),
    Column("value", LargeBinary),
    Column("header_names", ARRAY(Text), nullable=False),
    Column("header_values", ARRAY(LargeBinary), nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
