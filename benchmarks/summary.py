"""Floors, ratios and the one summary table of every benchmark (issue 17), and how busy the
machine was while they ran.

Each benchmark writes its results as JSON (``--json FILE``) with the raw limits it measured
(:mod:`benchmarks.limits`) under ``limits``; :func:`figures` turns the results of any of them
into table rows against the floors below, so a benchmark's own ``--check`` and ``make bench``
(:mod:`benchmarks.suite`) judge the same way. The floors are issue 17's, on a 2-core machine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import machine_busy_seconds
from benchmarks.limits import ratio

#: Absolute floors (issue 17). Latency and memory are ceilings.
E2E_DELIVERED = 2_500.0
LATENCY_P99_MS = 100.0
LATENCY_P50_MS = 30.0
PUBLISH_STRUCTURED = 2_000.0
PUBLISH_BATCH = 10_000.0
FANOUT = 4_000.0
DEAD_SINK_DROP = 0.10  # issue 4: a dead sink lowers the others' throughput by less than 10 %
PROJECTION = 8_000.0
IMPORT_ROWS = 40_000.0
IMPORT_PEAK_MB = 300.0
IMPORT_SECOND_SPEEDUP = 3.0
IDLE_PCT = 1.0  # idle `koppelhub run` with its broker, % of one core
#: Floors as a share of the machine's raw rate (benchmarks.limits).
FANOUT_OF_POST = 0.40
PROJECTION_OF_INSERT = 0.40
E2E_OF_POST = 0.25


@dataclass(frozen=True)
class Figure:
    """One row of the summary: what, the measured value, its floor (``None``: informational),
    and the value as a share of a raw limit with that share's floor."""

    benchmark: str
    what: str
    value: float | None
    unit: str
    floor: float | None = None
    ceiling: bool = False  # the floor is an upper bound (latency, memory)
    limit_name: str = ""
    share: float | None = None
    share_floor: float | None = None

    @property
    def passed(self) -> bool:
        ok = True
        if self.floor is not None:
            ok = self.value is not None and (
                self.value <= self.floor if self.ceiling else self.value >= self.floor
            )
        if self.share_floor is not None:
            ok = ok and self.share is not None and self.share >= self.share_floor
        return ok

    @property
    def judged(self) -> bool:
        return self.floor is not None or self.share_floor is not None


def _limit(results: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    found = results.get("limits", {}).get(name)
    return found if isinstance(found, dict) else None


def _e2e(r: Mapping[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    post, produce = _limit(r, "post"), _limit(r, "produce")
    if e := r.get("e2e_delivered"):
        value = e["events_per_s"] if e.get("complete") else None
        out.append(
            Figure(
                "e2e",
                "end to end, batch publish -> one sink",
                value,
                "events/s",
                E2E_DELIVERED,
                limit_name="post",
                share=ratio(value, post),
                share_floor=E2E_OF_POST,
            )
        )
    if lat := r.get("latency"):
        complete = lat.get("complete")
        rate = lat.get("offered_rate", 200)
        for p, ceiling in ((50, LATENCY_P50_MS), (99, LATENCY_P99_MS)):
            value = lat.get(f"p{p}_ms") if complete else None
            out.append(
                Figure("e2e", f"latency at {rate:.0f} events/s offered, p{p}", value, "ms", ceiling, True)
            )
    if s := r.get("publish_structured"):
        out.append(
            Figure(
                "e2e",
                f"publish, structured mode ({s['connections']} concurrent)",
                s["events_per_s"],
                "events/s",
                PUBLISH_STRUCTURED,
                limit_name="produce",
                share=ratio(s["events_per_s"], produce),
            )
        )
    if b := r.get("publish_batch"):
        out.append(
            Figure(
                "e2e",
                "publish, batch mode",
                b["events_per_s"],
                "events/s",
                PUBLISH_BATCH,
                limit_name="produce",
                share=ratio(b["events_per_s"], produce),
            )
        )
    return out


def _fanout(r: Mapping[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    post = _limit(r, "post")
    for name in ("key", "none", "drain"):
        if p := r.get(name):
            value = p["deliveries_per_s"] if p.get("complete") else None
            label = {"key": "ordering: key", "none": "ordering: none", "drain": "drain (resume)"}[name]
            out.append(
                Figure(
                    "fanout",
                    f"fan-out, 10 subscriptions, {label}",
                    value,
                    "deliveries/s",
                    FANOUT,
                    limit_name="post",
                    share=ratio(value, post),
                    share_floor=FANOUT_OF_POST,
                )
            )
    if "key" in r and "dead" in r and r["key"].get("per_subscription_per_s"):
        drop = 1 - r["dead"]["per_subscription_per_s"] / r["key"]["per_subscription_per_s"]
        out.append(
            Figure(
                "fanout",
                "dead sink: drop of the others' throughput",
                round(drop, 3),
                "share",
                DEAD_SINK_DROP,
                True,
            )
        )
    return out


def _projection(r: Mapping[str, Any]) -> list[Figure]:
    value = r["events_per_s"] if r.get("applied") == r.get("events") else None
    return [
        Figure(
            "projection",
            f"projection, {r.get('events', 0):,} landscape events",
            value,
            "events/s",
            PROJECTION,
            limit_name="insert",
            share=ratio(value, _limit(r, "insert")),
            share_floor=PROJECTION_OF_INSERT,
        ),
        Figure(
            "projection",
            "  the same against the raw consume rate",
            value,
            "events/s",
            limit_name="consume",
            share=ratio(value, _limit(r, "consume")),
        ),
        Figure(
            "projection",
            "  against the raw insert of as many WAL bytes",
            value,
            "events/s",
            limit_name="insert by WAL",
            share=ratio(value, _insert_by_wal(r)),
        ),
    ]


def _insert_by_wal(r: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw insert's rate in events: its rows per second divided by the rows whose
    write-ahead log one projected event writes as much as. Informational: it weighs the
    projection's writes by their WAL bytes only (not its reads, lookups and conflict checks,
    which write none), against an insert bound by CPU and round trips, not WAL bandwidth."""
    insert, per_event = _limit(r, "insert"), r.get("wal_per_event")
    if not insert or not insert.get("wal_per_item") or not per_event:
        return None
    return {"per_s": insert["per_s"] * insert["wal_per_item"] / per_event}


def _imports(r: Mapping[str, Any]) -> list[Figure]:
    first, second = r.get("first"), r.get("second")
    if not first or not second:
        return []
    rate = first["read"] / first["seconds"] if first["seconds"] else None
    peak = max(x["peak_mb"] + x["worker_mb"] for x in (first, second))
    speedup = first["seconds"] / second["seconds"] if second["seconds"] else None
    cpu_us = 1e6 * (first["cpu"] + first["worker_cpu"]) / first["read"] if first["read"] else None
    return [
        Figure(
            "imports",
            f"CSV import, {first['read']:,} rows, first run",
            rate,
            "rows/s",
            IMPORT_ROWS,
            limit_name="insert",
            share=ratio(rate, _limit(r, "insert")),
        ),
        Figure("imports", "  CPU per row, first run (import process + mapping worker)", cpu_us, "µs"),
        Figure("imports", "  peak memory, import process + mapping worker", peak, "MB", IMPORT_PEAK_MB, True),
        Figure("imports", "  second run (same file), times faster", speedup, "x", IMPORT_SECOND_SPEEDUP),
        Figure(
            "imports",
            "  second run publishes nothing: events published",
            second["published"],
            "events",
            0,
            True,
        ),
    ]


def _idle(r: Mapping[str, Any]) -> list[Figure]:
    idle = r.get("idle")
    if not idle:
        return []
    return [
        Figure(
            "idle", "idle `koppelhub run`, hub + broker", idle["together_pct"], "% of a core", IDLE_PCT, True
        ),
        Figure("idle", "  of which the broker alone", idle["broker_pct"], "% of a core"),
        Figure("idle", "  PostgreSQL (not in the floor)", idle["postgres_pct"], "% of a core"),
    ]


FIGURES: dict[str, Callable[[Mapping[str, Any]], list[Figure]]] = {
    "e2e": _e2e,
    "fanout": _fanout,
    "projection": _projection,
    "imports": _imports,
    "idle": _idle,
}


def figures(benchmark: str, results: Mapping[str, Any]) -> list[Figure]:
    """The summary rows of one benchmark's results."""
    return FIGURES[benchmark](results)


def failed(rows: Sequence[Figure]) -> list[Figure]:
    return [f for f in rows if f.judged and not f.passed]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("share", "x") or unit.startswith("%"):
        return f"{value:.2f}"
    if float(value).is_integer() and abs(value) < 100:
        return f"{value:.0f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def table(rows: Sequence[Figure], limits: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A Markdown table (it pastes into the README as it is) of figures, floors and ratios."""
    lines = ["| figure | measured | floor | share of raw limit (floor) | verdict |", "|---|---|---|---|---|"]
    for f in rows:
        floor = "-" if f.floor is None else ("≤ " if f.ceiling else "≥ ") + _number(f.floor, f.unit)
        share = "-"
        if f.limit_name:
            share = "n/a" if f.share is None else f"{_percent(f.share)} of raw {f.limit_name}"
            if f.share_floor is not None:
                share += f" (≥ {f.share_floor:.0%})"
        verdict = ("PASS" if f.passed else "FAIL") if f.judged else ""
        lines.append(f"| {f.what} | {_number(f.value, f.unit)} {f.unit} | {floor} | {share} | {verdict} |")
    if limits:
        lines.append("")
        lines.append("Raw limits measured in the same run (benchmarks/limits.py):")
        for key, limit in limits.items():
            lines.append(
                f"- {key}: {limit['per_s']:,.0f}/s "
                f"({limit['items']:,} in {limit['seconds']:.2f} s; {limit['how']})"
            )
    return "\n".join(lines)


# --- how busy the machine was ------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def _tree_cpu_seconds(roots: set[int], marker: str) -> dict[int, float]:
    """CPU seconds of the processes under ``roots`` and of those whose command line holds
    ``marker`` (the embedded PostgreSQL detaches from the hub), with all their descendants."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            if marker and marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                roots = roots | {pid}
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    ours = set(roots)
    changed = True
    while changed:
        grown = {pid for pid, parent in parents.items() if parent in ours} - ours
        changed = bool(grown)
        ours |= grown
    return {pid: cpu[pid] for pid in ours if pid in cpu}


@dataclass
class LoadSampler:
    """Samples, every ``interval`` seconds in a thread, the 1-minute load average and the cores
    used by processes that are not this benchmark run's (this process's tree and anything whose
    command line holds ``marker``, e.g. the benchmarks' temporary data dirs)."""

    marker: str = "koppelhub-bench"
    interval: float = 2.0
    loads: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> tuple[float, float, dict[int, float]]:
        return time.monotonic(), machine_busy_seconds(), _tree_cpu_seconds({os.getpid()}, self.marker)

    def _run(self) -> None:
        before = self._sample()
        while not self._stop.wait(self.interval):
            after = self._sample()
            seconds = after[0] - before[0]
            # Per process: one that exited in between is left out (a slight undercount of ours).
            ours = sum(cpu - before[2].get(pid, 0.0) for pid, cpu in after[2].items())
            if seconds > 0:
                self.others.append(max(0.0, ((after[1] - before[1]) - ours) / seconds))
            self.loads.append(os.getloadavg()[0])
            before = after

    def __enter__(self) -> LoadSampler:
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def describe(self) -> str:
        def spread(values: list[float]) -> str:
            if not values:
                return "n/a"
            return f"mean {sum(values) / len(values):.2f}, max {max(values):.2f}"

        return (
            f"Machine: {cpu_model()}, {os.cpu_count()} cores. While the benchmarks ran: 1-minute load "
            f"average {spread(self.loads)}; cores used by other processes {spread(self.others)} "
            f"({len(self.others)} samples every {self.interval:.0f} s). Figures are comparable only "
            "when the other processes used close to 0 cores."
        )
