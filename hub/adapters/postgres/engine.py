"""Connecting to PostgreSQL: URL forms, the async engine, and migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import make_url, pool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` (what users and pgserver write) as a psycopg 3 SQLAlchemy URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL as libpq takes it (for psycopg's own connections: LISTEN)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str, *, pool_size: int = 10, pre_ping: bool = True, synchronous_commit: bool = True
) -> AsyncEngine:
    """The process's async engine. ``pre_ping`` tests each connection with a round trip when it
    is checked out, so a connection PostgreSQL dropped is replaced before it fails a statement;
    without it the first statement on such a connection fails (retriable) and SQLAlchemy drops
    the pool's older connections. ``synchronous_commit=False``: a commit returns before its
    write-ahead log is on disk; only for a user that makes its commits durable itself before
    anything relies on them (the projector's store: ``PostgresProjectionStore.durable``)."""
    options = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        connect_args=options,
    )


def projection_engine(url: str, members: int) -> AsyncEngine:
    """The projector's own pool, as the hub and the projection benchmark build it.

    - No ping per checkout: it was one more round trip before every batch's transaction, on the
      way of every event (issue 17: latency). After a PostgreSQL restart one transaction fails
      retriably and the projector applies it again.
    - Commits that do not wait for the disk: the projector makes them durable
      (``PostgresProjectionStore.durable``) before it commits log positions past them.
    - Two connections per member: its batch's transaction and its flush run at the same time;
      with one, many flushes started and ended a PostgreSQL backend (a process): about 200 in a
      60 s latency run instead of about 25."""
    return create_engine(url, pool_size=2 * members, pre_ping=False, synchronous_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe with several processes starting)."""
    engine = create_sync_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        # Two roles starting at once must not both create the tables.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(736_525_001)")
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()
