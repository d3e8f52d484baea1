"""Background retention cleanup: runs in the dispatcher role every so often."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from hub.errors import RetriableError
from hub.ports import Retention

log = structlog.get_logger(__name__)


async def run_retention(
    store: Retention,
    stop: asyncio.Event,
    *,
    interval_seconds: float,
    attempt_days: float,
    archive_days: float,
) -> None:
    """Clean up at start and then every ``interval_seconds`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            removed = await store.cleanup(
                attempt_seconds=attempt_days * 86_400, archive_seconds=archive_days * 86_400
            )
            if removed.attempts or removed.deliveries or removed.events:
                log.info(
                    "retention_cleaned",
                    attempts=removed.attempts,
                    deliveries=removed.deliveries,
                    events=removed.events,
                )
        except RetriableError as e:
            log.warning("retention_skipped", error=str(e))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
