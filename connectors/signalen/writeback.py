"""Write-back to Signalen: a ``status-verzoek`` applied along Signalen's workflow.

:func:`apply` reads the melding's current state, plans the PATCHes with
:func:`connectors.signalen.workflow.plan` and sends them one by one
(``{"status": {"state", "text", "send_email"}}``, ``send_email`` false unless asked). When
Signalen refuses a step (someone changed the melding meanwhile) the state is read again and
the path planned once more. The outcome is an event for the requester:
``status-bijgewerkt`` (from, to, the states passed through) or ``status-geweigerd`` (from,
requested, the reason), ``subject`` the melding id, ``data.verzoek`` the request's event id.

Network trouble and 5xx raise :class:`SourceUnavailable` (the delivery is retried on its
schedule); everything else ends in an outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.base import SourceRefused, SourceUnavailable
from connectors.http import ApiClient
from connectors.signalen.workflow import Plan, Refusal, plan

__all__ = ["BIJGEWERKT", "GEWEIGERD", "VERZOEK", "Outcome", "apply"]

VERZOEK = "nl.signalen.melding.status-verzoek.v1"
BIJGEWERKT = "nl.signalen.melding.status-bijgewerkt.v1"
GEWEIGERD = "nl.signalen.melding.status-geweigerd.v1"


@dataclass(frozen=True)
class Outcome:
    """What became of a request: the outcome event's ``type`` and ``data``."""

    type: str
    data: dict[str, Any]

    @property
    def refused(self) -> bool:
        return self.type == GEWEIGERD


async def _current(api: ApiClient, url: str) -> tuple[str, str | None]:
    response = await api.request("GET", url)
    if response.status_code == 404:
        raise SourceRefused("the melding does not exist in Signalen")
    if response.status_code != 200:
        raise api.failed(response, "Signalen")
    try:
        status = orjson.loads(response.content).get("status") or {}
    except (orjson.JSONDecodeError, AttributeError) as e:
        raise SourceUnavailable("Signalen answered a melding that is not a JSON object") from e
    return str(status.get("state") or ""), status.get("text")


def _refusal_reason(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"Signalen answered {response.status_code}"
    if isinstance(body, Mapping):
        parts = [f"{k}: {'; '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in body.items()]
        return "; ".join(parts)[:500]
    return f"Signalen answered {response.status_code}"


async def apply(api: ApiClient, signals_url: str, event: Mapping[str, Any]) -> Outcome:
    """Apply one ``status-verzoek`` event (structured JSON) to the melding it names."""
    melding = str(event.get("subject") or "")
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    requested, text = str(data.get("state") or ""), data.get("text")
    send_email = bool(data.get("sendEmail", False))
    base = {"melding": melding, "verzoek": event.get("id"), "requested": requested}
    if not melding.isdigit():
        return Outcome(GEWEIGERD, {**base, "from": None, "reason": "subject must be the melding's id"})
    url = f"{signals_url}{melding}"
    start, current_text = await _current(api, url)
    state, passed = start, []
    for attempt in range(2):
        planned = plan(state, requested, text=text, current_text=current_text)
        if isinstance(planned, Refusal):
            return Outcome(GEWEIGERD, {**base, "from": start, "reason": planned.reason})
        assert isinstance(planned, Plan)
        refused = None
        for step in planned.steps:
            final = step == planned.steps[-1]
            body = {"status": {"state": step, "text": text, "send_email": send_email and final}}
            response = await api.request("PATCH", url, json=body)
            if response.status_code == 200:
                passed.append(step)
                state = step
                continue
            if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
                raise api.failed(response, "Signalen")
            refused = _refusal_reason(response)
            break
        if refused is None:
            return Outcome(
                BIJGEWERKT, {"melding": melding, "verzoek": event.get("id"), "from": start, "to": requested,
                             "via": passed[:-1], "patches": len(passed)}
            )  # fmt: skip
        if attempt == 1:
            return Outcome(GEWEIGERD, {**base, "from": start, "reason": refused})
        state, current_text = await _current(api, url)  # changed meanwhile: plan once more
    raise SourceUnavailable("unreachable")  # pragma: no cover
