"""Shared parts of the benchmarks: the machine, percentiles and CPU accounting. The hub as a
separate process is in :mod:`benchmarks.hubprocess`; publishing events and the local webhook
sink are in :mod:`benchmarks.traffic`.

Linux only (``/proc``), like the embedded broker and database the hub starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import struct
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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


_GC_DIR = os.environ.get("GCSTATS_DIR")  # benchmarks/gchook: the collector's CPU per process
#: benchmarks/gchook's FORMAT (not imported: importing that sitecustomize would hook this process)
GC_FORMAT = "3d3q3q1q"  # seconds per generation, passes, collected, peak RSS (KiB)


def gc_stats(directory: str | Path, pid: int) -> tuple[float | int, ...] | None:
    """What benchmarks/gchook wrote for ``pid`` (:data:`GC_FORMAT`), or None when nothing is there."""
    try:
        return struct.unpack_from(GC_FORMAT, Path(f"{directory}/{pid}").read_bytes())
    except (OSError, struct.error):
        return None


def _gc_seconds(pid: int) -> float:
    stats = gc_stats(_GC_DIR or "", pid)
    return float(sum(stats[:3])) if stats else 0.0


@dataclass
class CpuMeter:
    """CPU seconds per process group: the hub (Python), its broker, PostgreSQL, this process."""

    groups: Callable[[], dict[str, list[int]]]

    def sample(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pids in self.groups().items():
            totals[name] = sum(s[1] for s in (_stat(p) for p in pids) if s is not None)
            if _GC_DIR:
                totals[f"gc:{name}"] = sum(_gc_seconds(p) for p in pids)
        totals["machine"] = machine_busy_seconds()
        return totals

    @staticmethod
    def usage(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
        """Cores used per group between two samples; ``other`` is load outside this benchmark."""
        used = {k: (after[k] - before.get(k, 0.0)) / seconds for k in after if seconds > 0}
        ours = sum(v for k, v in used.items() if k != "machine" and not k.startswith("gc:"))
        used["other"] = max(0.0, used.pop("machine", 0.0) - ours)
        return {k: round(v, 4 if k.startswith("gc:") else 2) for k, v in used.items()}
