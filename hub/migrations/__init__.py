"""Alembic migrations of the hub's PostgreSQL schema (run with ``koppelhub migrate``)."""
