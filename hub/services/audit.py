"""Audit retention: the one code path that removes audit entries (KOPPELHUB_AUDIT_RETENTION_DAYS)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from hub.errors import RetriableError
from hub.ports.audit import AuditLog

log = structlog.get_logger(__name__)


async def run_audit_retention(
    audit: AuditLog, stop: asyncio.Event, *, days: float, interval_seconds: float
) -> None:
    """Remove entries older than ``days`` at start and then every ``interval_seconds``."""
    while not stop.is_set():
        try:
            removed = await audit.cleanup(older_than_days=days)
            if removed:
                log.info("audit_retention_cleaned", entries=removed)
        except RetriableError as e:
            log.warning("audit_retention_skipped", error=str(e))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
