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
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FULL_COLLECTION_FACTOR = 10
_running = 0  # users in this process that defer full collections
_thresholds = gc.get_threshold()
_frozen = False


def freeze_start_up_heap() -> None:
    """Collect once, then move every object left to the permanent generation (``gc.freeze``),
    the first time a process calls it; later calls do nothing."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


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
