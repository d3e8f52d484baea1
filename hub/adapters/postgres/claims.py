"""The dispatcher's claim statements (see :meth:`PostgresOutbox.claim`).

:data:`CLAIM` is the claim of every round: a pipelined scan that stops at each subscription's
room, bounded to a window of due rows. :data:`CLAIM_HEADS` is its fallback when it found
nothing: it walks the heads of up to ``_KEY_HEADS`` ordering keys per subscription, for a key
whose due head sorts behind a window full of rows blocked by in-flight or retried heads (a
retried head's ``next_attempt_at`` is later than its own key's waiting rows). Walking the heads
on every claim cost 45 % of fan-out throughput, so it runs only when the window is stuck.
"""

from __future__ import annotations

from sqlalchemy import text

from hub.adapters.postgres.tables import OPEN_SQL, unleased
from subscriptions.lifecycle import ACTIVE

__all__ = ["CLAIM", "CLAIM_HEADS"]

# Shared by both statements. Each subscription's room: what the dispatcher offered (FlowControl.room:
# its free concurrency or claim-ahead room, and rate tokens), else the subscription's own cap and rate's burst
# (subscriptions.flow.FlowControl.idle_room). Without a rate that is the cap: it was 1
# (GREATEST(1, NULL)), so a lone event's claim seemed full and the dispatcher claimed again.
# A spare dispatcher (``:spare``) offers no subscription that limits its sink itself
# (subscriptions.flow.FlowControl.own_limits).
_SIZED = f"""room AS (
        SELECT * FROM unnest(CAST(:room_ids AS uuid[]), CAST(:room_sizes AS int[])) AS r(id, size)
    ),
    sized AS (
        SELECT s.*, COALESCE(r.size, LEAST(
            COALESCE(s.max_concurrency, :default_concurrency),
            GREATEST(1, floor(COALESCE(LEAST(s.max_rate, s.allowed_rate), :default_concurrency)))::int
        )) AS room_size
        FROM subscriptions s LEFT JOIN room r ON r.id = s.id
        WHERE s.status = '{ACTIVE}' AND NOT (CAST(:spare AS boolean) AND (
            s.max_concurrency IS NOT NULL OR s.max_rate IS NOT NULL OR s.allowed_rate IS NOT NULL))
    ),
"""  # noqa: S608 (lifecycle constants)
# A subscription without per-key order offers its oldest due rows; one with it, its due rows
# without a key (their own partial index), beside the keyed heads each statement finds.
_UNORDERED_AND_UNKEYED = f"""
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE s.ordering = 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.next_attempt_at <= now() AND {unleased("d")}
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS unordered
                UNION ALL
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE s.ordering <> 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.ordering_key IS NULL
                   AND d.next_attempt_at <= now() AND {unleased("d")}
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS unkeyed
"""  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
# The claim itself: lease what ``due`` chose and return it with its event and subscription. The
# lease is the one column it sets, read by no index: a HOT update (migration 0019). The event and
# the subscription's JSON columns come as text: the outbox decodes each distinct value once per
# claim (outbox.JSON_COLUMNS), not once per row as the driver's jsonb loader would.
_LEASE_AND_RETURN = """
    UPDATE deliveries AS d
    SET leased_until = now() + make_interval(secs => :lease), leased_by = :holder
    FROM due, event_archive a, subscriptions s
    WHERE d.id = due.id AND a.seq = d.archive_seq AND s.id = d.subscription_id
    RETURNING d.id, d.subscription_id, d.attempts, d.retry_base, d.event_id, d.archive_seq, d.ordering_key,
              CAST(a.event AS text) AS event_json, a.accepted_at, s.sink, s.secret,
              CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END
                  AS previous_secret,
              CAST(s.headers AS text) AS headers, CAST(s.retry_schedule AS text) AS retry_schedule,
              s.ordering, s.max_concurrency, LEAST(s.max_rate, s.allowed_rate) AS max_rate, s.content_mode,
              CAST(s.auth AS text) AS auth, s.organisatie
"""

# The claim executes :func:`subscriptions.lifecycle.is_due` and ``blocked_by`` set-based.
# Fair claim: each active subscription (in random order, so none is always first) offers its
# own due rows, at most ``room`` of them: what its concurrency cap and rate allow right now.
# One subscription's backlog or slow sink therefore never fills a round for the others.
# Per-key order (ordering = 'key'): a delivery is due only when no earlier delivery for the
# same subscription and ordering key is still open (pending, failed-and-waiting, or claimed).
# The keyed scan walks the due rows oldest first and stops at ``room`` rows that pass; it looks
# at no more than the first ``room * _WINDOW`` due rows (``window_end``, an index walk without
# probes). Without that bound a claim behind in-flight key heads read the whole backlog to find
# nothing (6 s per claim at 300,000 deliveries, issue 16); with it a key whose head lies past
# the window waits until the window moves (the in-flight heads end). Rows without an ordering
# key come from their own partial index (ix_deliveries_due_unkeyed), never behind keyed rows.
_WINDOW = 16
CLAIM = text(
    f"""
    WITH {_SIZED}
    active AS (  -- with window_end: the (next_attempt_at, archive_seq) of the window's last row
        SELECT s.*, COALESCE(w.next_attempt_at, 'infinity') AS window_at,
               COALESCE(w.archive_seq, 9223372036854775807) AS window_seq
        FROM sized s LEFT JOIN LATERAL (
            SELECT e.next_attempt_at, e.archive_seq FROM deliveries e
            WHERE s.ordering <> 'none' AND e.subscription_id = s.id AND e.{OPEN_SQL}
              AND e.next_attempt_at <= now() AND {unleased("e")}
            ORDER BY e.next_attempt_at, e.archive_seq
            OFFSET s.room_size * {_WINDOW} LIMIT 1
        ) w ON true
    ),
    due AS (
        SELECT p.id
        FROM (SELECT * FROM active ORDER BY random()) s
        CROSS JOIN LATERAL (
            SELECT c.id FROM (
{_UNORDERED_AND_UNKEYED}                UNION ALL
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE s.ordering <> 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.ordering_key IS NOT NULL
                   AND d.next_attempt_at <= now() AND {unleased("d")}
                   AND (d.next_attempt_at, d.archive_seq) <= (s.window_at, s.window_seq)
                   AND d.archive_seq = (  -- its key's head: one index probe, never a join
                        SELECT x.archive_seq FROM deliveries x
                        WHERE x.subscription_id = d.subscription_id
                          AND x.ordering_key = d.ordering_key AND x.{OPEN_SQL}
                        ORDER BY x.archive_seq LIMIT 1)
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS keyed
            ) c
            ORDER BY c.next_attempt_at, c.archive_seq
            LIMIT s.room_size
        ) p
        LIMIT :limit
    )
{_LEASE_AND_RETURN}    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


# The fallback. Only a key's head (its open delivery with the smallest archive_seq) can be
# due. ``heads`` finds the heads by a loose index scan over ix_deliveries_open_by_key: one
# index probe per key, whatever the backlog behind each head, at most ``_KEY_HEADS`` keys per
# subscription; the due front (the first ``room * _FRONT`` due keyed rows, each asked "is it its
# key's head?") finds due heads at once when many keys are due. Beyond both, a key waits until
# the front moves (in-flight heads end).
_FRONT = 8
_KEY_HEADS = 256
CLAIM_HEADS = text(
    f"""
    WITH RECURSIVE {_SIZED}
    active AS (SELECT * FROM sized),
    heads AS (
        SELECT k.*, 1 AS n FROM active s CROSS JOIN LATERAL (
            SELECT d.subscription_id, d.ordering_key, d.id, d.next_attempt_at FROM deliveries d
            WHERE d.subscription_id = s.id AND d.{OPEN_SQL} AND d.ordering_key IS NOT NULL
            ORDER BY d.ordering_key, d.archive_seq LIMIT 1
        ) k
        WHERE s.ordering <> 'none' AND s.room_size > 0  -- no walk for a subscription without room
        UNION ALL
        SELECT k.*, h.n + 1 FROM heads h CROSS JOIN LATERAL (
            SELECT d.subscription_id, d.ordering_key, d.id, d.next_attempt_at FROM deliveries d
            WHERE d.subscription_id = h.subscription_id AND d.{OPEN_SQL}
              AND d.ordering_key > h.ordering_key
            ORDER BY d.ordering_key, d.archive_seq LIMIT 1
        ) k
        WHERE h.n < {_KEY_HEADS}
    ),
    due AS (
        SELECT p.id
        FROM (SELECT * FROM active ORDER BY random()) s
        CROSS JOIN LATERAL (
            SELECT c.id FROM (
{_UNORDERED_AND_UNKEYED}                UNION ALL
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE d.id IN (
                    SELECT w.id FROM (
                        SELECT e.id, e.ordering_key, e.archive_seq FROM deliveries e
                        WHERE s.ordering <> 'none' AND e.subscription_id = s.id AND e.{OPEN_SQL}
                          AND e.ordering_key IS NOT NULL AND e.next_attempt_at <= now()
                          AND {unleased("e")}
                        ORDER BY e.next_attempt_at, e.archive_seq LIMIT s.room_size * {_FRONT}
                    ) w
                    WHERE w.archive_seq = (  -- the key's head (a scalar probe per front row)
                        SELECT f.archive_seq FROM deliveries f
                        WHERE f.subscription_id = s.id AND f.ordering_key = w.ordering_key
                          AND f.{OPEN_SQL}
                        ORDER BY f.archive_seq LIMIT 1)
                    UNION
                    SELECT h.id FROM heads h WHERE h.subscription_id = s.id AND h.next_attempt_at <= now())
                   AND d.{OPEN_SQL} AND d.next_attempt_at <= now() AND {unleased("d")}
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS keyed
            ) c
            ORDER BY c.next_attempt_at, c.archive_seq
            LIMIT s.room_size
        ) p
        LIMIT :limit
    )
{_LEASE_AND_RETURN}    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
