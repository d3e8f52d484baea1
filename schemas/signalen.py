"""Checks at publish for the Signalen commands partners send (``nl.signalen.melding.*``).

A ``status-verzoek`` that Signalen would refuse for its shape is a 400 at publish, not a
failure later in the write-back: ``subject`` is the melding id, ``data.state`` a string,
``data.text`` required for ``o`` and ``reopened`` (Signalen's ``Status.clean``,
``Amsterdam/signals`` ``app/signals/apps/signals/models/status.py``), ``data.sendEmail`` a
boolean when present. Whether the workflow allows the change is decided when it is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["STATUS_VERZOEK", "TEXT_REQUIRED", "signalen_command_problems"]

STATUS_VERZOEK: Final = "nl.signalen.melding.status-verzoek.v1"
#: Signalen refuses these states without a ``text``.
TEXT_REQUIRED: Final = frozenset({"o", "reopened"})


def signalen_command_problems(event: Any) -> list[tuple[str, str]]:
    """``(field, message)`` for each problem of a Signalen command; other types: none."""
    if getattr(event, "type", None) != STATUS_VERZOEK:
        return []
    problems: list[tuple[str, str]] = []
    subject = getattr(event, "subject", None)
    if not (isinstance(subject, str) and subject.isdigit()):
        problems.append(("subject", "must be the melding's id (the integer in its Signalen URL)"))
    data = getattr(event, "data", None)
    if not isinstance(data, Mapping):
        return [*problems, ("data", 'must be an object {"state", "text", "sendEmail"?}')]
    state = data.get("state")
    if not isinstance(state, str) or not state:
        problems.append(
            ("data.state", "is required: the Signalen state code, e.g. 'i' or 'closure requested'")
        )
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        problems.append(("data.text", "must be a string"))
    elif state in TEXT_REQUIRED and not (text or "").strip():
        problems.append(("data.text", f"is required for state {state!r}: Signalen refuses it without a text"))
    if "sendEmail" in data and not isinstance(data["sendEmail"], bool):
        problems.append(("data.sendEmail", "must be true or false"))
    return problems
