"""Idle CPU of ``koppelhub run``: what an idle hub costs, per process.

    .venv/bin/python -m benchmarks.idle                  # 30 s sample (issue 17: <= 1 % of a core)
    .venv/bin/python -m benchmarks.idle --seconds 60 --hub-env KOPPELHUB_KAFKA_IDLE_POLL_MS=100

Starts ``koppelhub run`` on embedded Tansu and PostgreSQL in a fresh temporary data dir, waits
until it is ready and has settled (its consumers go quiet after a second without records),
then reads the CPU time of every process from ``/proc/<pid>/stat`` at the start and the end of
the sample and prints each one's share of a core: the ``run`` parent, each role child, the
broker and PostgreSQL. The floor (issue 17) is on the hub and its broker together; PostgreSQL
is shown apart (it is the same process an external database would be). CPU time, unlike
wall-clock figures, hardly depends on what else the machine does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    _stat,
    describe_machine,
    machine_busy_seconds,
    machine_info,
    run_interruptible,
    write_json,
)
from benchmarks.hubprocess import Hub, start_hub
from benchmarks.summary import failed, figures
from benchmarks.summary import table as summary_table


def _name(pid: int, hub: Hub, groups: Mapping[str, list[int]]) -> str:
    """A readable name per process: run, worker roles, pg_watchdog, broker, postgres."""
    if pid == hub.process.pid:
        return "run (parent)"
    if pid in groups["broker"]:
        return f"broker {pid}"
    if pid in groups["postgres"]:
        return "postgres"
    try:
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return f"pid {pid}"
    if "--roles" in argv:
        return f"worker {argv[argv.index('--roles') + 1]} ({pid})"
    return "pg_watchdog" if any("pg_watchdog" in a for a in argv) else f"pid {pid}"


def _cpu(pids: Sequence[int]) -> dict[int, float]:
    return {pid: s[1] for pid in pids if (s := _stat(pid)) is not None}


async def measure(hub: Hub, seconds: float, settle: float) -> dict[str, Any]:
    """Percent of a core per process over ``seconds``, after ``settle`` seconds of quiet."""
    await asyncio.sleep(settle)
    groups = hub.process_groups()
    pids = [p for ps in (groups["hub"], groups["work"], groups["broker"], groups["postgres"]) for p in ps]
    names = {pid: _name(pid, hub, groups) for pid in pids}
    machine_before, before = machine_busy_seconds(), _cpu(pids)
    await asyncio.sleep(seconds)
    machine_after, after = machine_busy_seconds(), _cpu(pids)
    percent: dict[str, float] = {}
    for pid, start in before.items():
        if pid in after:
            name = names[pid]
            percent[name] = percent.get(name, 0.0) + 100 * (after[pid] - start) / seconds
    hub_pct = sum(v for k, v in percent.items() if not k.startswith(("broker", "postgres")))
    broker_pct = sum(v for k, v in percent.items() if k.startswith("broker"))
    postgres_pct = percent.get("postgres", 0.0)
    machine_pct = 100 * (machine_after - machine_before) / seconds
    return {
        "seconds": seconds,
        "per_process_pct": {k: round(v, 2) for k, v in sorted(percent.items())},
        "hub_pct": round(hub_pct, 2),
        "broker_pct": round(broker_pct, 2),
        "postgres_pct": round(postgres_pct, 2),
        "together_pct": round(hub_pct + broker_pct, 2),
        "other_pct": round(max(0.0, machine_pct - hub_pct - broker_pct - postgres_pct), 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    env = dict(kv.split("=", 1) for kv in args.hub_env)
    hub = await start_hub(env=env)
    try:
        results = await measure(hub, args.seconds, args.settle)
    finally:
        await hub.stop(within=60)
        hub.remove()
    return {"machine": machine_info(), "hub_env": env, "idle": results}


def lines(results: Mapping[str, Any]) -> list[str]:
    idle = results["idle"]
    out = [describe_machine(results["machine"]), f"idle over {idle['seconds']:.0f} s, % of one core:"]
    out += [f"  {name:<40} {pct:6.2f}" for name, pct in idle["per_process_pct"].items()]
    out += [
        f"  hub (run and its children)               {idle['hub_pct']:6.2f}",
        f"  broker                                   {idle['broker_pct']:6.2f}",
        f"  hub + broker                             {idle['together_pct']:6.2f}",
        f"  PostgreSQL (not in the floor)            {idle['postgres_pct']:6.2f}",
        f"  the rest of the machine                  {idle['other_pct']:6.1f}",
    ]
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.idle", description=__doc__.split("\n")[0])
    add = p.add_argument
    add("--seconds", type=float, default=30.0, help="length of the sample (30)")
    add("--settle", type=float, default=5.0, help="seconds after ready before sampling (5)")
    add("--hub-env", action="append", default=[], metavar="KEY=VALUE",
        help="a setting for the hub, e.g. KOPPELHUB_KAFKA_IDLE_POLL_MS=100 (repeatable)")  # fmt: skip
    add("--json", type=Path, nargs="?", const=Path("-"), metavar="FILE",
        help="also write the results as JSON, to FILE or (without FILE) to stdout")  # fmt: skip
    add("--check", action="store_true", help="exit 1 when the floor is missed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_interruptible(main_async(args))
    if results is None:
        return 130
    rows = figures("idle", results)
    print("\n".join(lines(results)) + "\n\n" + summary_table(rows, None))
    if args.json is not None:
        write_json(args.json, results)
    return 1 if args.check and failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
