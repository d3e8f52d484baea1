"""SQLAlchemy Core tables of the hub. Alembic migrations create them; a test checks that
the migrated schema and this metadata do not drift apart (``alembic check`` semantics)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from subscriptions.lifecycle import DEAD, OPEN


def sql_literals(values: tuple[str, ...]) -> str:
    """Our own state constants as SQL literals: literals, not parameters, so that the planner
    can use the partial indexes below (their predicate must be provably implied)."""
    return ", ".join(f"'{v}'" for v in values)


#: "The delivery is open" (:data:`subscriptions.lifecycle.OPEN`), as SQL.
OPEN_SQL = f"status IN ({sql_literals(OPEN)})"
#: Open or dead: what the operator status counts (its partial index, migration 0010).
UNDELIVERED = (*OPEN, DEAD)
UNDELIVERED_SQL = f"status IN ({sql_literals(UNDELIVERED)})"


def unleased(alias: str) -> str:
    """No dispatcher holds a lease on the delivery ``alias`` (its claim is over or expired), as
    SQL: with ``next_attempt_at <= now()`` what makes an open delivery due (migration 0019)."""
    return f"({alias}.leased_until IS NULL OR {alias}.leased_until <= now())"


metadata = MetaData()

processed_events = Table(
    "processed_events",
    metadata,
    # Byte order (migration 0020): a B-tree comparison is a memcmp, not strcoll, per event.
    Column("source", Text(collation="C"), nullable=False),
    Column("event_id", Text(collation="C"), nullable=False),
    Column("archive_seq", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("source", "event_id", name="pk_processed_events"),
)

#: Unlogged: crash recovery empties it, so its token changes whenever a crash may have lost the
#: projector's last asynchronous commits (migration 0021, ``PostgresProjectionStore.durable``).
projection_incarnation = Table(
    "projection_incarnation",
    metadata,
    Column("id", Boolean, primary_key=True, server_default=true()),
    Column("token", UUID(as_uuid=True), nullable=False),
    CheckConstraint("id", name="ck_projection_incarnation_one_row"),
    prefixes=["UNLOGGED"],
)

event_archive = Table(
    "event_archive",
    metadata,
    Column("seq", BigInteger, Identity(always=False), primary_key=True),
    Column("source", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text(collation="C"), nullable=False),  # indexed: byte order (migration 0020)
    Column("subject", Text),
    Column("time", DateTime(timezone=True)),
    Column("ordering_key", Text),
    Column("event", JSONB, nullable=False),
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    Column("accepted_at", DateTime(timezone=True)),  # migration 0013: the log record's timestamp
    Column("archived_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_event_archive_type", "type"),
    Index("ix_event_archive_archived_at", "archived_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("sink", Text, nullable=False),
    Column("protocol", Text, nullable=False, server_default="HTTP"),
    Column("source", Text),
    Column("types", JSONB),
    Column("filters", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("secret", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="active"),
    Column("status_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Delivery policy (migration 0004); NULL means "the global setting".
    Column("retry_schedule", JSONB),
    Column("ordering", Text, nullable=False, server_default="key"),
    Column("max_concurrency", Integer),
    Column("max_rate", Float),
    Column("content_mode", Text, nullable=False, server_default="structured"),
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("handshake", Text),
    Column("allowed_rate", Float),
    Column("failing_since", DateTime(timezone=True)),
    # Health shown with the subscription (migration 0009): failures in a row, the newest error.
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    # Sink authentication and egress (OAuth2, client certificate, proxy): write-only secrets.
    Column("auth", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("organisatie", Text),  # migration 0007: the owning organisation; NULL: hub-wide
    # The operator status's failing subscriptions, in its order (migration 0014).
    Index(
        "ix_subscriptions_failing",
        "failing_since",
        "updated_at",
        postgresql_where=text("failing_since IS NOT NULL OR status = 'disabled'"),
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column(
        "subscription_id",
        UUID(as_uuid=True),
        ForeignKey("subscriptions.id", ondelete="CASCADE", name="fk_deliveries_subscription"),
        nullable=False,
    ),
    Column("archive_seq", BigInteger, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("ordering_key", Text),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    # Attempts before the last manual retry: the schedule restarts at attempts - retry_base.
    Column("retry_base", Integer, nullable=False, server_default="0"),
    # The claim's lease (migration 0019): an open delivery is due at the later of next_attempt_at
    # and leased_until. No index or index predicate may read this column: then the claim, which
    # sets only it, is a HOT update (no index entries), on the room fillfactor leaves in the page.
    Column("leased_until", DateTime(timezone=True)),
    # Who holds the lease: the claiming dispatcher's key (migration 0022, lease_holders.py); no
    # index either.
    Column("leased_by", Integer),
    # Per-key order: "is an earlier delivery for this key still open?"
    Index(
        "ix_deliveries_open_by_key",
        "subscription_id",
        "ordering_key",
        "archive_seq",
        postgresql_where=text(OPEN_SQL),
    ),
    Index("ix_deliveries_subscription", "subscription_id", "archive_seq"),
    # The fair claim: each subscription's due rows, oldest first.
    Index(
        "ix_deliveries_due_by_subscription",
        "subscription_id",
        "next_attempt_at",
        "archive_seq",
        postgresql_where=text(OPEN_SQL),
    ),
    # The claim's due rows without an ordering key (``ordering: key`` subscriptions read their
    # keyed rows' heads from ix_deliveries_open_by_key instead; migration 0015).
    Index(
        "ix_deliveries_due_unkeyed",
        "subscription_id",
        "next_attempt_at",
        "archive_seq",
        postgresql_where=text(f"{OPEN_SQL} AND ordering_key IS NULL"),
    ),
    # Retention: "does a delivery still need this archived event?"
    Index("ix_deliveries_archive_seq", "archive_seq"),
    # Operator status (migration 0010): count what is not delivered, find the oldest open row.
    Index(
        "ix_deliveries_undelivered",
        "status",
        "created_at",
        postgresql_where=text(UNDELIVERED_SQL),
    ),
    postgresql_with={"fillfactor": "70"},
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "delivery_id",
        UUID(as_uuid=True),
        ForeignKey("deliveries.id", ondelete="CASCADE", name="fk_delivery_attempts_delivery"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_excerpt", Text),
    Index("ix_delivery_attempts_delivery", "delivery_id"),
    Index("ix_delivery_attempts_started_at", "started_at"),
)
