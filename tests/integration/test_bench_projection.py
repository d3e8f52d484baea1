"""benchmarks.projection with the projector in several processes (issue 17): the children share
one consumer group, so together they apply every event exactly once, and the benchmark reports
each child's CPU and the group's sum. Runs the benchmark itself (its own embedded broker and
PostgreSQL) on a small topic; nothing here is timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.projection import main

pytestmark = pytest.mark.integration

EVENTS = 1200


def test_two_projector_processes_apply_every_event_once_and_report_each_ones_cpu(tmp_path: Path) -> None:
    out = tmp_path / "projection.json"
    argv = ["--events", str(EVENTS), "--processes", "2", "--members", "3", "--batch-size", "100"]
    assert main([*argv, "--no-limits", "--timeout", "120", "--json", str(out)]) == 0
    r = json.loads(out.read_text())

    assert r["processes"] == 2
    # Stored counts: every event archived once, one outbox row per derived notification, one
    # row per distinct object (the changes re-assert existing objects).
    assert r["archived"] == EVENTS
    assert r["applied"] == EVENTS
    assert r["outbox"] == r["derived"] == EVENTS
    assert sum(r["stored"].values()) == EVENTS - r["changes"]
    # What PostgreSQL wrote per event, and where (the archive holds each event and its derived
    # one: at least two rows of about 750 B; tables grow by whole 8 kB pages).
    assert r["wal_per_event"] > 1_000
    assert r["grown_per_event"]["event_archive"] > 1_000
    # Both children took part (6 partitions over 2 x 3 consumers) and each one's CPU is reported;
    # the projector group is their sum.
    children = r["per_process"]
    assert len(children) == 2
    assert sum(c["applied"] for c in children) == EVENTS
    assert all(c["applied"] > 0 and c["cpu_seconds"] > 0 for c in children), children
    # The group's meter and each child's are read at slightly different instants of a run of a
    # second or two: on a loaded machine that skew alone moved the sum by 0.06 of a core (CI).
    assert r["cores"]["projector"] == pytest.approx(sum(c["cores"] for c in children), abs=0.1)
