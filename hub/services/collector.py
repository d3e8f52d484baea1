"""The garbage collector's policy while bulk work runs: full collections ten times rarer.

A connector run or a projector batch keeps thousands of objects alive for a while (rows,
events, their dicts), so they all reach the oldest generation, and CPython then scanned every
object of the process about once per batch: 40 % of an import's CPU (benchmarks/imports.py)
and a quarter of the projector's (benchmarks/projection.py, 1.56 s of 6.6 s CPU for 20,000
events went to 14 full collections). Rarer, not off: work that overlaps without end (many
connectors, a projector with a backlog) must not keep cyclic garbage forever. Young
collections run at CPython's pace (see below). One owner for the process-wide thresholds, so overlapping users
nest: the first to enter saves them, the last to leave restores them.

And what the process holds when its bulk work starts (modules, pydantic and SQLAlchemy
structures: about 190,000 objects in a projector process) is frozen once
(:func:`freeze_start_up_heap`): a full collection then scans what the work created, not the
start-up heap again, which made each of them cost about 100 ms (benchmarks/projection.py).
Reference counting still frees frozen objects; only cyclic garbage among them would stay.

Once frozen, young collections run every 20,000 net allocations instead of CPython's 700
(:data:`YOUNG_THRESHOLD`), except while bulk work runs. A request or a delivery frees its
objects when it ends, and the young generation counts allocations minus frees: at 700 passes
walked objects that were about to die, at 20,000 most are gone before a pass. Bulk work keeps
its objects (a batch of rows or events lives across awaits), so every pass walks all of them
at either threshold, and at 20,000 they were no longer in the CPU's caches: the import's young
passes cost 0.40-0.45 instead of 0.19 s per 100,000 rows (all passes 0.83-0.89 instead of 0.76 s). So inside
:func:`defer_full_collections` the young threshold is CPython's again. Measured with a
``gc.callbacks`` hook (benchmarks.e2e, 2026-11-30, loaded machine): the collector's share of
the API child's CPU 4.4-6.5 % -> 1.0-1.7 % (batch publish) and 3.7-4.6 % -> 0-2.1 %
(structured), of the work child's 4.6-4.9 % -> 2.1-2.5 %. Cyclic garbage waits at most 20,000
allocations longer: the API child's RSS 150 -> 170 MB, flat (README, "The garbage collector").
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FULL_COLLECTION_FACTOR = 10
YOUNG_THRESHOLD = 20_000
BULK_YOUNG_THRESHOLD = 700  # CPython's default
_running = 0  # users in this process that defer full collections
_thresholds = gc.get_threshold()
_frozen = False


def freeze_start_up_heap() -> None:
    """Collect once, then move every object left to the permanent generation (``gc.freeze``)
    and make young collections rarer (:data:`YOUNG_THRESHOLD`), the first time a process calls
    it; later calls do nothing. Every hub process calls it when started."""
    global _frozen, _thresholds
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        if _running:  # inside defer_full_collections: what it restores at its end
            _thresholds = (YOUNG_THRESHOLD, _thresholds[1], _thresholds[2])
        else:
            gc.set_threshold(YOUNG_THRESHOLD)


@contextlib.contextmanager
def defer_full_collections() -> Iterator[None]:
    """While the block runs, full (oldest-generation) collections are ten times rarer and young
    ones as frequent as CPython makes them."""
    global _running, _thresholds
    if _running == 0:
        _thresholds = gc.get_threshold()
        gc.set_threshold(BULK_YOUNG_THRESHOLD, _thresholds[1], _thresholds[2] * FULL_COLLECTION_FACTOR)
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            gc.set_threshold(*_thresholds)
