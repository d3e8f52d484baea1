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
