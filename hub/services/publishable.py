"""What a connector run may publish: the one rule the landscape sync and pass-through runs share.

An event over KOPPELHUB_MAX_EVENT_BYTES would be refused by publish (a 413 at the API), and data
that :func:`schemas.limits.data_problem` refuses (U+0000, a lone surrogate, an integer beyond 64
bits, NaN, nesting beyond 64 levels) cannot be stored by the projector, which parks it in the
dead-letter queue long after the run said it went well. So a run checks both before it
publishes: such an item becomes a row error of the run with the reason (its checkpoint moves on as
for any row error), and the batch's other items are published. :class:`hub.services.sync.SyncRun`
(landscape objects) and :class:`hub.services.passthrough.PassThroughRun` (a Signalen melding, a
REST item) take the size rule from here and the data rule from :func:`schemas.limits.data_problem`
(its one owner, which the API's envelope check uses too); :class:`hub.services.relay.RelayRun`
validates whole events instead.
"""

from __future__ import annotations

from schemas.bindings import KafkaRecord

__all__ = ["ENVELOPE_MARGIN", "record_may_exceed", "size_problem"]

#: Bytes an event's JSON takes besides its ``source``, ``subject`` and data: far under this.
ENVELOPE_MARGIN = 512


def size_problem(size: int, limit: int, fix: str) -> tuple[str, str] | None:
    """The row problem of an event of ``size`` bytes (as publish measures it) against ``limit``
    (KOPPELHUB_MAX_EVENT_BYTES), or None when it fits; ``fix`` says what to do about it."""
    if size <= limit:
        return None
    return (
        "",
        f"its event would be {size} bytes, more than the limit of {limit} bytes "
        f"(KOPPELHUB_MAX_EVENT_BYTES); {fix}",
    )


def record_may_exceed(record: KafkaRecord, limit: int) -> bool:
    """False when ``record``'s event surely fits ``limit`` in its structured JSON form (what
    publish measures): the data is there as the same JSON bytes, and an attribute value takes at
    most six times its UTF-8 length (``\\u0001``) plus its name and quotes. A sum of a few lengths
    per event; the exact size is worth computing only when this says True."""
    attrs = sum(len(value) for _, value in record.headers)
    return len(record.value or b"") + 6 * attrs + ENVELOPE_MARGIN > limit
