"""The projector's statements that take a batch's rows as one JSON parameter.

- :func:`marks`: a transaction's first statement (archive positions, dedupe marks, archive
  rows, the subscriptions' version).
- :data:`AT_ONCE`: a batch of plain events (no landscape events) in one autocommitted
  statement. At 200 single events/s nearly every projector batch holds one event, and its
  transaction was four round trips (BEGIN; :func:`marks`; the outbox rows and their NOTIFY;
  COMMIT), each with its SQLAlchemy and psycopg overhead in the work child (issue 17: CPU per
  event at a low rate). :data:`AT_ONCE` does all of it as its own transaction: one round trip.
  The subscriptions each event goes to are decided beforehand (in Python, by the projector's
  rule) on the list the store read last; the statement writes nothing unless that list is
  still the subscriptions' current version, read under the same FOR KEY SHARE lock as in
  :func:`marks` (so none of them can be deleted before the outbox rows commit). A changed
  version returns ``known = 0`` and the projector takes its transaction, which reads the
  list anew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text

from schemas import CloudEvent

# What identifies the subscriptions' current state: their number and the sum of a 64-bit hash
# of each one's id and ``updated_at`` (every change of what decides its recipients bumps it).
# An insert, a delete or such an update changes the pair; unchanged, the list read last holds.
SUBS_HASH = "hashtextextended(s.id::text || ' ' || extract(epoch FROM s.updated_at)::text, 0)"
ARCHIVE_COLUMNS = (
    "source, event_id, type, subject, time, ordering_key, event, kafka_partition, kafka_offset, accepted_at"
)
#: An event's input columns in the batch's JSON rows (``ord``: its place among the new ones).
ARCHIVE_INPUT = (
    "source text, event_id text, ord int, type text, subject text, time timestamptz, "
    "ordering_key text, event jsonb, kafka_partition int, kafka_offset bigint, accepted_at timestamptz"
)


def archive_fields(
    event: CloudEvent, partition: int | None, offset: int | None, accepted_at: datetime | None
) -> dict[str, Any]:
    """An event's archive columns besides its source and id, for the statements that take the
    archive rows as JSON (the same values as ``projection._archive_row``)."""
    return {
        "type": event.type, "subject": event.subject, "time": event.time, "ordering_key": event.key(),
        "event": event.to_structured(), "kafka_partition": partition, "kafka_offset": offset,
        "accepted_at": accepted_at,
    }  # fmt: skip


def marks(with_archive: bool) -> TextClause:
    """One round trip for what took three, or five with the archive rows (issue 17: latency):
    the archive positions (sorted, so they follow the log), the dedupe marks (what is new, by
    the position it was handed), and the subscriptions' version, read under the FOR KEY SHARE
    lock the list is read with (a DELETE waits for this transaction's outbox rows; see
    :meth:`PostgresProjectionUnitOfWork.subscriptions`); ``with_archive``, the new events'
    archive rows too."""
    columns = ARCHIVE_INPUT if with_archive else "source text, event_id text, ord int"
    archived = ""
    if with_archive:
        archived = f"""
        , archived AS (
            INSERT INTO event_archive (seq, {ARCHIVE_COLUMNS})
            SELECT m.archive_seq, {", ".join(f"r.{c}" for c in ARCHIVE_COLUMNS.split(", "))}
            FROM marked AS m JOIN input AS r ON m.archive_seq = r.seq
        )"""  # noqa: S608 (constant SQL)
    return text(
        f"""
        WITH archive AS MATERIALIZED (
            SELECT CAST(pg_get_serial_sequence('event_archive', 'seq') AS regclass) AS seq
        ),
        taken AS MATERIALIZED (
            SELECT array_agg(t.v ORDER BY t.v) AS seqs
            FROM (SELECT nextval(archive.seq) AS v FROM archive, generate_series(1, :n)) AS t
        ),
        input AS MATERIALIZED (
            SELECT r.*, taken.seqs[r.ord] AS seq
            FROM json_to_recordset(CAST(:rows AS json)) AS r({columns}), taken
        ),
        marked AS (
            INSERT INTO processed_events (source, event_id, archive_seq)
            SELECT source, event_id, seq FROM input
            ON CONFLICT DO NOTHING
            RETURNING archive_seq
        ){archived},
        subs AS MATERIALIZED (
            SELECT count(*) AS n, COALESCE(sum({SUBS_HASH}), 0) AS h
            FROM (SELECT id, updated_at FROM subscriptions FOR KEY SHARE) AS s
        )
        SELECT taken.seqs, ARRAY(SELECT archive_seq FROM marked) AS fresh, subs.n, subs.h FROM taken, subs
        """  # noqa: S608 (constant SQL)
    )


# The parts as in :func:`marks` (positions in log order, marks, archive rows), each gated on
# ``known``: the version the routes were decided on is still the subscriptions' version. The
# outbox rows: one per new event and subscription in its ``recipients``; the NOTIFY only when
# there are any (delivered to the dispatchers when the statement commits; its payload:
# hub/services/dispatcher_wakeup.py).
AT_ONCE = text(
    f"""
    WITH archive AS MATERIALIZED (
        SELECT CAST(pg_get_serial_sequence('event_archive', 'seq') AS regclass) AS seq
    ),
    subs AS MATERIALIZED (
        SELECT count(*) AS n, COALESCE(sum({SUBS_HASH}), 0) AS h
        FROM (SELECT id, updated_at FROM subscriptions FOR KEY SHARE) AS s
    ),
    known AS MATERIALIZED (SELECT 1 AS ok FROM subs WHERE subs.n = :subs_n AND subs.h = :subs_h),
    taken AS MATERIALIZED (
        SELECT array_agg(t.v ORDER BY t.v) AS seqs
        FROM (SELECT nextval(archive.seq) AS v FROM archive, known, generate_series(1, :n)) AS t
    ),
    input AS MATERIALIZED (
        SELECT r.*, taken.seqs[r.ord] AS seq
        FROM json_to_recordset(CAST(:rows AS json)) AS r({ARCHIVE_INPUT}, recipients json), taken
        WHERE taken.seqs IS NOT NULL
    ),
    marked AS (
        INSERT INTO processed_events (source, event_id, archive_seq)
        SELECT source, event_id, seq FROM input
        ON CONFLICT DO NOTHING
        RETURNING archive_seq
    ),
    archived AS (
        INSERT INTO event_archive (seq, {ARCHIVE_COLUMNS})
        SELECT m.archive_seq, {", ".join(f"r.{c}" for c in ARCHIVE_COLUMNS.split(", "))}
        FROM marked AS m JOIN input AS r ON m.archive_seq = r.seq
    ),
    queued AS (
        INSERT INTO deliveries (subscription_id, archive_seq, event_id, ordering_key)
        SELECT CAST(t.id AS uuid), r.seq, r.event_id, r.ordering_key
        FROM marked AS m JOIN input AS r ON m.archive_seq = r.seq
             CROSS JOIN json_array_elements_text(r.recipients) AS t(id)
        RETURNING 1
    ),
    woken AS (SELECT pg_notify(:channel, :payload) FROM (SELECT 1 FROM queued LIMIT 1) AS q)
    SELECT (SELECT count(*) FROM known) AS known, (SELECT count(*) FROM marked) AS new,
           (SELECT count(*) FROM queued) AS queued, (SELECT count(*) FROM woken) AS woken
    """  # noqa: S608 (constant SQL)
)
