"""``koppelhub run`` on every core: the roles as supervised child processes.

The parent (``run``) owns the data dir, the embedded broker and PostgreSQL, the migrations and
the listening socket; it starts the roles as children, each a ``koppelhub worker`` with the
broker and database addresses in its environment and the socket inherited:

- **intake** children (``api`` and ``connectors``): ``KOPPELHUB_WORKERS - 1`` of them, all
  accepting on the one socket the parent bound (the kernel spreads the connections);
- **work** children (``projector`` and ``dispatcher``): ``KOPPELHUB_WORK_PROCESSES`` of them
  (default one), and ``KOPPELHUB_DISPATCH_PROCESSES`` **dispatch** children (``dispatcher``
  alone, default one) that take the deliveries the work children's dispatchers have no room for
  (:mod:`hub.services.dispatcher_wakeup`); each ``KOPPELHUB_WORK_NICE`` steps below the intake
  children's CPU priority (:func:`hub.child_exec.lowered`: when the machine is full, publishing
  goes first). Their projector members are members of the one consumer group (the group splits
  the partitions among all of them; a rebalance replays uncommitted records, which the dedupe
  skips), and their dispatchers share the outbox through ``SKIP LOCKED`` claims with a lease.
  Per-key order holds across them because the claim takes only a key's head (its open delivery
  with the smallest archive position) and never a leased one: one process's delivery in flight
  keeps the key's next delivery from every other process.

Why this split: a publish costs the API most of its CPU and a projected, delivered event
costs the projector and dispatcher theirs; the two halves meet only in Kafka and PostgreSQL.
The connectors stay with the API, whose upload and run requests wake them in-process.

A child that exits while the parent did not ask it to (a crashed role ends its process) is
started again after a back-off (0.5 s, doubling to 30 s, reset after a minute of life) and
logged. A SIGTERM or SIGINT stops them in the order the README promises: the intake children
first (the API stops accepting, the connectors stop publishing), then every work child at
once (each projector drains the partitions its members hold into PostgreSQL; a partition a
stopping member gives up is drained by the member that gets it; each dispatcher finishes what
it has in flight);
the caller then stops the embedded services. A crashed embedded PostgreSQL is started again
while the children wait for it; a dead embedded broker is started again on its port and the
children with it (:meth:`Children.restart`, README "Outages"). Children get ``PR_SET_PDEATHSIG`` (SIGKILL):
a killed parent leaves no child behind, as a killed single-process ``run`` leaves no role.
Each child runs in its own session, so a terminal's Ctrl-C reaches only the parent, which
then stops the children in order.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from hub.child_exec import death_signal, lowered
from hub.embedded import Infrastructure

log = structlog.get_logger(__name__)

INTAKE_ROLES: tuple[str, ...] = ("api", "connectors")
DISPATCH_ROLES: tuple[str, ...] = ("dispatcher",)
WORK_ROLES: tuple[str, ...] = ("projector", "dispatcher")
#: How long the children may take to start (open adapters, relay the write-ahead log).
START_SECONDS = 120.0
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, STABLE_SECONDS = 0.5, 30.0, 60.0
#: How long each group of children may stop when an embedded service died (no drain can
#: work then, and their reconnect errors would otherwise flood the log).
HURRY_SECONDS = 1.0
#: How long an intake child may take to answer what it has in flight when the embedded broker
#: was started again: longer than a publish waits for the broker's acknowledgement (15 s).
INTAKE_RESTART_SECONDS = 20.0
#: How often the parent looks at its children and the embedded services.
TEND_SECONDS = 0.5


def role_groups(workers: int, work: int = 1, dispatch: int = 0) -> list[tuple[str, ...]]:
    """The roles of each child: ``workers - 1`` intake children (at least one), ``work`` work
    children and ``dispatch`` dispatch children (``KOPPELHUB_WORKERS``,
    ``KOPPELHUB_WORK_PROCESSES``, ``KOPPELHUB_DISPATCH_PROCESSES``)."""
    intake, working = [INTAKE_ROLES] * max(1, workers - 1), [WORK_ROLES] * max(1, work)
    return intake + working + [DISPATCH_ROLES] * max(0, dispatch)


@dataclass
class Child:
    """One role group's process; ``proc`` is None between a crash and its restart."""

    roles: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    failures: int = 0
    ready_fd: int | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return "+".join(self.roles)


class Children:
    """Starts, tends and stops the role children of one ``run``."""

    def __init__(
        self,
        workers: int,
        listener: socket.socket,
        infra: Infrastructure,
        write_ahead: bool,
        work: int = 1,
        work_nice: int = 0,
        inherited: Mapping[str, int] | None = None,
        dispatch: int = 0,
    ):
        self.children = [Child(roles) for roles in role_groups(workers, work, dispatch)]
        self._listener = listener
        self._env = os.environ | {
            "KOPPELHUB_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "KOPPELHUB_DATABASE_URL": infra.database_url,
            # Resolved here: a child sees a configured broker and would turn it off.
            "KOPPELHUB_WRITE_AHEAD": "true" if write_ahead else "false",
            # The port the parent bound (KOPPELHUB_HTTP_PORT=0 picks one): derived events'
            # dataref in the work children names it.
            "KOPPELHUB_HTTP_PORT": str(listener.getsockname()[1]),
        }
        # Descriptors every child inherits, each named in its environment by the variable it is
        # given under (the span relay's socket: hub/adapters/span_relay.py).
        self._inherited = list((inherited or {}).values())
        self._env |= {name: str(fd) for name, fd in (inherited or {}).items()}
        self._preexec = death_signal(signal.SIGKILL, parent=os.getpid())
        self._work_preexec = lowered(self._preexec, work_nice)  # KOPPELHUB_WORK_NICE
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        """Start ``child``; it writes ``ready`` to a pipe once its roles run (and its signal
        handlers are in place: a SIGTERM before that would end it without a drain)."""
        fd = self._listener.fileno()
        command = [sys.executable, "-m", "hub", "worker", "--roles", ",".join(child.roles)]
        pass_fds = [fd] if "api" in child.roles else []
        if "api" in child.roles:
            command += ["--listen-fd", str(fd)]
        if child.roles == DISPATCH_ROLES:
            command.append("--spare")
        pass_fds += self._inherited
        read_end, write_end = os.pipe()
        command += ["--ready-fd", str(write_end)]
        pass_fds.append(write_end)
        try:
            child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                env=self._env,
                pass_fds=pass_fds,
                # only prctl, getppid and (a work child) nice run in the child
                preexec_fn=self._preexec if "api" in child.roles else self._work_preexec,
                start_new_session=True,
            )
        finally:
            os.close(write_end)
        child.ready_fd, child.started_at, child.restart_at = read_end, time.monotonic(), None
        log.info("child_started", roles=child.name, pid=child.proc.pid)

    def start(self) -> None:
        """Start the work children, then the intake children, each group once the one before
        said it runs (so an API that answers ``/readyz`` means every role runs, as in one
        process); raise if one does not start."""
        deadline = time.monotonic() + START_SECONDS
        for group in (self._work(), self._intake()):
            for child in group:
                self._spawn(child)
            for child in group:
                if not self._wait_ready(child, deadline):
                    assert child.proc is not None
                    code = child.proc.poll()
                    why = f"exited with status {code}" if code is not None else "did not start in time"
                    raise RuntimeError(f"the {child.name} process {why}")

    def _intake(self) -> list[Child]:
        return [c for c in self.children if "api" in c.roles]

    def _work(self) -> list[Child]:
        return [c for c in self.children if "api" not in c.roles]

    @staticmethod
    def _wait_ready(child: Child, deadline: float) -> bool:
        """Whether ``child`` said ``ready`` before ``deadline`` (at once: it said so before)."""
        if child.ready_fd is None:
            return child.proc is not None
        try:
            readable, _, _ = select.select([child.ready_fd], [], [], max(0.0, deadline - time.monotonic()))
            said = os.read(child.ready_fd, 16) if readable else b""
        except OSError:
            said = b""
        if readable or said:
            os.close(child.ready_fd)
            child.ready_fd = None
        return said == b"ready"

    def tend(self) -> None:
        """Restart, after a back-off, each child that exited unasked (call it regularly)."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and (code := child.proc.poll()) is not None:
                lived = now - child.started_at
                child.failures = 1 if lived >= STABLE_SECONDS else child.failures + 1
                delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (child.failures - 1))
                log.error("child_exited", roles=child.name, pid=child.proc.pid, status=code, restart_in=delay)
                self._forget(child)
                child.restart_at = now + delay
            due = child.restart_at is not None and now >= child.restart_at
            if child.proc is None and due and not self.stopping:
                self._spawn(child)
                log.warning("child_restarted", roles=child.name, pid=child.proc.pid if child.proc else None)

    @staticmethod
    def _forget(child: Child) -> None:
        if child.ready_fd is not None:
            os.close(child.ready_fd)
        child.proc, child.ready_fd = None, None

    def stop(self, limit: float, *, services_died: bool = False) -> list[str]:
        """Stop the intake children, then the work children (all at once: their members drain
        side by side), each group within its share of ``limit``; returns the role groups that
        had to be killed.

        A work child that is down (between a crash and its restart) is started first and
        waited for: only a running projector drains what the in-memory broker holds. When an
        embedded service died, nothing can drain (the broker's log is gone, or the database
        that takes it): the children get :data:`HURRY_SECONDS` each, and what they held is
        kept as after a crash (the write-ahead log, leases)."""
        self.stopping = True
        if services_died:
            limit = min(limit, 2 * HURRY_SECONDS)
        deadline = time.monotonic() + limit
        killed: list[str] = []
        killed += self._stop_group(self._intake(), time.monotonic() + limit / 2)
        work = self._work()
        for child in work:
            if not services_died and (child.proc is None or child.proc.poll() is not None):
                self._forget(child)
                self._spawn(child)
        killed += self._stop_group(work, deadline)
        return killed

    def stop_work(self) -> None:
        """Stop the work children now (:data:`HURRY_SECONDS`, then SIGKILL), before a dead
        embedded broker is started again. Their projector members read its lost log: one that
        lived on beside the new broker would rejoin the group there and commit its positions of
        the old log, and the group would skip every record below them (events relayed from the
        write-ahead log or published since, acknowledged and never projected: a CI run lost 16
        of 110 so, while the intake children took 20 s to answer what they had in flight).
        :meth:`restart` starts them again."""
        self.stopping = True
        self._stop_group(self._work(), time.monotonic() + HURRY_SECONDS)

    def restart(self) -> bool:
        """Start every child anew on an embedded broker that was started again (empty, at the
        same address). The work children stop at once if :meth:`stop_work` has not stopped them
        (the broker's log is gone: nothing to drain; what it held is kept as after a crash).
        Then every child starts at once, while the old intake children, which accept no more on
        the listening socket they share with the new ones, answer what they have in flight (the
        publish lands in the new broker, or gets its 503) within :data:`INTAKE_RESTART_SECONDS`.
        A new connection waits for one child's start (on a slow machine it had waited 31 s for
        the old intake's answers and two starts, beyond a client's 30 s). Each child relays the
        write-ahead log before it takes work, so an event accepted before the outage is in the
        new log before any accepted after it (only a publish in flight when the broker died may
        land first; one an old intake child answers later was sent beside the new ones)."""
        self.stop_work()
        self.stopping = False
        leaving = [self._detach(child) for child in self._intake()]
        try:
            for child in self.children:
                self._renew(child)
        finally:  # a failed start too: the old intake children stop, and leave no pipe open
            self._stop_group(leaving, time.monotonic() + INTAKE_RESTART_SECONDS)
            for child in leaving:
                self._forget(child)
        # A child that fails (the broker, just started, refused its relay) is left to
        # :meth:`tend`, which starts it again after its back-off: each child relays before it
        # takes work, so the order holds whichever comes up first.
        deadline = time.monotonic() + START_SECONDS
        for child in self.children:
            if not self._wait_ready(child, deadline):
                log.warning("child_not_restarted", roles=child.name)
        return True

    @staticmethod
    def _detach(child: Child) -> Child:
        """A child's running process, handed to a stand-in so that ``child`` can start anew."""
        leaving = Child(child.roles, child.proc, child.started_at, ready_fd=child.ready_fd)
        child.proc, child.ready_fd = None, None
        return leaving

    def _renew(self, child: Child) -> None:
        self._forget(child)
        child.failures = 0
        self._spawn(child)

    def _stop_group(self, group: list[Child], deadline: float) -> list[str]:
        for child in group:
            if child.proc is not None and child.proc.poll() is None and not self._wait_ready(child, deadline):
                log.warning("child_not_ready_at_stop", roles=child.name, pid=child.proc.pid)
        running = [c for c in group if c.proc is not None and c.proc.poll() is None]
        for child in running:
            assert child.proc is not None
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
        killed = []
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
                killed.append(child.name)
            log.info("child_stopped", roles=child.name, pid=child.proc.pid, status=child.proc.returncode)
        return killed


def stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set, for the life of the parent (a second signal during
    the ordered stop is absorbed, not fatal)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def supervise(
    children: Children,
    infra: Infrastructure,
    died: list[str],
    stop: threading.Event,
    broker_back: Callable[[], bool],
) -> None:
    """Tend the children and the embedded services until ``stop`` is set or a service dies
    that cannot be brought back (its name is appended to ``died``). A crashed embedded
    PostgreSQL is started again while the children wait for it. A dead embedded broker is
    started again on its port (``broker_back`` creates its topics at once, so what the API has
    in flight lands there) and the children with it (:meth:`Children.restart`); the work
    children are stopped before it is back (:meth:`Children.stop_work`). The caller stops the
    children."""
    while not stop.wait(TEND_SECONDS):
        if infra.broker is not None and infra.broker.died():
            log.error("embedded_broker_died", restarting=True)
            children.stop_work()  # before the broker is back: their projectors read the lost log
            if not infra.broker.restart():
                died.append("broker")
                return
            broker_back()  # best effort: each child creates them too before it relays
            children.restart()
            log.warning("embedded_broker_restarted", bootstrap=infra.kafka_bootstrap)
        if gone := infra.dead():
            died.extend(gone)
            return
        infra.tend()
        children.tend()
