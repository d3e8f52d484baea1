"""Where the milliseconds of one event go, publish to delivery (the latency phase of ``e2e``).

Every stage ends at a time someone wrote down, all on the one machine's wall clock:

- **sent**: the benchmark's send time (``data.sentns``, monotonic, put on the wall clock);
- **produced**: the Kafka record's timestamp, set by the API's producer when it sends (after
  the request was read, checked and committed to the write-ahead log): ``accepted_at``;
- **projecting**: the start of the projector's transaction that archived it (``archived_at``
  is PostgreSQL's ``now()``): the broker's fetch and the decoding of the batch;
- **posting**: the dispatcher's first attempt (``delivery_attempts.started_at``): the rest of
  the projection transaction, its NOTIFY, the claim and preparing the request;
- **arrived**: the sink's arrival time: the POST itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import percentile

STAGES = ("sent → produced", "produced → projecting", "projecting → posting", "posting → arrived")

_TIMES = """
    SELECT a.event_id, extract(epoch FROM a.accepted_at), extract(epoch FROM a.archived_at),
           extract(epoch FROM min(t.started_at))
    FROM event_archive a
    JOIN deliveries d ON d.archive_seq = a.seq
    JOIN delivery_attempts t ON t.delivery_id = d.id
    WHERE a.event_id = ANY(%s)
    GROUP BY a.event_id, a.accepted_at, a.archived_at
"""


async def stage_times(
    data_dir: Path, ids: Sequence[str], sent_ns: Mapping[str, int], arrived_ns: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """p50/p99 in ms of each stage of :data:`STAGES`, over the events that have all stamps."""
    wall_minus_mono = time.time() - time.monotonic()
    url = f"postgresql://postgres:@/postgres?host={data_dir / 'postgres'}"
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute(_TIMES, (list(ids),))).fetchall()
    spans: dict[str, list[float]] = {s: [] for s in STAGES}
    for event_id, produced, projecting, posting in rows:
        if event_id not in sent_ns or event_id not in arrived_ns or None in (produced, projecting, posting):
            continue
        sent = sent_ns[event_id] / 1e9 + wall_minus_mono
        arrived = arrived_ns[event_id] / 1e9 + wall_minus_mono
        marks = [sent, float(produced), float(projecting), float(posting), arrived]
        for stage, start, end in zip(STAGES, marks, marks[1:], strict=False):
            spans[stage].append(1000 * (end - start))
    return {
        s: {"p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1), "n": len(v)}
        for s, v in spans.items()
    }


def stage_lines(stages: Mapping[str, Any]) -> list[str]:
    return [
        f"  {stage:<28} p50 {t['p50_ms']:7.1f} ms   p99 {t['p99_ms']:7.1f} ms   ({t['n']:,} events)"
        for stage, t in stages.items()
    ]
