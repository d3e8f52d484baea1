"""The garbage collector's policy for bulk work (hub.services.collector)."""

from __future__ import annotations

import gc

from hub.services import collector


def test_the_start_up_heap_is_frozen_once_so_full_collections_skip_it() -> None:
    collector.freeze_start_up_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0  # what lived at start-up is in the permanent generation
    made_later = [{"made": "after the freeze"} for _ in range(100)]
    collector.freeze_start_up_heap()
    assert gc.get_freeze_count() == frozen  # a second call freezes nothing more
    assert len(made_later) == 100


def test_full_collections_are_deferred_while_bulk_work_runs_and_restored_after() -> None:
    before = gc.get_threshold()
    with collector.defer_full_collections(), collector.defer_full_collections():
        assert gc.get_threshold()[2] == before[2] * collector.FULL_COLLECTION_FACTOR
    assert gc.get_threshold() == before
