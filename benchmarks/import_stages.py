"""Where a CSV import row's CPU goes: each stage of the first import timed alone, in this
process, without the broker or PostgreSQL, on the file ``benchmarks.imports`` generates.

    .venv/bin/python -m benchmarks.import_stages                 # 100,000 rows
    .venv/bin/python -m benchmarks.import_stages --rows 20000    # quicker

``benchmarks.imports`` measures the whole import (about 31 µs of CPU per row in the import
process, 2026-11-30, loaded machine); this says what the row-by-row stages of that cost alone,
each as the import runs it (the same functions, the same inputs), so a restructuring can be
judged stage by stage. Each stage runs ``--repeat`` times with the garbage collector paused and
the fastest run counts (CPU time, ``time.process_time``): the figures are a floor, and their
sum is well below the whole import's, whose rest is the pipeline around them (asyncio tasks,
the reader thread, psycopg and aiokafka calls per batch) and the garbage collector, which
``benchmarks.imports`` reports beside its figures.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from benchmarks.imports import ORG, generate
from connectors.base import ImportLimits, Record
from connectors.events import vastgelegd_record
from connectors.mapping import map_records
from connectors.tabular.columns import column_plan, header_index, header_shape, list_fields
from connectors.tabular.connector import CsvConnector, map_row
from connectors.tabular.reader import read_csv
from hub.adapters.partitioner import partition_for
from hub.services.ownership import organisatie_header

T = TypeVar("T")
SOURCE = f"urn:nl:koppelhub:benchmark:import:{ORG}"
PART = "of which: "  # a stage inside the one before it, left out of the sum


def timed(repeat: int, work: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` runs of ``work`` in CPU seconds (collector paused), and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            result = work()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    assert result is not None
    return best, result


def kafka_batches(records: list[Any]) -> int:
    """Records appended to aiokafka's batch builder (the C one) as the event log does; batches built."""
    built = 0

    def builder() -> DefaultRecordBatchBuilder:
        return DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=False, producer_id=-1,
            producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
        )  # fmt: skip

    batch = builder()
    for r in records:
        if batch.append(0, None, r.key, r.value, r.headers) is None:
            batch.build()
            built += 1
            batch = builder()
            batch.append(0, None, r.key, r.value, r.headers)
    batch.build()
    return built + 1


def stages(path: Path, repeat: int) -> list[tuple[str, float]]:
    """``(stage, CPU seconds)`` of each stage over every row of ``path``."""
    out: list[tuple[str, float]] = []
    seconds, rows = timed(repeat, lambda: list(read_csv(path, None, ImportLimits())))
    out.append(("read and parse the CSV (reader thread)", seconds))
    header, rows = rows[0][1], rows[1:]
    index = header_index("gebruik", header)
    shared = {
        "index": index,
        "plan": column_plan(index, list_fields("gebruik")),
        "shape": header_shape(index),
        "signature": "\x1f".join([ORG, *index]),
        "max_cell_bytes": ImportLimits().max_cell_bytes,
    }
    seconds, records = timed(repeat, lambda: [Record({"shared": shared, "cells": c}, n) for n, c in rows])
    out.append(("a Record per row", seconds))
    connector = CsvConnector.__new__(CsvConnector)  # fingerprint reads only the configured type
    connector.config = CsvConnector.config_model(location=str(path), objecttype="gebruik")
    seconds, prints = timed(repeat, lambda: [connector.fingerprint(r) for r in records])
    out.append(("fingerprint (trim, sha256)", seconds))
    mapper = partial(map_row, "gebruik", ORG)
    items = list(zip(records, prints, strict=True))
    seconds, outcomes = timed(repeat, lambda: map_records(mapper, items))
    out.append(("map + serialise to JSON (map_records)", seconds))
    seconds, _ = timed(repeat, lambda: [mapper(r) for r in records])
    out.append((f"{PART}cells to a validated model", seconds))
    stamp = (organisatie_header(ORG),)
    objects = [o[0][0] for o in outcomes]
    seconds, kafka = timed(
        repeat, lambda: [vastgelegd_record(SOURCE, SOURCE, t, i, d, h, 0, stamp) for t, i, h, d in objects]
    )
    out.append(("Kafka record (event id, headers)", seconds))
    partitions = [0, 1, 2]
    seconds, _ = timed(repeat, lambda: [partition_for(r.key, partitions, partitions) for r in kafka])
    out.append(("partition (murmur2)", seconds))
    seconds, _ = timed(repeat, lambda: kafka_batches(kafka))
    out.append(("Kafka batch append + build", seconds))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the fastest counts")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="koppelhub-bench-stages-"))
    try:
        path = folder / "gebruik.csv"
        generate(path, args.rows)
        results = stages(path, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total = sum(s for name, s in results if not name.startswith(PART))
    print(f"{args.rows:,} gebruik rows, CPU per row of each stage alone (fastest of {args.repeat}):")
    for name, seconds in results:
        print(f"  {name:40s} {1e6 * seconds / args.rows:6.2f} µs")
    print(f"  {'sum of the stages':40s} {1e6 * total / args.rows:6.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
