"""A full disk under the database (issue 16): the driver's ``disk_full`` becomes
:class:`StorageFull`, and the API answers it with a 503 that says so and what to do.
tests/faults/test_disk_full.py fills a real disk under a real hub."""

from __future__ import annotations

import psycopg
import pytest

from hub.adapters.postgres.errors import DatabaseUnavailable, translate_db_errors
from hub.errors import StorageFull
from tests.support.hub_api import event, publish
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_postgresql_disk_full_is_storage_full_and_still_retriable() -> None:
    with pytest.raises(StorageFull) as caught, translate_db_errors():
        raise psycopg.errors.DiskFull('could not extend file "base/16384/16390": No space left on device')
    assert isinstance(caught.value, DatabaseUnavailable)  # what waits for the database waits for this too


def test_a_wal_write_without_sqlstate_that_ran_out_of_space_is_storage_full() -> None:
    with pytest.raises(StorageFull), translate_db_errors():
        raise psycopg.OperationalError('could not write to file "pg_wal/xlogtemp": No space left on device')


def test_other_outages_are_not_storage_full() -> None:
    with pytest.raises(DatabaseUnavailable) as caught, translate_db_errors():
        raise psycopg.OperationalError("connection refused")
    assert not isinstance(caught.value, StorageFull)


async def test_publish_on_a_full_disk_answers_503_saying_to_free_space_with_retry_after(
    memory: MemoryApp,
) -> None:
    memory.event_log.unavailable = StorageFull("No space left on device")

    response = await publish(memory.client, AUTH, event())

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "30"
    problem = response.json()
    assert problem["title"] == "Storage full"
    assert "disk is full" in problem["detail"] and "free disk space" in problem["detail"]
    assert memory.published() == []
