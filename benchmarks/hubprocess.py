"""The hub as a separate process for the benchmarks: ``koppelhub run`` on embedded Tansu and
PostgreSQL in a fresh data dir, with its children's roles and CPU."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp

from benchmarks.common import REPO, children, cpu_seconds, free_port

# --- the hub as a separate process -------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM (a graceful stop) if the benchmark dies first."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _open_log(path: Path) -> TextIO:
    return path.open("w")


def hub_command(profile: Path | None = None) -> list[str]:
    """``koppelhub run`` with this interpreter; under cProfile when ``profile`` is given."""
    if profile is not None:
        code = f"import cProfile; from hub.cli import main; cProfile.run('main([\"run\"])', {str(profile)!r})"
        return [sys.executable, "-c", code]
    script = Path(sys.executable).with_name("koppelhub")
    if script.exists():
        return [str(script), "run"]
    return [sys.executable, "-c", "from hub.cli import main; main()", "run"]


def _is_hub_child(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"worker" in argv or any(b"pg_watchdog" in a for a in argv)


def _roles(pid: int) -> list[str]:
    """The roles of a ``koppelhub worker --roles a,b`` process (empty for any other)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    return argv[argv.index("--roles") + 1].split(",") if "--roles" in argv[:-1] else []


@dataclass
class Hub:
    """A ``koppelhub run`` process on embedded Tansu and PostgreSQL in a fresh data dir."""

    workdir: Path
    port: int
    token: str
    process: asyncio.subprocess.Process
    log_path: Path
    _log: TextIO = field(repr=False)
    exit_code: int | None = None
    stop_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def process_groups(self) -> dict[str, list[int]]:
        """Pids per group for :class:`CpuMeter`: hub (``run`` and its API children), work (its
        projector and dispatcher children, ``KOPPELHUB_WORK_PROCESSES``, and its spare dispatchers,
        ``KOPPELHUB_DISPATCH_PROCESSES``), broker (Tansu),
        postgres, bench. The work children apart: they bound the fan-out and projection phases."""
        spawned = children(self.process.pid)
        postgres: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            postmaster = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
            postgres = [postmaster, *children(postmaster)]
        # `run` with KOPPELHUB_WORKERS > 1 spawns its roles as `koppelhub worker` children (and a
        # PostgreSQL watchdog): they are the hub's CPU, the rest of its children is the broker.
        roles = [p for p in spawned if _is_hub_child(p)]
        broker = [p for p in spawned if p not in roles]
        work = [p for p in roles if "dispatcher" in _roles(p) or "projector" in _roles(p)]
        hub = [self.process.pid, *(p for p in roles if p not in work)]
        return {"hub": hub, "work": work, "broker": broker, "postgres": postgres, "bench": [os.getpid()]}

    def api_pids(self) -> list[int]:
        """The processes that answer the API: the ``api`` workers, or ``run`` itself when it
        runs every role in one process (``KOPPELHUB_WORKERS=1``)."""
        api = [p for p in children(self.process.pid) if "api" in _roles(p)]
        return api or [self.process.pid]

    def api_cpu_seconds(self) -> float:
        return sum(s for s in (cpu_seconds(p) for p in self.api_pids()) if s is not None)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def wait_ready(self, within: float = 90.0) -> float:
        """Poll ``GET /readyz`` until 200; returns the seconds it took."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the hub exited with {self.process.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.base_url}/readyz", timeout=aiohttp.ClientTimeout(2)) as r:
                        if r.status == 200:
                            return time.monotonic() - started
                if time.monotonic() - started > within:
                    raise RuntimeError(f"the hub was not ready after {within:.0f} s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def stop(self, within: float = 120.0) -> int:
        """SIGTERM, wait for the drain and exit; SIGKILL (and clean up) only past ``within`` seconds."""
        started = time.monotonic()
        try:
            if self.process.returncode is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.process.wait(), within)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()
                    self._reap_embedded()
            self.exit_code = self.process.returncode
            self.stop_seconds = time.monotonic() - started
        finally:
            self._log.close()
        return self.exit_code if self.exit_code is not None else -1

    def _reap_embedded(self) -> None:
        """After a hard kill: stop the broker and PostgreSQL the hub had started."""
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(json.loads((self.data_dir / "broker.json").read_text())["pid"]), signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


async def start_hub(
    *,
    token: str = "bench-admin-token",
    env: Mapping[str, str] | None = None,
    profile: Path | None = None,
    cwd: Path = REPO,
) -> Hub:
    """Start ``koppelhub run`` in a fresh temporary data dir and wait until it is ready. Its
    worker children run ``python -m hub`` in ``cwd``, so they import the hub found there first
    (another checkout's, for a baseline, with that checkout also first on PYTHONPATH)."""
    workdir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-"))
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    child_env |= {
        "KOPPELHUB_DATA_DIR": str(workdir / "data"), "KOPPELHUB_HTTP_HOST": "127.0.0.1",
        "KOPPELHUB_HTTP_PORT": str(port), "KOPPELHUB_ADMIN_TOKEN": token,
        "KOPPELHUB_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8", "KOPPELHUB_LOG_LEVEL": "warning", **(env or {}),
    }  # fmt: skip
    log_path = workdir / "hub.log"
    log = _open_log(log_path)
    process = await asyncio.create_subprocess_exec(
        *hub_command(profile), cwd=cwd, env=child_env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
        stderr=asyncio.subprocess.STDOUT, preexec_fn=_die_with_parent,
    )  # fmt: skip
    hub = Hub(workdir, port, token, process, log_path, log)
    try:
        await hub.wait_ready()
    except BaseException:
        await hub.stop(within=30)
        raise
    return hub
