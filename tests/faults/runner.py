"""The fault suite's runner: one real ``koppelhub run`` on a data dir, and the kills it takes.

``koppelhub run`` (``KOPPELHUB_WORKERS`` auto, two processes or more) is a parent that owns the
embedded broker and PostgreSQL and three kinds of role child: the *work* child (projector and
dispatcher in one process), the *intake* children (API and connectors in one process) and the
*spare* dispatcher (``KOPPELHUB_DISPATCH_PROCESSES``). A
SIGKILL of "the projector" is therefore a SIGKILL of the work child, which takes the dispatcher
with it, and a SIGKILL of "the API" takes the connectors role with it. The kinds below are the
processes there are:

========== ======================================================= =====================
kind       SIGKILLed                                               brought back by
========== ======================================================= =====================
work       the projector + dispatcher child                        ``run`` (restarts it)
intake     the API + connectors child                              ``run`` (restarts it)
spare      the spare dispatcher child                              ``run`` (restarts it)
run        the ``run`` parent (children die with it, broker and     the test (a new run)
           PostgreSQL are stopped by their watchdogs)
power-cut  ``run``, the broker and PostgreSQL at once               the test (a new run)
broker     the embedded broker                                     ``run`` (README Outages)
postgres   the embedded PostgreSQL                                 ``run`` (README Outages)
========== ======================================================= =====================

The test plays the supervisor the README asks for (systemd ``Restart=on-failure``, Docker
``restart: unless-stopped``): whatever ended ``run`` is answered with a new ``run`` on the
same data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import psycopg

from hub.adapters.postgres.engine import libpq_url
from hub.embedded import provision
from hub.settings import Settings
from tests.support.processes import role_children

KINDS: tuple[str, ...] = ("work", "intake", "spare", "run", "power-cut", "broker", "postgres")
#: What each kind kills, in the issue's words (for the printed figures).
KILLED = {
    "work": "projector+dispatcher process",
    "intake": "API+connectors process",
    "spare": "spare dispatcher process",
    "run": "whole run",
    "power-cut": "run+broker+PostgreSQL",
    "broker": "broker",
    "postgres": "PostgreSQL",
}
TOKEN = "fault-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    return env | {
        "KOPPELHUB_DATA_DIR": str(data_dir),
        "KOPPELHUB_HTTP_PORT": str(port),
        "KOPPELHUB_ADMIN_TOKEN": TOKEN,
        "KOPPELHUB_LOG_LEVEL": "warning",
        **extra,
    }


def broker_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "broker.json").read_text())["pid"])


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


ROLES_OF = {"work": "projector,dispatcher", "intake": "api,connectors", "spare": "dispatcher"}


class Run:
    """One ``koppelhub run`` on ``data_dir``; its stderr is appended to ``log``."""

    def __init__(self, data_dir: Path, log: Path, **env: str):
        self.data_dir, self.log, self.env = data_dir, log, env
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within: float = 180) -> None:
        self._stderr = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "run",
            env=run_env(self.data_dir, self.port, **self.env),
            stdout=asyncio.subprocess.DEVNULL, stderr=self._stderr,
        )  # fmt: skip
        try:
            await self.ready(within)
        except BaseException:
            await self.abandon()
            raise

    async def ready(self, within: float = 180) -> None:
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            async with asyncio.timeout(within):
                while True:
                    assert self.proc.returncode is None, f"run exited before it was ready (see {self.log})"
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    async def kill(self, kind: str) -> Run:
        """SIGKILL what ``kind`` names and bring the hub back; returns the run that serves now
        (this one after a role child's kill, a new one on the same data dir otherwise)."""
        assert self.proc is not None
        if kind in ROLES_OF:
            roles = ROLES_OF[kind]
            before = dict(role_children(self.proc.pid))[roles]
            os.kill(before, signal.SIGKILL)
            async with asyncio.timeout(120):
                while dict(role_children(self.proc.pid)).get(roles) in (None, before):
                    assert self.proc.returncode is None, "run ended after a role child was killed"
                    await asyncio.sleep(0.1)
            await self.ready()
            return self
        if kind in ("broker", "postgres"):  # run starts it again itself (README Outages)
            pid_of = broker_pid if kind == "broker" else postmaster_pid
            dead = pid_of(self.data_dir)
            os.kill(dead, signal.SIGKILL)
            async with asyncio.timeout(120):
                while True:
                    assert self.proc.returncode is None, f"run ended after its {kind} died (see {self.log})"
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        if pid_of(self.data_dir) != dead:
                            break
                    await asyncio.sleep(0.1)
            await self.ready()
            return self
        if kind == "run":
            pids = [self.proc.pid]
        elif kind == "power-cut":
            pids = [self.proc.pid, broker_pid(self.data_dir), postmaster_pid(self.data_dir)]
        else:
            raise ValueError(kind)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(120):
            await self.proc.wait()
        self._close_log()
        for pid in pids[1:]:
            assert await asyncio.to_thread(gone, pid), f"pid {pid} outlived the kill"
        again = Run(self.data_dir, self.log, **self.env)
        await again.start()
        return again

    async def stop(self, within: float = 600) -> int:
        """SIGTERM (the drain); returns the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            code = await self.proc.wait()
        self._close_log()
        return code

    async def abandon(self) -> None:
        """Kill this run on a failed test's way out, so no process outlives the test."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def archived_ids(data_dir: Path) -> list[str]:
    """Every ``event_id`` row of the archive (a stopped hub's data dir; starts PostgreSQL)."""
    infra = provision(Settings(data_dir=data_dir), broker_needed=False)
    try:
        with psycopg.connect(libpq_url(infra.database_url)) as conn:
            return [row[0] for row in conn.execute("SELECT event_id FROM event_archive")]
    finally:
        infra.close()
