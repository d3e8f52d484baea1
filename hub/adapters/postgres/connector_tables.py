"""Tables of connectors and imports (migration 0005): connector instances with their
checkpoint and status, the fingerprints of what each source published, uploads and their
row errors. Defined on the hub's one ``metadata`` so the drift test sees them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from hub.adapters.postgres.tables import metadata

__all__ = ["connector_fingerprints", "connector_runs", "connectors", "import_errors", "imports"]

connectors = Table(
    "connectors",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("kind", Text, nullable=False),
    Column("organisatie", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("schedule_seconds", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    # False: the config only writes back (migration 0016); the claim never takes it to poll.
    Column("polls", Boolean, nullable=False, server_default=text("true")),
    Column("checkpoint", JSONB),
    Column("next_run_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_counts", JSONB),
    Column("events_published", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_connectors_due", "next_run_at", postgresql_where=text("enabled")),
    Index("ix_connectors_organisatie", "organisatie"),
)

# What a source published last, per object: a change is a different hash. hash NULL = withdrawn.
# generation counts the events published for the object (it goes into the event id); seen is
# the last run that read the object, so a full run can find what disappeared.
connector_fingerprints = Table(
    "connector_fingerprints",
    metadata,
    Column("source", Text, nullable=False),
    Column("organisatie", Text, nullable=False),
    Column("objecttype", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("hash", Text),
    Column("generation", Integer, nullable=False),
    Column("seen", UUID(as_uuid=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint(
        "source", "organisatie", "objecttype", "object_id", name="pk_connector_fingerprints"
    ),
    Column("data", JSONB),  # migration 0006: the fields a pass-through item published last
)

# Migration 0006: one row per connector run, newest first by (started_at, id).
connector_runs = Table(
    "connector_runs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column(
        "connector_id",
        UUID(as_uuid=True),
        ForeignKey("connectors.id", ondelete="CASCADE", name="fk_connector_runs_connector"),
        nullable=False,
    ),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", Text, nullable=False, server_default="running"),
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("checkpoint_before", JSONB),
    Column("checkpoint_after", JSONB),
    Column("diagnostics", JSONB),
    Index("ix_connector_runs_newest", "connector_id", "started_at", "id"),
)

imports = Table(
    "imports",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("organisatie", Text, nullable=False),
    Column("objecttype", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("rows_read", BigInteger, nullable=False, server_default="0"),
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("report", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text),
    Column("lease_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_imports_claim", "created_at", postgresql_where=text("status IN ('queued', 'running')")),
)

import_errors = Table(
    "import_errors",
    metadata,
    Column(
        "import_id",
        UUID(as_uuid=True),
        ForeignKey("imports.id", ondelete="CASCADE", name="fk_import_errors_import"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("row", BigInteger),
    Column("column", Text, nullable=False),
    Column("message", Text, nullable=False),
    PrimaryKeyConstraint("import_id", "seq", name="pk_import_errors"),
)
