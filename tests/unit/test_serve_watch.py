"""The embedded-service watcher of a ``run`` process (``hub.serve._watch``) runs only where there
is something to watch (issue 17: idle CPU).

A child of ``run`` gets the parent's broker and database as addresses: its parent watches them.
Its watcher handed a no-op to a worker thread every second, for as long as the child lived.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from hub.bootstrap import HubProcess
from hub.embedded import Infrastructure
from hub.serve import _watch


async def test_a_process_that_started_no_embedded_service_has_no_watcher_running() -> None:
    child_of_run = Infrastructure(kafka_bootstrap="127.0.0.1:9092", database_url="postgresql://db/koppelhub")
    hub = cast(HubProcess, SimpleNamespace(stop_intake=asyncio.Event()))  # never set: the hub runs on
    died: list[str] = []
    # Before: the watcher looped (a thread hop a second) until the hub stopped; now it is done.
    await asyncio.wait_for(_watch(hub, child_of_run, died), timeout=10)
    assert died == []
    assert not hub.stop_intake.is_set()
