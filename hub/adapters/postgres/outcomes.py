"""Recording attempt outcomes: the attempt log, the delivery's new state, the subscription's
health (410, days of failure), and the alerts those changes raise, all in one transaction.

The rules are :mod:`subscriptions.lifecycle`'s; this module executes them set-based in SQL
built from its constants (``may_record``, ``held_until``, ``failed_too_long``, the alerts)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.adapters.postgres.alerts import Alert, emit_alerts
from hub.adapters.postgres.tables import OPEN_SQL, sql_literals
from hub.ports import AttemptResult
from schemas.credentials import redact_url
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED
from subscriptions.lifecycle import (
    ACTIVE,
    DEAD,
    DELIVERED,
    DISABLED,
    FAILED,
    MADE_GOOD,
    alerts_dead,
    alerts_disabled,
    failing_reason,
)

# may_record: only the claim that made the attempt, on a delivery still open.
_MAY_RECORD = f"attempts = :attempt - 1 AND {OPEN_SQL}"
_DEAD = text(
    f"""
    UPDATE deliveries SET status = '{DEAD}', attempts = :attempt, last_status_code = :code,
           last_error = :error, leased_until = NULL, updated_at = now()
    WHERE id = :id AND {_MAY_RECORD}
    RETURNING id
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
# Later deliveries of a key whose head failed cannot go before it: move them out of the due
# range until the head's next try, so claims do not walk past them again and again (a dead
# sink with a deep backlog made every claim scan its whole queue). A row is due at the later of
# next_attempt_at and its lease (migration 0019).
_HOLD_BACK = text(
    f"""
    UPDATE deliveries d SET next_attempt_at = v.next_at, leased_until = NULL
    FROM unnest(CAST(:subs AS uuid[]), CAST(:keys AS text[]), CAST(:seqs AS bigint[]),
                CAST(:nexts AS timestamptz[])) AS v(sid, k, seq, next_at)
    WHERE d.subscription_id = v.sid AND d.ordering_key = v.k AND d.archive_seq > v.seq
      AND d.{OPEN_SQL} AND greatest(d.next_attempt_at, d.leased_until) < v.next_at
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
_FAILING = text(
    """
    UPDATE subscriptions s
    SET failing_since = coalesce(s.failing_since, now()),
        consecutive_failures = s.consecutive_failures + v.n, last_error = v.error
    FROM unnest(CAST(:ids AS uuid[]), CAST(:counts AS int[]), CAST(:errors AS text[])) AS v(id, n, error)
    WHERE s.id = v.id
    """
)
_FAILED_TOO_LONG = text(
    f"""
    UPDATE subscriptions SET status = '{DISABLED}', status_reason = :reason, updated_at = now()
    WHERE id = ANY(:ids) AND status = '{ACTIVE}'
      AND failing_since <= now() - make_interval(secs => :after)
    RETURNING id, sink
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
# What every batch records, in one statement (one round trip, and with only delivered attempts in the
# batch its own transaction: see :func:`one_statement`). Before, it took five statements inside
# BEGIN … COMMIT, seven round trips per batch; in the work child's profile of
# benchmarks.fanout those round trips and their SQLAlchemy overhead were about 8 % of its samples.
# - ``alive``: a delivery deleted meanwhile (its subscription was deleted) has nothing left to
#   record; KEY SHARE keeps the others from being deleted until the statement commits.
# - ``logged``: the attempt log.
# - ``living``: the delivery's new state (its lease ends), only the claim we made: a dispatcher
#   whose lease ran out while it could not reach the database must not overwrite what another
#   one recorded since (attempts = attempt - 1). Dead ones go through :data:`_DEAD` (they raise alerts).
# - ``made_good`` (lifecycle.MADE_GOOD): a delivered event's dead deliveries to the same
#   subscription (one archive row per event, so the same archive_seq: the indexed way there)
#   are delivered too. It touches only dead rows, ``living`` only open ones: never one row twice.
# - ``healthy``: a subscription that delivered is no longer failing.
# - ``waiting`` (returned): whether the recorded delivery's key has an open delivery after it,
#   one probe of ix_deliveries_open_by_key. Without one, the dispatcher need not claim again for
#   this recording (at 200 single events/s that claim found nothing and was two statements).
# A finished delivery keeps its last attempt time in next_attempt_at; the value is unused.
_RECORD = text(
    f"""
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            id uuid, sid uuid, seq bigint, key text, status text, attempt int, next_at timestamptz,
            started_at timestamptz, duration_ms float8, code int, error text, excerpt text)
    ),
    alive AS (
        SELECT d.id FROM deliveries d WHERE d.id IN (SELECT r.id FROM r) FOR KEY SHARE
    ),
    logged AS (
        INSERT INTO delivery_attempts
            (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
        SELECT r.id, r.attempt, r.started_at, r.duration_ms, r.code, r.error, r.excerpt
        FROM r JOIN alive ON alive.id = r.id
    ),
    living AS (
        UPDATE deliveries d
        SET status = r.status, attempts = r.attempt, next_attempt_at = coalesce(r.next_at, r.started_at),
            leased_until = NULL, last_status_code = r.code, last_error = r.error,
            delivered_at = CASE WHEN r.status = '{DELIVERED}' THEN r.started_at END, updated_at = now()
        FROM r
        WHERE d.id = r.id AND r.status <> '{DEAD}' AND d.attempts = r.attempt - 1 AND d.{OPEN_SQL}
    ),
    made_good AS (
        UPDATE deliveries d SET status = '{DELIVERED}', delivered_at = now(), updated_at = now()
        FROM (SELECT DISTINCT r.sid, r.seq FROM r JOIN alive ON alive.id = r.id
              WHERE r.status = '{DELIVERED}') v
        WHERE d.subscription_id = v.sid AND d.archive_seq = v.seq
          AND d.status IN ({sql_literals(MADE_GOOD)})
    ),
    healthy AS (
        UPDATE subscriptions s SET failing_since = NULL, consecutive_failures = 0, last_error = NULL
        WHERE s.id IN (SELECT r.sid FROM r JOIN alive ON alive.id = r.id WHERE r.status = '{DELIVERED}')
          AND (s.failing_since IS NOT NULL OR s.consecutive_failures > 0)
    )
    SELECT alive.id, EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.subscription_id = r.sid AND d.ordering_key = r.key AND d.{OPEN_SQL} AND d.archive_seq > r.seq
    ) AS waiting
    FROM alive JOIN r ON r.id = alive.id
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
_GONE = text(
    f"""
    UPDATE subscriptions SET status = '{DISABLED}', status_reason = :reason, updated_at = now()
    WHERE id = :id AND status = '{ACTIVE}'
    RETURNING id, sink
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


def one_statement(results: Sequence[AttemptResult]) -> bool:
    """Whether :func:`record_outcomes` sends one statement only for ``results``: when every
    attempt delivered (the common case) nothing goes dead, fails, is held back or disabled, so
    the caller may run it without BEGIN and COMMIT (two round trips fewer)."""
    return all(r.new_status == DELIVERED and r.disable_reason is None for r in results)


def _record_row(r: AttemptResult) -> dict[str, Any]:
    return {
        "id": r.delivery_id,
        "sid": r.subscription_id,
        "seq": r.archive_seq,
        "key": r.ordering_key,
        "status": r.new_status,
        "attempt": r.attempt,
        "next_at": r.next_attempt_at,
        "started_at": r.started_at,
        "duration_ms": r.duration_ms,
        "code": r.status_code,
        "error": r.error,
        "excerpt": r.response_excerpt,
    }


async def record_outcomes(
    conn: AsyncConnection, results: Sequence[AttemptResult], *, source_urn: str, disable_after_seconds: float
) -> bool:
    """Record ``results``; whether a recorded delivery's key has an open delivery after it."""
    rows = orjson.dumps([_record_row(r) for r in results]).decode()
    recorded = (await conn.execute(_RECORD, {"rows": rows})).all()
    alive, waiting = {row.id for row in recorded}, any(row.waiting for row in recorded)
    results = [r for r in results if r.delivery_id in alive]
    if not results:
        return waiting
    living = [r for r in results if r.new_status != DEAD]
    held = [r for r in living if r.new_status == FAILED and r.ordering_key is not None and r.next_attempt_at]
    if held:
        await conn.execute(
            _HOLD_BACK,
            {
                "subs": [r.subscription_id for r in held],
                "keys": [r.ordering_key for r in held],
                "seqs": [r.archive_seq for r in held],
                "nexts": [r.next_attempt_at for r in held],
            },
        )
    alerts: list[Alert] = []
    for r in results:
        if r.new_status != DEAD:
            continue
        params = {"id": r.delivery_id, "attempt": r.attempt, "code": r.status_code, "error": r.error}
        went_dead = (await conn.execute(_DEAD, params)).first() is not None
        if went_dead and alerts_dead(r.event_type):
            alerts.append(_dead_alert(r))
    alerts.extend(await _subscription_health(conn, results, disable_after_seconds))
    await emit_alerts(conn, source_urn, alerts)
    return waiting


async def _subscription_health(
    conn: AsyncConnection, results: Sequence[AttemptResult], disable_after_seconds: float
) -> list[Alert]:
    """Track how long each subscription has failed; disable on 410 or after too long (a
    subscription that delivered is healthy again: :data:`_RECORD` did that)."""
    ok = {r.subscription_id for r in results if r.new_status == DELIVERED}
    bad = {r.subscription_id for r in results if r.new_status != DELIVERED} - ok
    disabled: list[tuple[uuid.UUID, str, str]] = []
    for r in results:
        if r.disable_reason:
            row = (await conn.execute(_GONE, {"id": r.subscription_id, "reason": r.disable_reason})).first()
            if row is not None:
                disabled.append((row.id, row.sink, r.disable_reason))
    if bad:
        ids = sorted(bad)  # one lock order for concurrent dispatchers
        failures = {sid: [r for r in results if r.subscription_id == sid] for sid in ids}
        await conn.execute(
            _FAILING,
            {
                "ids": ids,
                "counts": [len(failures[sid]) for sid in ids],
                "errors": [failures[sid][-1].error for sid in ids],
            },
        )
        reason = failing_reason(disable_after_seconds)
        rows = await conn.execute(
            _FAILED_TOO_LONG, {"ids": list(bad), "reason": reason, "after": disable_after_seconds}
        )
        disabled.extend((row.id, row.sink, reason) for row in rows)
    return [
        Alert(
            SUBSCRIPTION_DISABLED,
            str(sid),
            {"subscriptionId": str(sid), "sink": redact_url(sink), "reason": reason},
        )
        for sid, sink, reason in disabled
        if alerts_disabled(
            (r.event_type for r in results if r.subscription_id == sid and r.new_status != DELIVERED),
            delivered_some=sid in ok,
        )
    ]


def _dead_alert(r: AttemptResult) -> Alert:
    return Alert(
        DELIVERY_DEAD,
        str(r.subscription_id),
        {
            "subscriptionId": str(r.subscription_id),
            "deliveryId": str(r.delivery_id),
            "eventId": r.event_id,
            "eventType": r.event_type,
            "sink": redact_url(r.sink),
            "attempts": r.attempt,
            "lastStatusCode": r.status_code,
            "lastError": r.error,
        },
    )
