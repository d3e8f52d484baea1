"""What the supervisor's shutdown tells the projector: drain what was accepted, unless the
embedded broker died with its log (then nothing is left to drain and it stops at once)."""

from __future__ import annotations

import asyncio

import pytest

from hub.supervisor import Signals, Supervisor, Wiring


@pytest.mark.parametrize(("log_gone", "told"), [(False, "drain"), (True, "stop_work")])
async def test_the_projector_drains_unless_the_log_is_gone(log_gone: bool, told: str) -> None:
    heard: list[str] = []

    async def projector(signals: Signals) -> None:
        waits = {
            asyncio.ensure_future(signals.drain.wait()): "drain",
            asyncio.ensure_future(signals.stop_work.wait()): "stop_work",
        }
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        heard.extend(waits[d] for d in done)

    supervisor = Supervisor()
    supervisor.launch(Wiring(runs={"projector": projector}))
    await asyncio.sleep(0)  # the role waits for its signals
    async with asyncio.timeout(10):
        await supervisor.shutdown(drain_timeout=60, log_gone=log_gone)
    assert heard == [told]
