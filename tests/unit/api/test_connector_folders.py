"""The file roots are shared by every organisation, so a folder directly under a root named
after an organisation holds that organisation's files: a connector of another organisation may
not read from it (its run's row errors would show their content), whoever creates it. Files
outside organisations' folders stay shared. On the in-memory connector app."""

from __future__ import annotations

from pathlib import Path

from hub.adapters.memory import InMemoryProjectionStore
from hub.ports import LoggedEvent
from hub.services.landscape import DerivedEvents
from hub.services.projection import apply_events
from schemas import validate_event
from tests.support.connector_app import ADMIN_AUTH, connector_app


def _organisatie(org: str, offset: int) -> LoggedEvent:
    event = {"specversion": "1.0", "id": f"e-{org}", "source": "urn:x", "subject": org,
             "type": "nl.softwarecatalogus.organisatie.vastgelegd.v1", "time": "2026-12-02T10:00:00Z",
             "datacontenttype": "application/json",
             "data": {"id": org, "naam": org, "type": "Gemeente"}}  # fmt: skip
    return LoggedEvent(validate_event(event), 0, offset)


async def _with_organisations(*ids: str) -> InMemoryProjectionStore:
    landscape = InMemoryProjectionStore()
    events = [_organisatie(org, offset) for offset, org in enumerate(ids)]
    await apply_events(landscape, events, DerivedEvents("urn:hub", lambda: "https://hub"))
    return landscape


def _csv(organisatie: str, location: Path) -> dict[str, object]:
    return {"kind": "csv", "organisatie": organisatie, "scheduleSeconds": 3600, "enabled": False,
            "config": {"location": str(location), "objecttype": "gebruik"}}  # fmt: skip


async def test_a_connector_may_not_read_another_organisations_folder(tmp_path: Path) -> None:
    root = tmp_path / "files"
    for folder in ("gem-a", "gem-b", "gedeeld"):
        (root / folder).mkdir(parents=True)
        (root / folder / "gebruik.csv").write_text("id,afnemer,applicatie,status\n")
    landscape = await _with_organisations("gem-a", "gem-b")
    async with connector_app(tmp_path, file_roots=(root,), landscape=landscape) as app:
        gem_a = await app.bearer("gem-a")
        for auth in (gem_a, ADMIN_AUTH):  # the organisation's rule, not the caller's
            refused = await app.http.post(
                "/api/v1/connectors", json=_csv("gem-a", root / "gem-b" / "gebruik.csv"), headers=auth
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["errors"][0]["field"] == "config.location"
            assert "gem-b" in refused.json()["detail"]
        # The way round through ".." is the same folder.
        sneaky = root / "gem-a" / ".." / "gem-b" / "gebruik.csv"
        assert (
            await app.http.post("/api/v1/connectors", json=_csv("gem-a", sneaky), headers=gem_a)
        ).status_code == 403

        for allowed in (root / "gem-a" / "gebruik.csv", root / "gedeeld" / "gebruik.csv"):
            made = await app.http.post("/api/v1/connectors", json=_csv("gem-a", allowed), headers=gem_a)
            assert made.status_code == 201, made.text
        made = await app.http.post(
            "/api/v1/connectors", json=_csv("gem-a", root / "gem-a" / "gebruik.csv"), headers=gem_a
        )
        moved = await app.http.patch(
            f"/api/v1/connectors/{made.json()['id']}",
            json={"config": {"location": str(root / "gem-b" / "gebruik.csv")}},
            headers=gem_a,
        )
        assert moved.status_code == 403, moved.text
        assert len(app.tables.connectors) == 3


async def test_a_connector_made_before_the_organisation_was_known_stops_reading_its_folder(
    tmp_path: Path,
) -> None:
    """Checked again where the file is opened (the runner and ``/test`` share the context)."""
    root = tmp_path / "files"
    (root / "gem-c").mkdir(parents=True)
    (root / "gem-c" / "gebruik.csv").write_text("id,afnemer,applicatie,status\n")
    landscape = await _with_organisations("gem-a")
    async with connector_app(tmp_path, file_roots=(root,), landscape=landscape) as app:
        made = await app.http.post(
            "/api/v1/connectors", json=_csv("gem-a", root / "gem-c" / "gebruik.csv"), headers=ADMIN_AUTH
        )
        assert made.status_code == 201, made.text  # gem-c is nobody yet: a shared folder
        path = f"/api/v1/connectors/{made.json()['id']}/test"
        before = await app.http.post(path, headers=ADMIN_AUTH)
        assert before.json()["ok"] is True, before.text

        await apply_events(
            landscape, [_organisatie("gem-c", 1)], DerivedEvents("urn:hub", lambda: "https://hub")
        )
        after = await app.http.post(path, headers=ADMIN_AUTH)
        assert after.json()["ok"] is False, after.text
        assert "gem-c's files" in after.json()["problem"]
