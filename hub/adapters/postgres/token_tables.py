"""The API token table (migration 0007): the hash of each token's secret, never the secret."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Table, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from hub.adapters.postgres.tables import metadata

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("organisatie", Text),
    Column("sources", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text),
    Column("revoked_at", DateTime(timezone=True)),
)
