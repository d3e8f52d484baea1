"""The ``signalen`` connector on the real broker and database, against the Signalen fake on
loopback (allow-listed): every melding once as ``aangemaakt``, a change as ``gewijzigd`` naming
what changed, nothing for unchanged meldingen, and a run that fails halfway resumes without
publishing any melding twice as new."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.ports import ConnectorRecord
from hub.settings import ConnectorSettings, Settings
from schemas import CloudEvent
from schemas.envelope import validate_event
from tests.support.connectors import ORG, Harness, harness
from tests.support.signalen_fake import SignalenFake

pytestmark = pytest.mark.integration

AANGEMAAKT = "nl.signalen.melding.aangemaakt.v1"
GEWIJZIGD = "nl.signalen.melding.gewijzigd.v1"


@pytest.fixture
async def fake() -> AsyncIterator[SignalenFake]:
    f = await SignalenFake().start()
    yield f
    await f.stop()


def loopback(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"], backoff_seconds=60)}
    )


async def _connector(h: Harness, fake: SignalenFake, **config: object) -> ConnectorRecord:
    return await h.connectors.create(
        kind="signalen",
        organisatie=ORG,
        schedule_seconds=5,
        enabled=True,
        config={"url": fake.url, "auth": {"token": fake.token}, "pageSize": 10, **config},
    )


async def _run(h: Harness, connector: ConnectorRecord) -> ConnectorRecord:
    await h.runner.run_connector(await h.connectors.get(connector.id))
    return await h.connectors.get(connector.id)


def _signalen(events: list[CloudEvent]) -> list[CloudEvent]:
    return [e for e in events if e.type.startswith("nl.signalen.")]


async def test_every_melding_is_published_once_as_aangemaakt_with_its_attributes(
    settings: Settings, fake: SignalenFake
) -> None:
    fake.add(25)
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        after = await _run(h, connector)
        events = _signalen(await h.events())

    assert after.last_error is None, after.last_error
    assert [e.type for e in events] == [AANGEMAAKT] * 25
    assert sorted(int(e.subject or 0) for e in events) == list(range(1, 26))
    first = next(e for e in events if e.subject == "1")
    validate_event(first.model_dump(mode="json"))
    assert first.partitionkey == "1"
    assert first.dataref == f"{fake.url}/signals/v1/private/signals/1"
    assert first.source.endswith(f":connector:{connector.id}")
    assert (first.model_extra or {})["organisatie"] == ORG
    assert first.data["status"] == {"state": "m", "state_display": "Gemeld", "text": None}
    assert "reporter" not in first.data
    assert len(fake.requests) == 3  # 25 meldingen, 10 per page, next.href to the end
    assert after.checkpoint == {"updated_after": first.data["updated_at"].replace("00:00.001", "00:00.025")}


async def test_a_change_in_signalen_is_gewijzigd_naming_status_state_and_unchanged_publish_nothing(
    settings: Settings, fake: SignalenFake
) -> None:
    fake.add(5)
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        await _run(h, connector)
        await _run(h, connector)  # nothing changed
        fake.change(3, state="b")
        await _run(h, connector)
        events = _signalen(await h.events())

    assert sorted(e.type for e in events) == [AANGEMAAKT] * 5 + [GEWIJZIGD]
    (changed,) = [e for e in events if e.type == GEWIJZIGD]
    assert changed.subject == "3"
    assert changed.data["wijzigingen"] == [{"field": "status.state", "old": "m", "new": "b"}]
    assert changed.data["status"]["state"] == "b"
    # Each run after the first asks only for what changed since its checkpoint.
    assert ("updated_after", "2024-01-01T00:00:00.005000+00:00") in fake.requests[-1]


async def test_a_run_that_fails_halfway_resumes_without_publishing_a_melding_twice_as_new(
    settings: Settings, fake: SignalenFake
) -> None:
    fake.add(30)
    fake.down_after_pages = 2
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        failed = await _run(h, connector)
        fake.down_after_pages = None
        again = await _run(h, connector)
        events = _signalen(await h.events())
        runs = await h.runner.runs.runs(connector.id, limit=10) if h.runner.runs else []

    assert failed.last_error is not None and "503" in failed.last_error
    # Page 2 asked for updated_after melding 10's time (keyset paging): 10 to 19.
    assert failed.checkpoint == {"updated_after": "2024-01-01T00:00:00.019000+00:00"}
    assert again.last_error is None
    created = [e.subject for e in events if e.type == AANGEMAAKT]
    assert sorted(created, key=int) == [str(i) for i in range(1, 31)]  # each exactly once
    assert [r.status for r in runs] == ["succeeded", "failed"]
    assert runs[1].diagnostics is not None and runs[1].diagnostics["status"] == 503
    assert runs[0].checkpoint_before == failed.checkpoint


async def test_reporter_is_published_only_when_configured(
    settings: Settings, fake: SignalenFake, tmp_path: Path
) -> None:
    fake.add(1)
    fields = ["id", "status", "reporter", "updated_at"]
    async with harness(loopback(settings)) as h:
        await _run(h, await _connector(h, fake, fields=fields))
        (event,) = _signalen(await h.events())
    assert event.data["reporter"]["email"] == fake.reporter_email
    assert set(event.data) == set(fields)


async def test_a_melding_updated_on_a_page_already_read_during_a_run_skips_no_other_melding(
    settings: Settings, fake: SignalenFake
) -> None:
    fake.add(30)

    def behandelaar(pages: int) -> None:
        if pages == 1:  # melding 5 changes while the connector reads on: the list shifts by one
            fake.change(5, state="b")

    fake.after_page = behandelaar
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        after = await _run(h, connector)
        events = _signalen(await h.events())

    assert after.last_error is None, after.last_error
    created = sorted((e.subject or "" for e in events if e.type == AANGEMAAKT), key=int)
    assert created == [str(i) for i in range(1, 31)]  # melding 11 too, which page 2 of a shifted list skips


async def test_a_melding_with_u0000_or_over_the_event_limit_is_a_run_error_and_the_others_are_published(
    settings: Settings, fake: SignalenFake
) -> None:
    fake.add(2)
    (nul,) = fake.add(body="Container vol\x00 naast de deur")  # PostgreSQL's jsonb cannot store U+0000
    fake.add(2)
    (large,) = fake.add(body="x" * 5000)  # its event is over the 4096 bytes set below
    fake.add(2)
    limited = Settings(
        **{
            **dict(settings),
            "max_event_bytes": 4096,
            "connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"], backoff_seconds=60),
        }
    )
    async with harness(limited) as h:
        connector = await _connector(h, fake)
        after = await _run(h, connector)
        events = _signalen(await h.events())
        (run,) = await h.runner.runs.runs(connector.id, limit=10) if h.runner.runs else [None]

    # The good ones are published; the bad ones are not on the log at all, so the projector
    # (the only writer of the dead-letter topic) has nothing of them to park there.
    assert sorted(int(e.subject or 0) for e in events) == [1, 2, 4, 5, 7, 8]
    assert after.last_error is None, after.last_error
    assert after.checkpoint == {"updated_after": "2024-01-01T00:00:00.008000+00:00"}
    assert after.last_counts is not None and after.last_counts["invalid"] == 2
    assert after.last_counts["published"] == 6
    # The run says it had errors, as a landscape sync's does: each bad melding by id and reason.
    assert run is not None and run.status == "succeeded" and run.counts["invalid"] == 2
    messages = sorted(e["message"] for e in run.errors)
    assert messages[0].startswith(f"signalen.melding {nul}, data.text: contains U+0000"), messages
    assert messages[1].startswith(f"signalen.melding {large}: its event would be "), messages
    assert "more than the limit of 4096 bytes (KOPPELHUB_MAX_EVENT_BYTES)" in messages[1]
