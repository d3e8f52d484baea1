"""The garbage collector's policy for bulk work (hub.services.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hub.services import collector

# CPython's (700, 10, 10) after the freeze, in bulk work
IN_BULK_WORK = (collector.BULK_YOUNG_THRESHOLD, 10, 10 * collector.FULL_COLLECTION_FACTOR)


@pytest.mark.usefixtures("unfrozen_at_cpythons_thresholds")
def test_the_start_up_heap_is_frozen_once_so_full_collections_skip_it() -> None:
    assert gc.get_freeze_count() == 0
    collector.freeze_start_up_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0  # what lived at start-up is in the permanent generation
    made_later = [{"made": "after the freeze"} for _ in range(100)]
    collector.freeze_start_up_heap()
    assert gc.get_freeze_count() == frozen  # a second call freezes nothing more
    assert len(made_later) == 100


@pytest.fixture
def unfrozen_at_cpythons_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process not yet frozen, at CPython's thresholds; this process's own restored after."""
    saved = gc.get_threshold()
    monkeypatch.setattr(collector, "_frozen", False)
    gc.unfreeze()  # what an earlier test froze in this process: back in the oldest generation
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("unfrozen_at_cpythons_thresholds")
def test_young_collections_are_rare_after_start_up_but_as_cpython_makes_them_in_bulk_work() -> None:
    collector.freeze_start_up_heap()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    with collector.defer_full_collections():
        assert gc.get_threshold() == IN_BULK_WORK
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("unfrozen_at_cpythons_thresholds")
def test_a_freeze_inside_bulk_work_takes_effect_when_the_bulk_work_ends() -> None:
    with collector.defer_full_collections():
        collector.freeze_start_up_heap()
        assert gc.get_threshold() == IN_BULK_WORK
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
