"""The dispatcher's claim against a large backlog whose key heads are all in flight.

Fills a fresh embedded PostgreSQL (migrated to head) with ``--deliveries`` open deliveries
over ``--subscriptions`` subscriptions (``ordering: key``) and ``--keys`` ordering keys, one
archived event per delivery group, then leases every key's head (its ``leased_until``
moves past now, as a claim does). Every other open delivery is then due but blocked by its
key's head: the worst case of issue 16's 100k fault run. Runs the outbox's own claim SQL
``--claims`` times under ``EXPLAIN (ANALYZE, BUFFERS)``, each in a transaction that is rolled
back (so every claim sees the same backlog), and reports PostgreSQL's execution time per
claim, the rows the claim read from ``deliveries`` and the shared buffers it touched.

The execution time is PostgreSQL's own (server CPU on a loaded machine, not wall-clock);
the rows visited and buffers are the machine-independent figures.

    .venv/bin/python -m benchmarks.claim_backlog                  # 300,000 deliveries, 50 keys
    .venv/bin/python -m benchmarks.claim_backlog --deliveries 30000 --keys 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from hub.adapters.postgres.claims import CLAIM, CLAIM_HEADS
from hub.adapters.postgres.engine import migrate, sqlalchemy_url
from hub.embedded import EmbeddedPostgres

ROOM = 16  # what one subscription may get per claim (its default concurrency)


def fill_blocked_backlog(
    conn: Any, deliveries: int, keys: int, subscriptions: int, unkeyed: int = 0, *, lease_heads: bool = True
) -> None:
    """``deliveries`` open deliveries over ``subscriptions`` (``ordering: key``) and ``keys``
    keys, every key's head leased; the first ``unkeyed`` events have no ordering key (due)."""
    events = max(1, deliveries // subscriptions)
    for n in range(subscriptions):
        conn.execute(
            text("INSERT INTO subscriptions (sink, secret, ordering) VALUES (:sink, 'whsec_x', 'key')"),
            {"sink": f"https://sink{n}.example/hook"},
        )
    conn.execute(
        text(
            "INSERT INTO event_archive (source, event_id, type, ordering_key, event) "
            "SELECT 'urn:bench', 'e' || g, 'nl.bench.v1', "
            "CASE WHEN g <= :unkeyed THEN NULL ELSE 'k' || (g % :keys) END, "
            "jsonb_build_object('id', 'e' || g, 'data', jsonb_build_object('n', g)) "
            "FROM generate_series(1, :events) g"
        ),
        {"keys": keys, "events": events, "unkeyed": unkeyed},
    )
    conn.execute(
        text(
            "INSERT INTO deliveries (subscription_id, archive_seq, event_id, ordering_key, next_attempt_at) "
            "SELECT s.id, a.seq, a.event_id, a.ordering_key, now() - interval '1 minute' "
            "FROM event_archive a CROSS JOIN subscriptions s"
        )
    )
    if not lease_heads:
        return
    # Every key's head in flight: leased as a claim leases it.
    conn.execute(
        text(
            "UPDATE deliveries d SET leased_until = now() + interval '10 minutes' FROM ("
            " SELECT DISTINCT ON (subscription_id, ordering_key) id FROM deliveries"
            " WHERE ordering_key IS NOT NULL"
            " ORDER BY subscription_id, ordering_key, archive_seq) h WHERE d.id = h.id"
        )
    )


def _nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def claim_params(ids: Sequence[Any]) -> dict[str, Any]:
    """The parameters of one :data:`CLAIM` over the subscriptions ``ids``, each with room for
    :data:`ROOM` deliveries and a 60 s lease, held by dispatcher key 7 (lease_holders.py), a
    work process's dispatcher (not a spare one)."""
    return {
        "limit": ROOM * len(ids),
        "lease": 60.0,
        "holder": 7,
        "room_ids": list(ids),
        "room_sizes": [ROOM] * len(ids),
        "default_concurrency": ROOM,
        "spare": False,
    }


def claim_cost(conn: Any, params: Mapping[str, Any]) -> dict[str, float]:
    """One claim as :meth:`PostgresOutbox.claim` makes it (the windowed claim, and the key-heads
    fallback when that found nothing) under EXPLAIN ANALYZE: ms, rows claimed, rows read from
    deliveries, buffers, summed over the statements. The caller rolls the transaction back."""
    total = {"ms": 0.0, "claimed": 0.0, "rows_visited": 0.0, "buffers": 0.0, "statements": 0.0}
    for statement in (CLAIM, CLAIM_HEADS):
        explain = text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement.text)
        explained = conn.execute(explain, params).scalar()
        doc = explained if isinstance(explained, list) else json.loads(explained)
        plan = doc[0]["Plan"]
        total["ms"] += float(doc[0]["Execution Time"])
        total["claimed"] += float(plan.get("Actual Rows", 0))
        total["rows_visited"] += float(
            sum(
                node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
                for node in _nodes(plan)
                if node.get("Relation Name") == "deliveries"
                or "deliveries" in str(node.get("Index Name", ""))
            )
        )
        total["buffers"] += float(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))
        total["statements"] += 1
        if total["claimed"]:
            break
    return total


def run(
    url: str,
    deliveries: int,
    keys: int,
    subscriptions: int,
    claims: int,
    unkeyed: int = 0,
    *,
    lease_heads: bool = True,
) -> dict[str, Any]:
    migrate(url)
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        fill_blocked_backlog(conn, deliveries, keys, subscriptions, unkeyed, lease_heads=lease_heads)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE deliveries"))
        conn.execute(text("ANALYZE event_archive"))
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM subscriptions"))]
        open_count = conn.execute(text("SELECT count(*) FROM deliveries")).scalar()
        conn.rollback()
        params = claim_params(ids)
        costs = []
        for _ in range(claims):
            with conn.begin() as tx:
                costs.append(claim_cost(conn, params))
                tx.rollback()
    engine.dispose()
    return {
        "deliveries": open_count,
        "keys": keys,
        "subscriptions": subscriptions,
        "unkeyed_events": unkeyed,
        "heads_leased": lease_heads,
        "claims": claims,
        "ms_per_claim_median": round(statistics.median(c["ms"] for c in costs), 2),
        "ms_per_claim_all": [round(c["ms"], 2) for c in costs],
        "claimed_per_claim": costs[-1]["claimed"],
        "rows_visited_per_claim": costs[-1]["rows_visited"],
        "buffers_per_claim": costs[-1]["buffers"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--claims", type=int, default=5)
    parser.add_argument("--unkeyed", type=int, default=0, help="events without an ordering key (due)")
    parser.add_argument("--heads-due", action="store_true", help="do not lease the key heads (all due)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="claim-backlog-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "postgres")
        url = postgres.start()
        try:
            result = run(
                url,
                args.deliveries,
                args.keys,
                args.subscriptions,
                args.claims,
                args.unkeyed,
                lease_heads=not args.heads_due,
            )
        finally:
            postgres.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
