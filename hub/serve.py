"""How a ``koppelhub`` command serves its roles: settings, the embedded services, one process
(``_run_single``) or ``run``'s supervised children (``_run_children``), the last-resort exit and
the start-up banner. :mod:`hub.cli` holds the commands themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import structlog

from hub.bootstrap import (
    KAFKA_ROLES,
    RELAY_FD_ENV,
    ROLES,
    HubProcess,
    admin_token,
    create_topics,
    observability,
    span_relay,
)
from hub.bootstrap import migrate as migrate_schema
from hub.children import HURRY_SECONDS, INTAKE_RESTART_SECONDS, Children, stop_on_signals, supervise
from hub.datadir import own_data_dir
from hub.embedded import Infrastructure, provision
from hub.errors import ConfigurationError, KoppelhubError, RetriableError
from hub.logging import configure_logging
from hub.services.collector import freeze_start_up_heap
from hub.settings import Settings

T = TypeVar("T")
log = structlog.get_logger(__name__)


def load_settings() -> Settings:
    settings = Settings()
    configure_logging(settings)
    return settings


def provision_for(settings: Settings, *, broker_needed: bool = True) -> Infrastructure:
    try:
        return provision(settings, broker_needed=broker_needed)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from e


#: Exit status when an embedded broker or database died under the hub (EX_TEMPFAIL): the
#: process supervisor (systemd, Docker, Kubernetes) restarts ``run``, which starts them anew.
EXIT_EMBEDDED_DIED = 75


def serve(roles: tuple[str, ...]) -> None:
    settings = load_settings()
    # `run` spreads its roles over child processes (hub/children.py) unless KOPPELHUB_WORKERS=1.
    workers = settings.worker_processes() if roles == ROLES else 1
    listener = None
    if "api" in roles:
        # Before anything starts or is made: a taken port fails in a second. The children
        # share this socket; one process lets uvicorn bind it anew.
        listener = _listen(settings)
    # Before prometheus-client is first imported: the roles of every process on this data dir
    # write their metrics there and the API's /metrics adds them up.
    observability(settings)
    with contextlib.ExitStack() as owned:
        if roles == ROLES:  # `run` owns its data dir's embedded services: one run at a time
            try:
                owned.enter_context(own_data_dir(settings.data_dir))
            except ConfigurationError as e:
                raise click.ClickException(str(e)) from e
        new_token = None
        if "api" in roles:
            token, generated = admin_token(settings)  # made now, so the banner shows it once
            new_token = token if generated else None
        infra = provision_for(settings, broker_needed=bool(KAFKA_ROLES & set(roles)))
        died: list[str] = []
        last_resort = LastResort()
        try:
            migrate_schema(infra.database_url)  # idempotent, serialised by an advisory lock
            if workers > 1 and listener is not None:
                _run_children(settings, infra, workers, listener, new_token, died, last_resort)
            else:
                _run_single(settings, infra, roles, listener, new_token, died, last_resort)
        except KoppelhubError as e:
            raise click.ClickException(str(e)) from e
        finally:
            infra.close()
            if listener is not None:
                listener.close()
        last_resort.disarm()
    if died:
        what = " and ".join(died)
        click.echo(f"Koppelhub stopped: the embedded {what} died; exiting for a restart", err=True)
        sys.exit(EXIT_EMBEDDED_DIED)


#: Failed starts of the roles in a row on an embedded broker started again, before ``run`` exits 75.
MAX_FAILED_RESTARTS = 5


def _run_single(
    settings: Settings,
    infra: Infrastructure,
    roles: tuple[str, ...],
    listener: socket.socket | None,
    new_token: str | None,
    died: list[str],
    last_resort: LastResort,
) -> None:
    """Every role in this process. When the embedded broker died, :func:`_watch` started it
    again: the roles are started anew on it, as at a start (the write-ahead log is relayed
    before the API takes a request); new connections wait meanwhile in ``listener``, which
    this process keeps (the API serves a copy of it each time)."""
    token = new_token
    asked = threading.Event()  # a SIGTERM or SIGINT: stop, never start the roles again
    failed = -1  # failed starts in a row on a broker started again (-1: the first start)
    while True:
        sockets = [socket.socket(fileno=os.dup(listener.fileno()))] if listener is not None else None
        try:
            run_loop(
                run_process(settings, infra, roles, token, died, last_resort, sockets=sockets, asked=asked)
            )
            failed = 0
        except RetriableError:
            # The broker, just started again, refused the relay: try again, as a child would be.
            if failed < 0 or failed >= MAX_FAILED_RESTARTS:
                raise
            failed += 1
            died[:] = ["broker"]
            time.sleep(failed)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: asked.set())
        if asked.is_set() or died != ["broker"] or infra.broker is None:
            return
        if not infra.broker.restart():
            return  # the caller exits 75
        last_resort.disarm()
        died.clear()
        token = None
        click.echo("Koppelhub: the embedded broker died and was started again; so are the roles", err=True)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (from ``uvicorn[standard]``) when it is installed, else asyncio's
    own loop: every hub process runs its roles this way."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency; kept for platforms without wheels
        return asyncio.run(main)
    return uvloop.run(main)


def _run_children(
    settings: Settings,
    infra: Infrastructure,
    workers: int,
    listener: socket.socket,
    new_token: str | None,
    died: list[str],
    last_resort: LastResort,
) -> None:
    """``run`` as a parent of role processes (hub/children.py): start, tend, stop in order."""
    stop = stop_on_signals()
    write_ahead = settings.write_ahead if settings.write_ahead is not None else infra.broker is not None
    relay = span_relay()  # the children's spans, exported by this process (idle meanwhile)
    if relay is not None:
        # Spans made again and exported are this process's only steady garbage: its start-up
        # heap is frozen as every role process's is (full collections were half its CPU).
        freeze_start_up_heap()
    children = Children(
        workers,
        listener,
        infra,
        write_ahead,
        settings.work_processes,
        settings.work_nice,
        inherited=None if relay is None else {RELAY_FD_ENV: relay.child_end.fileno()},
        dispatch=settings.dispatch_processes,
    )
    try:
        children.start()
        _announce_children(children, settings, infra, listener, new_token)
        topics = lambda: run_loop(create_topics(infra.kafka_bootstrap, settings))  # noqa: E731
        supervise(children, infra, died, stop, topics)
    except RuntimeError as e:
        if not (gone := infra.dead()):
            raise click.ClickException(str(e)) from e
        died.extend(gone)  # a child could not start because the broker or database died
    finally:
        limit = settings.shutdown_timeout_seconds
        last_resort.arm(limit + LAST_RESORT_GRACE_SECONDS, died)
        click.echo("Koppelhub is stopping: intake closed, draining what was accepted…", err=True)
        if killed := children.stop(limit, services_died=bool(died)):
            click.echo(
                f"Koppelhub stopped within {limit:g} s without finishing: {', '.join(killed)} left undone; "
                "accepted events not yet projected are kept (write-ahead log or Kafka) and handled at "
                "the next start, deliveries in flight are sent again",
                err=True,
            )
        listener.close()
        if relay is not None:  # after the children: every span they sent is exported
            relay.close()


#: How long after KOPPELHUB_SHUTDOWN_TIMEOUT_SECONDS a stopping ``run`` may still take to close.
LAST_RESORT_GRACE_SECONDS = 10.0


class LastResort:
    """Ends the process when stopping takes longer than its bound (a daemon timer thread: it
    runs even while the event loop waits): exit 75 when an embedded service died, else 1."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float, died: list[str]) -> None:
        self._timer = threading.Timer(seconds, self._exit, (seconds, died))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @staticmethod
    def _exit(seconds: float, died: list[str]) -> None:
        what = f"the embedded {' and '.join(died)} died; " if died else ""
        message = f"Koppelhub stopped: {what}closing took more than {seconds:g} s; exiting anyway\n"
        # Never blocks: the main thread may itself hang on a full stderr pipe nobody reads.
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(sys.stderr.fileno(), False)
            os.write(sys.stderr.fileno(), message.encode())
        os._exit(EXIT_EMBEDDED_DIED if died else 1)


async def _watch(hub: HubProcess, infra: Infrastructure, died: list[str]) -> None:
    """Start a crashed embedded PostgreSQL again (the roles wait for it). When the embedded
    broker died, end the projector's members (:meth:`Projector.log_lost`: they commit nothing
    more), start the broker again on its port and stop the roles, for the caller to start them
    anew on it (README "Outages"); the API first answers what it has in flight.

    A process that started neither (a child of ``run``, whose parent watches them, or a hub on
    an external broker and database) has nothing to watch and returns at once: its loop handed
    a no-op to a worker thread every second, one of an idle child's few wake-ups (issue 17)."""
    if infra.broker is None and infra.postgres is None:
        return
    while not hub.stop_intake.is_set():
        broker = infra.broker
        if broker is not None and broker.died():
            log.error("embedded_broker_died", restarting=True)
            if hub.projector is not None:  # before the broker is back: its members read the lost log
                await hub.projector.log_lost(within=HURRY_SECONDS)
            if await asyncio.to_thread(broker.restart):
                await create_topics(infra.kafka_bootstrap, hub.settings)
            died.append("broker")  # still dead: the caller exits 75; else it starts the roles again
            hub.stop_intake.set()
            return
        if gone := infra.dead():
            died.extend(gone)
            hub.stop_intake.set()
            return
        await asyncio.to_thread(infra.tend)
        await asyncio.sleep(1.0)


def _listen(settings: Settings) -> socket.socket:
    """The API's listening socket; refused at once when the port is taken, naming the setting
    that changes it."""
    host, port = settings.http_host, settings.http_port
    try:
        return socket.create_server((host, port), backlog=2048)  # SO_REUSEADDR, as uvicorn binds
    except OSError as e:
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({e.strerror or e}): another program uses the port. "
            "Stop it, or choose another port with KOPPELHUB_HTTP_PORT (and KOPPELHUB_HTTP_HOST)."
        ) from e


async def run_process(
    settings: Settings,
    infra: Infrastructure,
    roles: tuple[str, ...],
    new_token: str | None,
    died: list[str],
    last_resort: LastResort,
    *,
    sockets: list[socket.socket] | None = None,
    ready_fd: int | None = None,
    asked: threading.Event | None = None,
    spare: bool = False,
) -> list[str]:
    hub = HubProcess(
        settings, infra.kafka_bootstrap, infra.database_url, roles, embedded_broker=infra.broker is not None
    )
    hub.spare = spare
    hub.sockets = sockets
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if asked is not None:
            asked.set()
        hub.stop_intake.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await hub.start()
    await hub.wait_started()
    if ready_fd is None:
        _announce(hub, settings, infra, new_token=new_token)
    else:  # a child of `run`: its parent announces once every child is up
        os.write(ready_fd, b"ready")
        os.close(ready_fd)
    watchdog = asyncio.create_task(_watch(hub, infra, died))
    await hub.wait()
    watchdog.cancel()
    died.extend(gone for gone in infra.dead() if gone not in died)  # a role may have seen it first
    # The drain below is bounded, but what follows it (the event loop cancelling what is left,
    # stopping the embedded services) waits on things a dead broker may never answer: the
    # process ends at the bound plus a grace period whatever is still waiting.
    last_resort.arm(settings.shutdown_timeout_seconds + LAST_RESORT_GRACE_SECONDS, died)
    if ready_fd is None:  # a child's parent says it once for all
        click.echo("Koppelhub is stopping: intake closed, draining what was accepted…", err=True)
    # With the embedded broker dead its log is gone: the API answers what it has in flight,
    # the rest stops soon; what was accepted is in the write-ahead log, deliveries in flight
    # are sent again.
    limit = INTAKE_RESTART_SECONDS if died else settings.shutdown_timeout_seconds
    try:
        await asyncio.wait_for(
            hub.shutdown(drain_timeout=limit / 2, log_gone="broker" in died), timeout=limit
        )
    except TimeoutError:
        left = [name for name, task in hub.tasks.items() if not task.done()]
        click.echo(
            f"Koppelhub stopped after {limit:g} s without finishing: {', '.join(left) or 'closing adapters'} "
            "left undone; accepted events not yet projected are kept (write-ahead log or Kafka) and "
            "handled at the next start, deliveries in flight are sent again",
            err=True,
        )
    return died


def _announce(hub: HubProcess, settings: Settings, infra: Infrastructure, *, new_token: str | None) -> None:
    lines = [f"Koppelhub is running ({', '.join(hub.roles)})."]
    if hub.server is not None:
        base = f"http://{settings.http_host}:{hub.api_port}"
        lines += _api_lines(base, settings, new_token)
    kafka, database = _service_lines(settings, infra)
    if hub.event_log is not None:  # a lone dispatcher does not use Kafka
        lines.append(kafka)
    lines += [database, "Stop with Ctrl-C."]
    click.echo("\n".join(lines))
    sys.stdout.flush()


def _api_lines(base: str, settings: Settings, new_token: str | None) -> list[str]:
    """The banner's API, docs and admin-token lines (one process or ``run``'s children)."""
    lines = [f"  API:      {base}/api/v1", f"  Docs:     {base}/docs  (OpenAPI: {base}/openapi.json)"]
    where = settings.data_dir / "admin-token"
    if new_token:
        lines.append(f"  Admin token (new, stored in {where}): {new_token}")
    elif not settings.admin_token:
        lines.append(f"  Admin token: in {where}")
    return lines


def _service_lines(settings: Settings, infra: Infrastructure) -> tuple[str, str]:
    """The banner's Kafka and database lines."""
    broker = "embedded Tansu, in memory" if infra.broker else "external"
    database = f"embedded PostgreSQL in {settings.data_dir / 'postgres'}" if infra.postgres else "external"
    return f"  Kafka:    {infra.kafka_bootstrap} ({broker})", f"  Database: {database}"


def _announce_children(
    children: Children,
    settings: Settings,
    infra: Infrastructure,
    listener: socket.socket,
    new_token: str | None,
) -> None:
    """The banner of a ``run`` whose roles are child processes (the same lines as one process)."""
    groups = ", ".join(f"{c.name} (pid {c.proc.pid if c.proc else '?'})" for c in children.children)
    base = f"http://{settings.http_host}:{listener.getsockname()[1]}"
    lines = [
        f"Koppelhub is running ({', '.join(ROLES)}) in {len(children.children)} processes.",
        *_api_lines(base, settings, new_token),
        *_service_lines(settings, infra),
        f"  Roles:    {groups} (KOPPELHUB_WORKERS, KOPPELHUB_WORK_PROCESSES, KOPPELHUB_DISPATCH_PROCESSES)",
        "Stop with Ctrl-C.",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()
