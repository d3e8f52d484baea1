"""The Alembic migrations and the SQLAlchemy metadata describe the same schema."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg.types.json import Jsonb
from sqlalchemy import create_engine, inspect, pool

import hub.adapters.postgres.landscape_tables  # noqa: F401  (registers the landscape tables)
from hub.adapters.postgres import audit as _audit  # noqa: F401 - registers its table
from hub.adapters.postgres import connector_tables as _connector_tables  # noqa: F401 - registers its tables
from hub.adapters.postgres import members as _members  # noqa: F401 - registers its table
from hub.adapters.postgres import token_tables as _token_tables  # noqa: F401 - registers its table
from hub.adapters.postgres import write_ahead_tables as _write_ahead_tables  # noqa: F401 - registers its tables
from hub.adapters.postgres.engine import libpq_url, migrate, sqlalchemy_url
from hub.adapters.postgres.tables import metadata
from hub.embedded import Infrastructure
from tests.conftest import database_url_for

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    migrate(database_url)  # the fixture's database is migrated already
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0023"
    finally:
        engine.dispose()


def test_subscriptions_have_no_owner_column_beside_their_organisatie(database_url: str) -> None:
    """Ownership is ``organisatie`` alone: the ``owner`` column of migration 0001, never written
    or read, is dropped (0011) so nobody mistakes it for a second owner."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("subscriptions")}
    finally:
        engine.dispose()
    assert "organisatie" in columns and "owner" not in columns


def test_the_projectors_text_keys_compare_bytewise_as_the_table_definitions_say(database_url: str) -> None:
    """The dedupe, archive-type and watermark keys are ``COLLATE "C"`` (0020: a memcmp per
    B-tree comparison instead of strcoll). Alembic's comparison ignores collations, so this
    holds the migration and the table definitions together for them."""
    keys = {
        ("processed_events", "source"),
        ("processed_events", "event_id"),
        ("event_archive", "type"),
        ("landscape_watermarks", "objecttype"),
        ("landscape_watermarks", "object_id"),
        ("landscape_watermarks", "source"),
    }
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            migrated = {
                (table, name): {
                    c["name"]: getattr(c["type"], "collation", None) for c in inspect(conn).get_columns(table)
                }[name]
                for table, name in keys
            }
    finally:
        engine.dispose()
    defined = {
        (table, name): getattr(metadata.tables[table].c[name].type, "collation", None) for table, name in keys
    }
    assert migrated == dict.fromkeys(keys, "C")
    assert defined == migrated


def test_existing_write_back_subscriptions_get_their_connectors_organisation(infra: Infrastructure) -> None:
    """0023: a write-back subscription made hub-wide before gets its connector's organisation,
    unless the connector applies other organisations' events too."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = database_url_for(infra.database_url, name)
    try:
        migrate(url, "0022")
        own, wide = uuid.uuid4(), uuid.uuid4()
        shapes: list[object] = [{"organisaties": None}, {"organisaties": []}, {"organisaties": ["gem-a"]}]
        mine = {uuid.uuid4(): shape for shape in [*shapes, {"types": ["x.v1"]}]}  # the last: no organisaties
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            for connector, write_back in [(own, True), (wide, {"organisaties": ["gem-a", "gem-b"]}),
                                          *mine.items()]:  # fmt: skip
                conn.execute(
                    "INSERT INTO connectors (id, kind, organisatie, config, schedule_seconds) "
                    "VALUES (%s, 'signalen', 'gem-a', %s, 60)",
                    (connector, Jsonb({"writeBack": write_back})),
                )
                conn.execute(
                    "INSERT INTO subscriptions (id, sink, protocol, config, secret) "
                    "VALUES (%s, %s, 'koppelhub-connector', %s, 'whsec_x')",
                    (connector, f"connector:{connector}", Jsonb({"connector": str(connector)})),
                )
            conn.execute(
                "INSERT INTO subscriptions (id, sink, secret) VALUES (%s, 'https://x.example', 's')",
                (uuid.uuid4(),),
            )

        migrate(url)

        with psycopg.connect(libpq_url(url)) as conn:
            owners = dict(conn.execute("SELECT id, organisatie FROM subscriptions").fetchall())
        assert [owners.pop(c) for c in (own, *mine)] == ["gem-a"] * 5
        assert owners.pop(wide) is None
        assert list(owners.values()) == [None]  # a subscription that is no connector's: as it was
    finally:
        with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
