"""Import figures: a generated gebruik CSV imported end to end (parse, validate, diff against the
fingerprints in PostgreSQL, publish to the broker and wait for its acknowledgement), then the
same file again (nothing changed: nothing may be published).

    .venv/bin/python -m benchmarks.imports                 # 1,000,000 rows
    .venv/bin/python -m benchmarks.imports --rows 100000   # quicker

Runs the import in this process exactly as ``koppelhub import`` and the ``connectors`` role do
(:meth:`ConnectorRunner.execute_import`), on the embedded Tansu broker and embedded PostgreSQL
in a fresh temporary data dir. No projector runs: the figure is the import side. Peak memory is
this process's maximum resident set size (``ru_maxrss``) plus the mapping worker's (``VmHWM``;
large batches are mapped and serialised in a one-worker process pool); the broker and
PostgreSQL are separate processes and not included.

By default the import publishes straight to the broker. ``koppelhub import`` on the embedded
broker publishes through the write-ahead log (``hub.bootstrap.tools.import_runner``: a COPY
into PostgreSQL before each send); ``--write-ahead`` measures that path. Measured at 200,000
rows on a loaded machine, it cost about 11-14 µs more CPU per row in this process, and
PostgreSQL used 21-22 instead of 10-12 µs per row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import describe_machine, machine_info
from benchmarks.limits import insert_rate, produce_rate
from benchmarks.summary import failed, figures, table
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.engine import create_engine, migrate
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.bootstrap import connector_runner
from hub.embedded import provision
from hub.services.connectors import ConnectorRunner
from hub.services.imports import ImportSpec
from hub.services.sync_rows import Tally
from hub.settings import Settings

ORG = "org-benchmark"
STATUSES = ("Verwerving", "Gepland", "In productie", "Uit te faseren", "Uitgefaseerd")


def generate(path: Path, rows: int) -> None:
    """A gebruik CSV as Dutch Excel writes it (BOM, ``;``), written in chunks."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write("id;afnemer;applicatie;status;versie;referentiecomponenten\r\n")
        chunk: list[str] = []
        for i in range(rows):
            chunk.append(
                f"gebruik-{i:07d};{ORG};applicatie-{i % 5000:05d};{STATUSES[i % 5]};{i % 7}.{i % 13}.0;"
                f"rc-{i % 50}|rc-{(i + 7) % 50}\r\n"
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


@contextlib.contextmanager
def collector_cpu() -> Iterator[list[float]]:
    """CPU seconds this process spends in the garbage collector while the block runs (one
    float in the yielded list, filled in at the end): the share of an import's CPU that no
    stage of :mod:`benchmarks.import_stages` shows."""
    spent, started = [0.0], [0.0]

    def callback(phase: str, _: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[0] += time.process_time() - started[0]

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_usage(runner: ConnectorRunner) -> tuple[float, float]:
    """The mapping worker's CPU seconds so far and peak resident memory (MB), from /proc; zeros
    when no worker was started (it starts with the first large batch)."""
    if runner._pool is None:
        return 0.0, 0.0
    pid = runner.mapping_pool().submit(os.getpid).result()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return cpu, int(hwm.split()[1]) / 1024


async def run_imports(
    settings: Settings, bootstrap: str, database_url: str, path: Path, *, write_ahead: bool = False
) -> list[dict[str, Any]]:
    engine = create_engine(database_url, pool_size=2)
    await ensure_topics(bootstrap, settings.kafka)
    event_log = KafkaEventLog(bootstrap, settings.kafka)
    await event_log.start()
    wal = WriteAheadEventLog(engine, event_log) if write_ahead else None
    runner = connector_runner(settings, engine, wal or event_log)
    imports = runner.lifecycle.store
    results = []
    try:
        for label in ("first import", "second import (same file)"):
            spec = ImportSpec(ORG, "gebruik", "incremental", path.name, path, {})
            import_id = await runner.lifecycle.start(spec)
            worker_before = worker_usage(runner)[0]
            started, cpu = time.perf_counter(), time.process_time()
            with collector_cpu() as gc_cpu:
                tally: Tally = await runner.execute_import(import_id, spec)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            worker_cpu, worker_mb = worker_usage(runner)
            await imports.finish(import_id, error=None, counts=tally.counts(), report=tally.per_type)
            results.append(
                {
                    "label": label,
                    "seconds": seconds,
                    "cpu": cpu,
                    "gc_cpu": gc_cpu[0],
                    "peak_mb": peak_mb(),
                    "worker_cpu": worker_cpu - worker_before,
                    "worker_mb": worker_mb,
                    **tally.counts(),
                }
            )
    finally:
        runner.close()
        if wal is not None:
            await wal.close()
        await event_log.stop()
        await engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--no-limits", action="store_true", help="skip measuring the raw limits")
    parser.add_argument("--check", action="store_true", help="exit 1 when a floor is missed")
    parser.add_argument(
        "--write-ahead",
        action="store_true",
        help="publish through the write-ahead log, as koppelhub import does on the embedded broker",
    )
    args = parser.parse_args(argv)

    print(describe_machine(machine_info()))
    print("Note: a shared machine; other work running at the same time lowers these figures.")
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-imports-"))
    settings = Settings(data_dir=data_dir)
    infra = provision(settings)
    try:
        migrate(infra.database_url)
        path = data_dir / "gebruik.csv"
        t0 = time.perf_counter()
        generate(path, args.rows)
        size_mb, took = path.stat().st_size / 1e6, time.perf_counter() - t0
        print(f"Generated {args.rows:,} rows ({size_mb:.0f} MB) in {took:.1f} s")
        base_mb = peak_mb()
        wal = args.write_ahead
        print("publishing through the write-ahead log" if wal else "publishing straight to the broker")
        results = asyncio.run(
            run_imports(settings, infra.kafka_bootstrap, infra.database_url, path, write_ahead=wal)
        )
        limits: dict[str, Any] = {}
        if not args.no_limits:
            print("measuring the raw limits (batched INSERT, broker produce) …", flush=True)
            rows = min(args.rows, 100_000)
            insert = asyncio.run(insert_rate(infra.database_url, rows=rows))
            produce = asyncio.run(produce_rate(infra.kafka_bootstrap, records=min(args.rows, 50_000)))
            limits = {"insert": insert.as_dict(), "produce": produce.as_dict()}
    finally:
        infra.close()
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)

    for r in results:
        rate = r["read"] / r["seconds"]
        cpu_us = 1e6 * (r["cpu"] + r["worker_cpu"]) / max(1, r["read"])
        print(
            f"{r['label']:28s} {r['seconds']:7.1f} s  {rate:9,.0f} rows/s  published {r['published']:,}  "
            f"unchanged {r['unchanged']:,}  invalid {r['invalid']:,}  peak RSS {r['peak_mb']:.0f} MB "
            f"+ worker {r['worker_mb']:.0f} MB  (CPU: import process {r['cpu']:.1f} s, "
            f"mapping worker {r['worker_cpu']:.1f} s; {cpu_us:.1f} µs per row; garbage collector "
            f"{r['gc_cpu']:.1f} s of the import process's)"
        )
    first, second = results
    summary = {"first": first, "second": second, "limits": limits, "rows": args.rows,
               "write_ahead": args.write_ahead, "rss_before_mb": base_mb,
               "machine": machine_info()}  # fmt: skip
    rows = figures("imports", summary)
    print(f"(RSS before the imports: {base_mb:.0f} MB)\n" + table(rows, limits))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 1 if args.check and failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
