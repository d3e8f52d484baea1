"""``make bench``'s summary (benchmarks/summary.py, benchmarks/suite.py) on tiny, made-up results,
and the raw POST probe (benchmarks/limits.py) on a few requests: nothing here is timed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from benchmarks.limits import post_rate
from benchmarks.suite import BENCHMARKS, README_BEGIN, README_END, arguments, summarise, write_readme
from benchmarks.summary import failed, figures, table
from benchmarks.traffic import Sink


def limit(per_s: float) -> dict[str, Any]:
    return {"name": "post", "per_s": per_s, "items": 10, "seconds": 1.0, "how": "test"}


def fanout(per_s: float, raw_post: float) -> dict[str, Any]:
    phase = {"deliveries_per_s": per_s, "complete": True, "per_subscription_per_s": per_s / 10}
    return {"key": phase, "none": phase, "drain": phase, "limits": {"post": limit(raw_post)}}


def test_a_fanout_above_its_floor_and_its_share_of_the_raw_post_rate_passes() -> None:
    rows = figures("fanout", fanout(5_000, 10_000))

    assert len(rows) == 3 and not failed(rows)
    assert all(r.share == 0.5 for r in rows)
    assert "50% of raw post (≥ 40%)" in table(rows)


def test_a_fanout_above_its_absolute_floor_fails_below_40_percent_of_the_raw_post_rate() -> None:
    rows = figures("fanout", fanout(5_000, 20_000))

    assert [r.what for r in failed(rows)] == [r.what for r in rows]
    assert "FAIL" in table(rows)


def test_latency_and_memory_are_ceilings_and_an_incomplete_run_has_no_figure() -> None:
    e2e = {
        "e2e_delivered": {"events_per_s": 3_000, "complete": False},
        "latency": {"complete": True, "offered_rate": 200, "p50_ms": 20.0, "p99_ms": 120.0},
        "limits": {"post": limit(6_000)},
    }
    rows = {r.what: r for r in figures("e2e", e2e)}

    assert rows["end to end, batch publish -> one sink"].value is None  # not every event arrived
    assert rows["latency at 200 events/s offered, p50"].passed
    assert not rows["latency at 200 events/s offered, p99"].passed


def test_an_import_is_judged_on_rate_memory_and_the_second_run() -> None:
    run = {"read": 1_000, "seconds": 0.02, "cpu": 0.03, "worker_cpu": 0.0, "peak_mb": 180.0, "worker_mb": 0.0}
    second = {**run, "seconds": 0.005, "published": 0}
    rows = figures("imports", {"first": {**run, "published": 1_000}, "second": second, "limits": {}})

    assert not failed(rows)
    assert [r.value for r in rows if r.unit == "µs"] == [30.0]


def test_a_projection_is_weighed_against_a_raw_insert_of_as_much_write_ahead_log() -> None:
    insert = {**limit(20_000), "name": "insert", "wal_per_item": 500.0}
    result = {"events": 100, "applied": 100, "events_per_s": 2_000, "wal_per_event": 4_000.0}
    result["limits"] = {"insert": insert}
    rows = {row.what.strip(): row for row in figures("projection", result)}

    assert rows["projection, 100 landscape events"].share == 0.1  # of 20,000 rows/s
    # One event writes as much as 8 raw rows: 2,500 events/s of raw insert, 80 % of it.
    assert rows["against the raw insert of as many WAL bytes"].share == 0.8
    assert rows["against the raw insert of as many WAL bytes"].passed  # informational: no floor
    assert figures("projection", {**result, "wal_per_event": None})[-1].share is None


def test_the_suite_summary_names_the_load_and_a_benchmark_that_gave_no_results() -> None:
    text, rows = summarise(
        {"fanout": fanout(1_000, 10_000), "imports": None}, {"fanout": 1, "imports": 2}, "busy"
    )

    assert text.splitlines()[0].endswith("busy")
    assert "Did not finish (no results): imports" in text
    assert "raw post (fanout): 10,000/s" in text
    assert len(failed(rows)) == 3


def test_the_summary_replaces_the_readme_section_between_its_markers_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_BEGIN}\nold figures\n{README_END}\n\n## Next\n")

    write_readme(readme, "| figure |\n|---|\n")
    write_readme(readme, "| new figure |\n|---|\n")

    assert (
        readme.read_text() == f"# Title\n\n{README_BEGIN}\n| new figure |\n|---|\n{README_END}\n\n## Next\n"
    )
    (tmp_path / "other.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="make bench"):
        write_readme(tmp_path / "other.md", "x")


async def test_the_raw_post_probe_reaches_every_sink_from_another_process() -> None:
    sinks = [await Sink().start() for _ in range(2)]
    try:
        measured = await post_rate([s.url for s in sinks], requests=40, concurrency=4)
    finally:
        for s in sinks:
            await s.stop()

    assert measured.name == "post" and measured.items == 40 and measured.per_s > 0
    assert [s.requests for s in sinks] == [20, 20]


def test_the_suite_passes_a_hub_setting_to_every_benchmark_that_starts_koppelhub_run() -> None:
    args = argparse.Namespace(quick=False, hub_env=["KOPPELHUB_WORK_PROCESSES=2"])
    for name in BENCHMARKS:
        setattr(args, f"{name}_args", "--seconds 5" if name == "idle" else "")
    assert arguments("fanout", args) == ["--env", "KOPPELHUB_WORK_PROCESSES=2"]
    assert arguments("e2e", args) == ["--hub-env", "KOPPELHUB_WORK_PROCESSES=2"]
    assert arguments("idle", args) == ["--seconds", "5", "--hub-env", "KOPPELHUB_WORK_PROCESSES=2"]
    assert arguments("projection", args) == ["--processes", "2"]  # its own projector processes, no `run`


def test_the_suite_gives_projection_only_the_hub_settings_it_has_a_flag_for() -> None:
    settings = ["KOPPELHUB_PROJECTOR_MEMBERS=2", "KOPPELHUB_LOG_LEVEL=debug", "KOPPELHUB_WORK_PROCESSES=3"]
    args = argparse.Namespace(quick=True, hub_env=settings, projection_args="--no-limits")
    assert arguments("projection", args) == [
        "--events", "5000", "--no-limits", "--processes", "3", "--members", "2",
    ]  # fmt: skip
