"""The supervisor of one process: starts its roles as tasks, answers readiness, stops them in order.

It knows roles only through what the composition root (``hub.bootstrap.wire``) hands it: a
coroutine per role, the API server, the checks behind ``/readyz`` and the adapters to close.
Shutdown follows the order that loses nothing: stop intake (the API, then the connectors, which
publish too), drain the projector until everything accepted is in PostgreSQL, let the dispatcher
(and retention) finish what they have in flight, then close the adapters in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling (the hub decides the shutdown order) and without
    its ten wake-ups a second: uvicorn's main loop looks at ``should_exit`` every 100 ms, which
    was most of an idle API process's CPU. Here setting ``should_exit`` wakes the loop, which
    otherwise ticks once a second (the ``Date`` header's resolution)."""

    _exit: asyncio.Event | None = None

    @property
    def should_exit(self) -> bool:
        return self._exit is not None and self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if self._exit is None:
            self._exit = asyncio.Event()
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def main_loop(self) -> None:
        counter = 0  # uvicorn's on_tick renews the Date header when counter % 10 == 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            assert self._exit is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@dataclass
class Signals:
    """What the supervisor sets, in this order, to stop the roles."""

    stop_connectors: asyncio.Event = field(default_factory=asyncio.Event)
    drain: asyncio.Event = field(default_factory=asyncio.Event)
    stop_work: asyncio.Event = field(default_factory=asyncio.Event)


#: A role's main loop, given the signals that stop it.
RoleRun = Callable[[Signals], Coroutine[Any, Any, None]]
Close = Callable[[], Awaitable[Any]]


@dataclass
class Wiring:
    """Everything ``wire`` opened and built for one process; the supervisor runs and closes it.

    ``runs`` are started in their order; ``checks`` answer ``/readyz`` besides the roles' tasks;
    ``closers`` are awaited in reverse order once every role stopped."""

    runs: dict[str, RoleRun] = field(default_factory=dict)
    server: QuietServer | None = None
    checks: dict[str, Callable[[], Awaitable[bool]]] = field(default_factory=dict)
    closers: list[Close] = field(default_factory=list)
    #: False while a role is up but not working (the projector between restarts).
    healthy: dict[str, Callable[[], bool]] = field(default_factory=dict)


class Supervisor:
    """Runs one :class:`Wiring`: :meth:`launch`, :meth:`wait`, :meth:`shutdown`."""

    def __init__(self) -> None:
        #: Set by a signal handler, a crashed role or a test: the process should stop.
        self.stop_intake = asyncio.Event()
        self.wiring = Wiring()
        self._signals = Signals()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def launch(self, wiring: Wiring) -> None:
        """Start every role of ``wiring`` as a task."""
        self.wiring = wiring
        for name, run in wiring.runs.items():
            task = asyncio.create_task(run(self._signals), name=name)
            task.add_done_callback(self._role_ended)
            self._tasks[name] = task

    def _role_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("role_crashed", role=task.get_name(), error=repr(task.exception()))
            self.stop_intake.set()  # a crashed role takes the process down; the supervisor restarts it

    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """The running roles by name (what a bounded shutdown reports as left undone)."""
        return dict(self._tasks)

    @property
    def server(self) -> QuietServer | None:
        return self.wiring.server

    async def wait_started(self, within: float = 30.0) -> None:
        """Return when the API listens (if this process serves it)."""
        deadline = asyncio.get_running_loop().time() + within
        while self.server is not None and not self.server.started:
            if asyncio.get_running_loop().time() > deadline or self._tasks["api"].done():
                raise RuntimeError("the API did not start")
            await asyncio.sleep(0.02)

    async def readiness(self) -> dict[str, bool]:
        checks = {name: await check() for name, check in self.wiring.checks.items()}
        for name, task in self._tasks.items():
            checks[name] = not task.done()
        for name, healthy in self.wiring.healthy.items():
            checks[name] = checks.get(name, True) and healthy()
        return checks

    async def wait(self) -> None:
        """Block until a role ends or :attr:`stop_intake` is set."""
        waiter = asyncio.create_task(self.stop_intake.wait())
        await asyncio.wait({waiter, *self._tasks.values()}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _settle(self, name: str, within: float) -> None:
        if name in self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(self._tasks[name]), timeout=within)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the shutdown itself is cancelled (its time is up)
                # the role's task was cancelled (it died with its broker): nothing to wait for
            except Exception:  # noqa: BLE001, S110 - a crashed role was logged by _role_ended
                pass

    async def shutdown(self, *, drain_timeout: float = 60.0, log_gone: bool = False) -> None:
        """Stop intake, drain what was accepted, finish in-flight deliveries, close adapters.

        With ``log_gone`` (the embedded broker died, and its log with it) there is nothing to
        drain: the projector stops at once; what it had not projected is in the write-ahead log,
        relayed when the roles start again."""
        if self.server is not None:
            self.server.should_exit = True
            await self._settle("api", 10)
        self._signals.stop_connectors.set()  # connectors publish too: stop them before the drain
        await self._settle("connectors", drain_timeout)
        if log_gone:
            log.warning("projector_not_drained", reason="the embedded broker died with its log")
        else:
            self._signals.drain.set()
            await self._settle("projector", drain_timeout)
        self._signals.stop_work.set()
        for name, task in self._tasks.items():
            try:
                await asyncio.wait_for(task, timeout=drain_timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("role_stop_timed_out", role=name)
            except Exception as e:  # noqa: BLE001 - already logged by _role_ended
                log.debug("role_stopped_with_error", role=name, error=repr(e))
        for close in reversed(self.wiring.closers):
            with contextlib.suppress(Exception):
                await close()
        log.info("hub_stopped", roles=list(self._tasks))
