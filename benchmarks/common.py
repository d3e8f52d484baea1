"""Shared parts of the benchmarks: the machine, percentiles, CPU accounting, the hub as a
separate process on embedded infrastructure, publishing events, and a local webhook sink.

Linux only (``/proc``), like the embedded broker and database the hub starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


# --- the machine -----------------------------------------------------------------------------


_T = TypeVar("_T")


def run_interruptible(main: Coroutine[Any, Any, _T]) -> _T | None:
    """``asyncio.run(main)``; None when Ctrl-C interrupted it (said on stderr: the benchmark's
    hub was stopped on the way out), so a ``main`` can exit 130."""
    try:
        return asyncio.run(main)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted (the hub was stopped)", file=sys.stderr)
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, Python and the load average when the run started."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    ram_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    return {
        "cpu": model, "cores": os.cpu_count() or 0, "ram_gib": round(ram_kib / 1024**2, 1),
        "python": platform.python_version(), "platform": platform.platform(terse=True),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def describe_machine(info: Mapping[str, Any]) -> str:
    load = " ".join(str(x) for x in info["loadavg_at_start"])
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"Python {info['python']} ({info['platform']}), load average at start {load}"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def write_json(path: Path, results: Any) -> None:
    """A benchmark's ``--json FILE`` (``-``: standard output)."""
    text = json.dumps(results, indent=2, default=str)
    if str(path) == "-":
        print(text)
    else:
        path.write_text(text + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- CPU accounting from /proc -----------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of one process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user+system) one process has used, None when it is gone."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def children(parent: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == parent:
                found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS


@dataclass
class CpuMeter:
    """CPU seconds per process group: the hub (Python), its broker, PostgreSQL, this process."""

    groups: Callable[[], dict[str, list[int]]]

    def sample(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pids in self.groups().items():
            totals[name] = sum(s[1] for s in (_stat(p) for p in pids) if s is not None)
        totals["machine"] = machine_busy_seconds()
        return totals

    @staticmethod
    def usage(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
        """Cores used per group between two samples; ``other`` is load outside this benchmark."""
        used = {k: (after[k] - before.get(k, 0.0)) / seconds for k in after if seconds > 0}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used.pop("machine", 0.0) - ours)
        return {k: round(v, 2) for k, v in used.items()}


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
        """Pids per group for :class:`CpuMeter`: hub, broker (Tansu), postgres, bench."""
        spawned = children(self.process.pid)
        postgres: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            postmaster = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
            postgres = [postmaster, *children(postmaster)]
        # `run` with KOPPELHUB_WORKERS > 1 spawns its roles as `koppelhub worker` children (and a
        # PostgreSQL watchdog): they are the hub's CPU, the rest of its children is the broker.
        roles = [p for p in spawned if _is_hub_child(p)]
        broker = [p for p in spawned if p not in roles]
        hub = [self.process.pid, *roles]
        return {"hub": hub, "broker": broker, "postgres": postgres, "bench": [os.getpid()]}

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


# --- publishing --------------------------------------------------------------------------------

EVENT_TYPE = "nl.signalen.melding.gewijzigd.v1"
EVENT_SOURCE = "urn:nld:oin:00000001234567890000:systeem:bench"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_PADDING = "Gemeente gebruikt applicatie met koppelingen naar zaaksysteem en DMS. "


def make_event(event_id: str, i: int, data_bytes: int = 1024) -> dict[str, Any]:
    """An NL GOV CloudEvent about ``app-{i % 1000}`` whose ``data`` is about ``data_bytes`` of JSON
    (with room left for a ``sentns`` stamp)."""
    data: dict[str, Any] = {"applicatie": f"app-{i % 1000}", "gemeente": f"gm{i % 342:04d}", "n": i}
    room = data_bytes - len(json.dumps({**data, "omschrijving": "", "sentns": 1_700_000_000_000_000_000}))
    data["omschrijving"] = (_PADDING * (room // len(_PADDING) + 1))[: max(0, room)]
    return {
        "specversion": "1.0", "id": event_id, "source": EVENT_SOURCE, "type": EVENT_TYPE,
        "subject": f"app-{i % 1000}", "time": "2026-11-22T10:00:00Z", "datacontenttype": "application/json",
        "data": data,
    }  # fmt: skip


class Publisher:
    """aiohttp client for ``POST /api/v1/events`` over at most ``connections`` keep-alive
    connections; counts responses by status (0 = no answer) and stamps 202 times per id."""

    def __init__(self, hub: Hub, connections: int):
        self.url = f"{hub.base_url}/api/v1/events"
        self.auth = hub.auth
        self.statuses: Counter[int] = Counter()
        self.ack_ns: dict[str, int] = {}
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=300),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        await self._http.close()

    async def post(self, body: bytes, content_type: str, ids: Sequence[str] = ()) -> int:
        headers = {**self.auth, "Content-Type": content_type}
        try:
            async with self._http.post(self.url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status == 202:
            now = time.monotonic_ns()
            for event_id in ids:
                self.ack_ns[event_id] = now
        self.statuses[status] += 1
        return status

    async def post_all(self, bodies: Sequence[tuple[bytes, int]], content_type: str, workers: int) -> int:
        """Send (body, events in it) pairs with ``workers`` concurrent senders; returns events
        accepted (202)."""
        accepted = 0
        it = iter(bodies)

        async def worker() -> None:
            nonlocal accepted
            for body, events in it:
                if await self.post(body, content_type) == 202:
                    accepted += events

        await asyncio.gather(*(worker() for _ in range(workers)))
        return accepted


async def subscribe(hub: Hub, sink_url: str, **body: Any) -> dict[str, Any]:
    """Create a subscription (``POST /api/v1/subscriptions``); returns it, secret included."""
    url, payload = f"{hub.base_url}/api/v1/subscriptions", {"sink": sink_url, **body}
    async with aiohttp.ClientSession() as http, http.post(url, json=payload, headers=hub.auth) as r:
        created: dict[str, Any] = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"creating the subscription failed: {r.status} {created}")
        return created


async def systeem_token(hub: Hub) -> str:
    """A ``systeem`` API token for the benchmark's event source (``POST /api/v1/tokens``)."""
    url = f"{hub.base_url}/api/v1/tokens"
    body = {"name": "bench", "role": "systeem", "organisatie": "gm-bench", "sources": [EVENT_SOURCE]}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=hub.auth) as r:
        created: dict[str, Any] = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"creating the token failed: {r.status} {created}")
        return str(created["token"])


# --- the webhook sink --------------------------------------------------------------------------


@dataclass
class Sink:
    """A keep-alive aiohttp server on loopback that answers 204 and records, per event id, the
    first arrival (``time.monotonic_ns``) and the ``data.sentns`` stamp the publisher put in."""

    arrivals: dict[str, int] = field(default_factory=dict)
    sent_ns: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    url: str = ""
    _pending: set[str] = field(default_factory=set)
    _all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=300)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic_ns()
        self.requests += 1
        try:
            event = json.loads(body)
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400)
        if event_id in self.arrivals:
            self.duplicates += 1
            return web.Response(status=204)
        self.arrivals[event_id] = now
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("sentns"), int):
            self.sent_ns[event_id] = data["sentns"]
        if event_id in self._pending:
            self._pending.discard(event_id)
            if not self._pending:
                self._all_arrived.set()
        return web.Response(status=204)

    def expect(self, ids: Iterable[str]) -> None:
        """Arm :meth:`wait_all` for these ids (those already arrived count)."""
        self._pending = {i for i in ids if i not in self.arrivals}
        self._all_arrived = asyncio.Event()
        if not self._pending:
            self._all_arrived.set()

    @property
    def missing(self) -> int:
        return len(self._pending)

    async def wait_all(self, within: float) -> bool:
        """True when every expected id arrived within ``within`` seconds."""
        try:
            await asyncio.wait_for(self._all_arrived.wait(), within)
        except TimeoutError:
            return False
        return True


async def wait_idle(
    meter: CpuMeter, *, groups: Sequence[str] = ("hub", "postgres"), below: float = 0.05,
    window: float = 0.5, within: float = 20.0,
) -> float:  # fmt: skip
    """Wait until ``groups`` together use less than ``below`` cores over ``window``; returns seconds."""
    started = time.monotonic()
    before = meter.sample()
    while time.monotonic() - started < within:
        await asyncio.sleep(window)
        after = meter.sample()
        if sum(after[g] - before[g] for g in groups) / window < below:
            break
        before = after
    return time.monotonic() - started
