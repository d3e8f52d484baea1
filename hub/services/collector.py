"""The garbage collector's policy while bulk work runs: full collections ten times rarer.

A connector run or a projector batch keeps thousands of objects alive for a while (rows,
events, their dicts), so they all reach the oldest generation, and CPython then scanned every
object of the process about once per batch: 40 % of an import's CPU (benchmarks/imports.py)
and a quarter of the projector's (benchmarks/projection.py, 1.56 s of 6.6 s CPU for 20,000
events went to 14 full collections). Rarer, not off: work that overlaps without end (many
connectors, a projector with a backlog) must not keep cyclic garbage forever. Young
collections run as usual. One owner for the process-wide thresholds, so overlapping users
nest: the first to enter saves them, the last to leave restores them.

And what the process holds when its bulk work starts (modules, pydantic and SQLAlchemy
structures: about 190,000 objects in a projector process) is frozen once
(:func:`freeze_start_up_heap`): a full collection then scans what the work created, not the
start-up heap again, which made each of them cost about 100 ms (benchmarks/projection.py).
Reference counting still frees frozen objects; only cyclic garbage among them would stay.

Once frozen, young collections run every 20,000 net allocations instead of CPython's 700
(:data:`YOUNG_THRESHOLD`): every pass walks what is alive of the young generation, and an
event or a request keeps its objects alive across awaits, so at 700 the same objects were
walked several times before they died. Measured in `koppelhub run` (benchmarks.e2e, with the
collector timed by a ``gc.callbacks`` hook): the collector's share of the API child's CPU
3.6-5.5 % -> 0.3-2.2 %, of the work child's 4.8 % -> 1.6 %. Cyclic garbage waits at most
20,000 allocations longer (a few MB).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FULL_COLLECTION_FACTOR = 10
YOUNG_THRESHOLD = 20_000
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
        if _running:  # inside defer_full_collections: the thresholds it restores change too
            _thresholds = (YOUNG_THRESHOLD, _thresholds[1], _thresholds[2])
        gc.set_threshold(YOUNG_THRESHOLD)


@contextlib.contextmanager
def defer_full_collections() -> Iterator[None]:
    """While the block runs, full (oldest-generation) collections are ten times rarer."""
    global _running, _thresholds
    if _running == 0:
        _thresholds = gc.get_threshold()
        gc.set_threshold(_thresholds[0], _thresholds[1], _thresholds[2] * FULL_COLLECTION_FACTOR)
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            gc.set_threshold(*_thresholds)
