"""The projection store names a record's own fault as permanent (DataRejected), so the
projector parks it instead of dying (orjson's TypeError) or retrying for ever (SQLSTATE 54)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.errors import DataRejected
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.ports import LoggedEvent
from schemas import CloudEvent

pytestmark = pytest.mark.integration


def unchecked(event_id: str, data: Any) -> CloudEvent:
    # model_construct skips validation, as an older hub's events would have.
    return CloudEvent.model_construct(
        specversion="1.0", id=event_id, source="urn:nld:test", type="nl.test.event.v1", data=data
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (unchecked("int", {"n": 2**64}), "Integer exceeds 64-bit range"),
        (unchecked("surrogate", {"s": "\ud800"}), "surrogates not allowed"),
        (unchecked(secrets.token_hex(2000), {}), "index row size"),
    ],
    ids=["int-2**64", "surrogate", "id-too-long-to-index"],
)
async def test_a_record_the_store_cannot_hold_is_data_rejected(
    database_url: str, event: CloudEvent, reason: str
) -> None:
    engine = create_engine(database_url)
    try:
        store = PostgresProjectionStore(engine)
        with pytest.raises(DataRejected, match=reason):
            async with store.transaction() as uow:
                await uow.record_new([LoggedEvent(event, 0, 0)])
    finally:
        await engine.dispose()
