"""The embedded PostgreSQL's bookkeeping of who uses it, and the watchdog that stops it when
the process that started it dies, however it dies.

pgserver starts the postmaster through ``pg_ctl``, which detaches it into a session of its
own, so the ``PR_SET_PDEATHSIG`` the broker gets cannot reach it; and pgserver counts its users
in ``<pgdata>/.handle_pids.json``, stopping the server when the last one leaves cleanly. A
killed user never leaves: its pid stayed in the list, and the server ran on after every later
clean exit (each saw another "user" left). Two parts set that right:

- :func:`forget_dead_users` removes pids of processes that no longer exist (the next start on
  the data dir calls it, so a reused orphan is stopped again by the last clean exit);
- :func:`follow` starts ``python -m hub.pg_watchdog <pid> <pgdata>`` holding the read end of a
  pipe whose write end only the starting process holds. The kernel closes that end however the
  process ends (SIGKILL included); the watchdog reads end-of-file, forgets the dead users and,
  when nobody is left, asks the postmaster for a fast shutdown (SIGINT): PostgreSQL's own clean
  stop, which a power cut would only have made harder, and waits until it has stopped.

pgserver attaches only to a postmaster that is ``ready`` and asserts otherwise, so a start
that finds one on its way down (a watchdog's fast shutdown, a ``pg_ctl restart``) or up
waits for it first (:func:`settle`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HANDLES = ".handle_pids.json"
SETTLE_SECONDS = 60.0  # pg_ctl's own default wait for a start or a stop


def alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_users(pgdata: Path, *, gone: tuple[int, ...] = ()) -> list[int]:
    """Drop pids of exited processes (and ``gone``: one that exited but may not be reaped
    yet) from pgserver's user list; returns the live ones.

    Called under pgserver's own inter-process lock when pgserver is importable (the same lock
    its start and cleanup take), so a user joining or leaving at that moment is not lost."""
    lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        from pgserver.postgres_server import PostgresServer

        lock = PostgresServer._lock
    with lock:
        path = pgdata / HANDLES
        try:
            users = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        live = [p for p in users if p not in gone and alive(p)]
        if live != users:
            path.write_text(json.dumps(live))
        return live


def postmaster(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid`` when that process runs, else None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # a reused pid is not our postmaster (Linux: /proc)
        if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid if alive(pid) else None


def status(pgdata: Path) -> str | None:
    """The state ``postmaster.pid`` gives for its running postmaster (``starting``,
    ``stopping``, ``ready``, ``standby``), or None when none runs. The postmaster writes the
    state line last; a file without it is one still starting."""
    if postmaster(pgdata) is None:
        return None
    try:
        lines = (pgdata / "postmaster.pid").read_text().split("\n")
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 and lines[7].strip() else "starting"


def settle(pgdata: Path, within: float = SETTLE_SECONDS) -> str | None:
    """Wait while a postmaster on ``pgdata`` is on its way up or down; returns the state it
    settled on (None: none runs), or the state it still had after ``within`` seconds."""
    deadline = time.monotonic() + within
    while (state := status(pgdata)) not in (None, "ready") and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


def follow(pgdata: Path) -> subprocess.Popen[bytes]:
    """Start the watchdog for this process; keep the returned handle referenced for as long as
    this process lives (its stdin is the pipe whose end-of-file means "the starter is gone")."""
    return subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
        [sys.executable, "-m", "hub.pg_watchdog", str(os.getpid()), str(pgdata)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the starter's process group does not reach it
    )


def main(argv: list[str]) -> int:
    starter, pgdata = int(argv[0]), Path(argv[1])
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.buffer.read()  # returns at end-of-file: the starter has exited
    live = forget_dead_users(pgdata, gone=(starter,))  # the starter may be an unreaped zombie
    pid = postmaster(pgdata)
    if pid is not None and not live:
        os.kill(pid, signal.SIGINT)  # fast shutdown: active sessions end, the data stays consistent
        settle(pgdata)  # gone before the watchdog is: whoever waits for it may start it again
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
