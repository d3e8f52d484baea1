"""The import's stage breakdown (benchmarks/import_stages.py) and the collector's share that
benchmarks/imports.py reports, on a few rows: nothing here is timed."""

from __future__ import annotations

import gc
from pathlib import Path

from benchmarks.import_stages import PART, stages
from benchmarks.imports import collector_cpu, generate


def test_every_stage_of_an_import_row_is_timed_once_over_the_generated_file(tmp_path: Path) -> None:
    path = tmp_path / "gebruik.csv"
    generate(path, 500)

    results = stages(path, repeat=1)

    names = [name for name, _ in results]
    assert len(names) == len(set(names)) == 8
    assert sum(name.startswith(PART) for name in names) == 1  # inside the stage before it, not summed
    assert all(seconds >= 0 for _, seconds in results)


def test_the_collector_cpu_counts_collections_run_inside_the_block_only() -> None:
    with collector_cpu() as inside:
        for _ in range(20):
            gc.collect()
    after = inside[0]
    gc.collect()

    assert after > 0
    assert inside[0] == after  # the callback is gone once the block ends
    assert all(cb.__qualname__ != "collector_cpu.<locals>.callback" for cb in gc.callbacks)
