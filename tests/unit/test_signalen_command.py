"""A status-verzoek Signalen would refuse for its shape is a 400 at publish (schemas.signalen)."""

from __future__ import annotations

from typing import Any

from schemas import CloudEvent
from schemas.signalen import signalen_command_problems


def verzoek(data: Any, subject: str = "42") -> CloudEvent:
    return CloudEvent(
        specversion="1.0", id="1", source="urn:nld:test", type="nl.signalen.melding.status-verzoek.v1",
        subject=subject, data=data,
    )  # fmt: skip


def test_afgehandeld_and_reopened_without_text_are_refused() -> None:
    for state in ("o", "reopened"):
        assert signalen_command_problems(verzoek({"state": state})) == [
            ("data.text", f"is required for state {state!r}: Signalen refuses it without a text")
        ]
    assert signalen_command_problems(verzoek({"state": "o", "text": "Opgelost"})) == []


def test_subject_must_be_the_melding_id_and_state_is_required() -> None:
    fields = [f for f, _ in signalen_command_problems(verzoek({"sendEmail": "ja"}, subject="abc"))]
    assert fields == ["subject", "data.state", "data.sendEmail"]


def test_other_types_are_not_checked() -> None:
    event = CloudEvent(specversion="1.0", id="1", source="urn:nld:test", type="nl.moon.taak.v1", data=None)
    assert signalen_command_problems(event) == []
