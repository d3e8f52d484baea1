"""One data dir, one owner: ``koppelhub run`` holds an exclusive lock on ``<data dir>/run.lock``.

A second ``run`` on the same data dir (the first still running or draining) would reuse the
first one's embedded broker and database and then lose them when the first stops; it refuses
instead, naming the process that owns the data dir. The lock is an ``flock`` on an open file:
the kernel drops it when the owner exits, however it exits (a SIGKILL included), so a stale
lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hub.errors import ConfigurationError

__all__ = ["LOCK_FILE", "own_data_dir"]

LOCK_FILE = "run.lock"


@contextlib.contextmanager
def own_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for this process; :class:`ConfigurationError` when another holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigurationError(
                f"another koppelhub run (pid {owner}) owns the data dir {data_dir}; stop it first "
                "(it may still be draining) or give this one its own KOPPELHUB_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
